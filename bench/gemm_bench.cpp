// Microbenchmark for sgemm / matmul_gemm / the int8 qgemm on a shared, noisy machine: many
// short runs, best time reported (a run that got a quiet core shows what the code can do).
// Built by hand:
//   g++ -O2 -march=native -std=c++20 -Isrc bench/gemm_bench.cpp build-gemm/libslm.a -lpthread
// Run: ./a.out [reps] [small|sgemm|matmul|int8|model]. "model": the projections of the three
// benchmark models at T = 128 (F16, Q8_0, Q4_0; 2 threads). "int8" compares, on the projection shapes of
// the benchmark models at T = 128, qgemm (Q8_0 / Q4_0) with sgemm on the same weight in F32.
// "matmul" measures matmul_gemm, which sends Q8_0 / Q4_0 to qgemm unless SLM_QGEMM=0.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/qgemm.h"
#include "kernels/quant.h"

using namespace slm;

namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Best and median wall time of reps runs of fn, in seconds, and the best CPU time the process
// spent per run (all threads): on a machine shared with other jobs, flops / CPU second is the
// per-core speed while we were actually running.
template <class F>
void time_runs(F&& fn, int reps, double* best, double* median, double* best_cpu) {
  fn();
  std::vector<double> t;
  *best_cpu = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double c0 = cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    *best_cpu = std::min(*best_cpu, cpu_seconds() - c0);
  }
  std::sort(t.begin(), t.end());
  *best = t.front();
  *median = t[t.size() / 2];
}

void bench_sgemm(ThreadPool* pool, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int reps) {
  auto A = randn(static_cast<size_t>(M * K), 1), B = randn(static_cast<size_t>(N * K), 2);
  std::vector<float> C(static_cast<size_t>(M * N));
  double best, med, cpu;
  time_runs([&] {
    sgemm(ta, tb, M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.0f, C.data(), N,
          pool);
  }, reps, &best, &med, &cpu);
  const double f = 2.0 * M * N * K * 1e-9;
  std::printf("threads=%d sgemm(%c,%c) M=%ld N=%ld K=%ld: best %.1f median %.1f GFLOP/s, per CPU-second %.1f\n",
              pool ? pool->n_threads() : 1, ta ? 'T' : 'N', tb ? 'T' : 'N', (long)M, (long)N,
              (long)K, f / best, f / med, f / cpu);
}

void bench_matmul(ThreadPool* pool, DType dt, int64_t T, int64_t in, int64_t out, int reps) {
  auto f = randn(static_cast<size_t>(in * out), 3);
  uint64_t rb = 0;
  dtype_row_bytes(dt, in, &rb);
  std::vector<uint8_t> bytes(rb * out);
  if (dt == DType::Q4_K) {
    // K-quant weights: random bytes with small finite fp16 scales (speed does not care).
    std::mt19937 rng(5);
    for (auto& b : bytes) b = rng() & 0xFF;
    for (size_t o = 0; o < bytes.size(); o += 144) {
      uint16_t h = fp32_to_fp16(0.01f);
      std::memcpy(&bytes[o], &h, 2);
      std::memcpy(&bytes[o + 2], &h, 2);
    }
  } else {
    for (int64_t r = 0; r < out; ++r) (void)quantize_row(dt, f.data() + r * in, bytes.data() + r * rb, in);
  }
  TensorView w;
  w.name = "w";
  w.dtype = dt;
  w.n_dims = 2;
  w.ne[0] = in;
  w.ne[1] = out;
  w.data = bytes.data();
  w.nbytes = bytes.size();
  auto x = randn(static_cast<size_t>(T * in), 4);
  std::vector<float> y(static_cast<size_t>(T * out));
  double best, med, cpu;
  time_runs([&] { (void)matmul_gemm(w, x.data(), T, y.data(), pool); }, reps, &best, &med, &cpu);
  const double fl = 2.0 * T * in * out * 1e-9;
  std::printf("threads=%d matmul_gemm %-4s T=%ld in=%ld out=%ld: best %.1f median %.1f GFLOP/s, per CPU-second %.1f\n",
              pool ? pool->n_threads() : 1, dtype_name(dt), (long)T, (long)in, (long)out,
              fl / best, fl / med, fl / cpu);
}

// Q8_0 / Q4_0 weight of shape (out, in) from Gaussian rows.
struct QWeight {
  std::vector<uint8_t> bytes;
  TensorView view;
};

QWeight make_qweight(DType dt, int64_t in, int64_t out) {
  auto f = randn(static_cast<size_t>(in * out), 3);
  uint64_t rb = 0;
  dtype_row_bytes(dt, in, &rb);
  QWeight w;
  w.bytes.resize(rb * out);
  for (int64_t r = 0; r < out; ++r) {
    (void)quantize_row(dt, f.data() + r * in, w.bytes.data() + r * rb, in);
  }
  w.view.name = "w";
  w.view.dtype = dt;
  w.view.n_dims = 2;
  w.view.ne[0] = in;
  w.view.ne[1] = out;
  w.view.data = w.bytes.data();
  w.view.nbytes = w.bytes.size();
  return w;
}

// The int8 GEMM against sgemm on the dequantized F32 weight of the same shape (the FP32
// path's multiply without its per-call dequantization: its best case), back to back. Run with
// SLM_QGEMM=0 and "matmul" for the FP32 path itself.
void bench_int8(ThreadPool* pool, DType dt, int64_t T, int64_t in, int64_t out, int reps) {
  QWeight w = make_qweight(dt, in, out);
  auto x = randn(static_cast<size_t>(T * in), 4);
  std::vector<float> deq(static_cast<size_t>(in * out)), y(static_cast<size_t>(T * out));
  for (int64_t r = 0; r < out; ++r) dequantize_row(dt, w.view.row(r), deq.data() + r * in, in);
  double best_q, best_s, med, cpu;
  time_runs([&] { (void)qgemm(w.view, x.data(), T, y.data(), pool); }, reps, &best_q, &med, &cpu);
  time_runs([&] {
    sgemm(false, true, T, out, in, 1.0f, x.data(), in, deq.data(), in, 0.0f, y.data(), out, pool);
  }, reps, &best_s, &med, &cpu);
  const double mac = static_cast<double>(T) * in * out * 1e-9;
  std::printf("threads=%d %-4s T=%ld in=%ld out=%ld: qgemm %.1f GMAC/s, sgemm on F32 %.1f GMAC/s, ratio %.2f\n",
              pool ? pool->n_threads() : 1, dtype_name(dt), (long)T, (long)in, (long)out,
              mac / best_q, mac / best_s, best_s / best_q);
}

// One layer's projections at T = 128 of each benchmark model, called as the forward pass calls
// them: q/k/v together, o, gate/up together, down (with -DGB_NO_MANY, for a build without
// matmul_gemm_many, one matmul_gemm per weight).
Status gemm_group(const TensorView* const* ws, float* const* ys, int n, const float* x, int64_t T,
                  ThreadPool* pool) {
#ifdef GB_NO_MANY
  for (int i = 0; i < n; ++i) SLM_TRY(matmul_gemm(*ws[i], x, T, ys[i], pool));
  return Status();
#else
  return matmul_gemm_many(ws, ys, n, x, T, pool);
#endif
}

void bench_model_shapes(ThreadPool* pool, DType dt, int reps) {
  struct Shapes {
    const char* name;
    int64_t E, q, kv, ff;
  };
  const Shapes models[] = {{"smollm2-135m", 576, 576, 192, 1536},
                           {"qwen2.5-0.5b", 896, 896, 128, 4864},
                           {"llama3.2-1b", 2048, 2048, 512, 8192}};
  const int64_t T = 128;
  for (const Shapes& m : models) {
    QWeight wq = make_qweight(dt, m.E, m.q), wk = make_qweight(dt, m.E, m.kv),
            wv = make_qweight(dt, m.E, m.kv), wo = make_qweight(dt, m.q, m.E),
            wg = make_qweight(dt, m.E, m.ff), wu = make_qweight(dt, m.E, m.ff),
            wd = make_qweight(dt, m.ff, m.E);
    auto x = randn(static_cast<size_t>(T * std::max(m.ff, m.q)), 4);
    std::vector<float> q(T * m.q), k(T * m.kv), v(T * m.kv), o(T * m.E), g(T * m.ff), u(T * m.ff);
    const TensorView* qkv[] = {&wq.view, &wk.view, &wv.view};
    float* qkv_y[] = {q.data(), k.data(), v.data()};
    const TensorView* gu[] = {&wg.view, &wu.view};
    float* gu_y[] = {g.data(), u.data()};
    double best, med, cpu;
    time_runs(
        [&] {
          (void)gemm_group(qkv, qkv_y, 3, x.data(), T, pool);
          (void)matmul_gemm(wo.view, x.data(), T, o.data(), pool);
          (void)gemm_group(gu, gu_y, 2, x.data(), T, pool);
          (void)matmul_gemm(wd.view, x.data(), T, o.data(), pool);
        },
        reps, &best, &med, &cpu);
    const double fl = 2.0 * T * (2 * m.E * m.q + 2 * m.E * m.kv + 3 * m.E * m.ff) * 1e-9;
    std::printf("threads=%d %s %-4s T=128 layer projections: best %.1f median %.1f GFLOP/s, per CPU-second %.1f\n",
                pool ? pool->n_threads() : 1, m.name, dtype_name(dt), fl / best, fl / med,
                fl / cpu);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  const std::string only = argc > 2 ? argv[2] : "";
  ThreadPool pool2(2);
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
    if (only.empty() || only == "small") {
      bench_sgemm(pool, false, true, 144, 256, 256, reps * 20);  // fits in L2: kernel ceiling
    }
    if (only.empty() || only == "sgemm") {
      bench_sgemm(pool, false, false, 1024, 1024, 1024, reps);
      bench_sgemm(pool, false, true, 1024, 1024, 1024, reps);
      bench_sgemm(pool, true, false, 1024, 1024, 1024, reps);
      bench_sgemm(pool, false, true, 128, 1536, 576, reps * 4);
      bench_sgemm(pool, false, true, 128, 8192, 2048, reps);
    }
    if (only.empty() || only == "matmul") {
      for (DType dt : {DType::F32, DType::F16, DType::Q4_0, DType::Q8_0, DType::Q4_K}) {
        bench_matmul(pool, dt, 128, 2048, 8192, reps);
      }
    }
    if (only == "model") {
      for (DType dt : {DType::F16, DType::Q8_0, DType::Q4_0}) bench_model_shapes(pool, dt, reps);
    }
    if (only.empty() || only == "int8") {
      // (in, out) of the SmolLM2-135M, Qwen2.5-0.5B and Llama-3.2-1B projections.
      const int64_t shapes[][2] = {{576, 1536}, {1536, 576}, {896, 896}, {896, 4864},
                                   {4864, 896}, {2048, 8192}, {8192, 2048}};
      for (const auto& s : shapes) {
        for (DType dt : {DType::Q8_0, DType::Q4_0}) bench_int8(pool, dt, 128, s[0], s[1], reps);
      }
    }
  }
  return 0;
}
