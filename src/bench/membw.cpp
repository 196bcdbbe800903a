// Read-bandwidth measurement: a multi-threaded streaming sum over a large, pre-touched buffer
// (AVX2 loads, four streams per thread, so the loop is load-bound; scalar fallback otherwise).
#include "bench/membw.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "kernels/simd.h"

namespace slm {

namespace {

using Clock = std::chrono::steady_clock;

// Sums n floats (n a multiple of 64) as four sequential streams, one per quarter, interleaved:
// a core keeps more DRAM reads in flight with several streams than with one (Zen 3, one
// thread: 19-21 GB/s with one stream, 24-27 with four), and the limit is what the machine can
// deliver. Two accumulators per stream keep the adds off the critical path.
SLM_AVX2 float sum_avx2(const float* p, uint64_t n) {
  const uint64_t q = n / 4;  // a multiple of 16
  const float *p0 = p, *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (uint64_t i = 0; i < q; i += 16) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p0 + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p0 + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p1 + i));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p1 + i + 8));
    a4 = _mm256_add_ps(a4, _mm256_load_ps(p2 + i));
    a5 = _mm256_add_ps(a5, _mm256_load_ps(p2 + i + 8));
    a6 = _mm256_add_ps(a6, _mm256_load_ps(p3 + i));
    a7 = _mm256_add_ps(a7, _mm256_load_ps(p3 + i + 8));
  }
  a0 = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  a4 = _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7));
  return hsum256(_mm256_add_ps(a0, a4));
}

float sum_scalar(const float* p, uint64_t n) {
  float a[8] = {};
  for (uint64_t i = 0; i < n; i += 8) {
    for (int j = 0; j < 8; ++j) a[j] += p[i + static_cast<uint64_t>(j)];
  }
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

}  // namespace

Expected<BandwidthResult> measure_read_bandwidth(const BandwidthOptions& opts) {
  if (opts.n_threads < 1 || opts.n_threads > 1024) {
    return error("bandwidth: thread count %d is out of range [1, 1024]", opts.n_threads);
  }
  if (opts.passes < 1 || opts.passes > 1000) {
    return error("bandwidth: pass count %d is out of range [1, 1000]", opts.passes);
  }
  // Each thread's slice is a whole number of 64-float (256-byte) groups.
  const uint64_t group = 64 * sizeof(float);
  const uint64_t slice_groups = opts.buffer_bytes / group / static_cast<uint64_t>(opts.n_threads);
  if (slice_groups == 0 || opts.buffer_bytes > (64ull << 30)) {
    return error("bandwidth: buffer of %llu bytes is too small or too large for %d threads",
                 (unsigned long long)opts.buffer_bytes, opts.n_threads);
  }
  const uint64_t slice_floats = slice_groups * 64;
  const uint64_t total_floats = slice_floats * static_cast<uint64_t>(opts.n_threads);
  const uint64_t total_bytes = total_floats * sizeof(float);
  std::unique_ptr<float, AlignedFree> buf(
      static_cast<float*>(std::aligned_alloc(4096, total_bytes)));
  if (!buf) return error("bandwidth: cannot allocate %llu bytes", (unsigned long long)total_bytes);

  const bool avx2 = cpu_has_avx2_fma();
  const int T = opts.n_threads;
  float* base = buf.get();
  // Each thread touches its own slice first, so pages are faulted in (and, on NUMA machines,
  // placed) by the thread that will read them. The calling thread is reader 0, so exactly N
  // threads run (a spinning N+1th would steal a core from the readers).
  std::vector<float> sinks(static_cast<size_t>(T) * 16, 0.0f);  // one cache line per thread
  auto slice = [&](int tid) { return base + static_cast<uint64_t>(tid) * slice_floats; };
  auto touch = [&](int tid) {
    float* p = slice(tid);
    for (uint64_t i = 0; i < slice_floats; ++i) p[i] = static_cast<float>(i & 7) * 0.125f;
  };
  auto read = [&](int tid) {
    const float* p = slice(tid);
    sinks[static_cast<size_t>(tid) * 16] += avx2 ? sum_avx2(p, slice_floats)
                                                 : sum_scalar(p, slice_floats);
  };
  std::atomic<int> go{-1};       // pass number released to the helpers (-2: exit)
  std::atomic<int> finished{0};  // helpers done with the current pass
  auto helper = [&](int tid) {
    touch(tid);
    finished.fetch_add(1);
    int seen = -1;
    while (true) {
      int g;
      while ((g = go.load(std::memory_order_acquire)) == seen) std::this_thread::yield();
      if (g == -2) return;
      seen = g;
      read(tid);
      finished.fetch_add(1, std::memory_order_acq_rel);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(T));
  for (int t = 1; t < T; ++t) threads.emplace_back(helper, t);
  touch(0);
  while (finished.load() < T - 1) std::this_thread::yield();

  BandwidthResult r;
  r.n_threads = T;
  r.buffer_bytes = total_bytes;
  r.avx2 = avx2;
  for (int pass = 0; pass <= opts.passes; ++pass) {  // pass 0 is the untimed warm-up
    finished.store(0);
    auto t0 = Clock::now();
    go.store(pass, std::memory_order_release);
    read(0);
    while (finished.load(std::memory_order_acquire) < T - 1) {
    }
    double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    if (pass > 0 && sec > 0) r.pass_gbs.push_back(static_cast<double>(total_bytes) / sec / 1e9);
  }
  go.store(-2, std::memory_order_release);
  for (auto& th : threads) th.join();
  // The sums must be observable, or the compiler could drop the loads that produce them.
  volatile float keep = 0;
  for (int t = 0; t < T; ++t) keep = keep + sinks[static_cast<size_t>(t) * 16];
  if (r.pass_gbs.empty()) return error("bandwidth: the timer did not advance");

  std::vector<double> sorted = r.pass_gbs;
  std::sort(sorted.begin(), sorted.end());
  r.best_gbs = sorted.back();
  const size_t m = sorted.size();
  r.median_gbs = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
  return r;
}

}  // namespace slm
