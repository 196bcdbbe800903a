// Thread pool implementation: workers spin on the job cursor between jobs (a decode step issues
// hundreds of small jobs back to back, and a futex wake-up costs tens of microseconds), then
// sleep on a condition variable once idle; chunks are claimed from the cursor by whoever runs.
#include "core/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace slm {

namespace {
// How long an idle thread spins before sleeping. Gaps between the jobs of one forward pass are
// a few microseconds; gaps between tokens (sampling, detokenizing) well under this.
constexpr auto k_spin_time = std::chrono::microseconds(300);
// After this much spinning a thread yields its core between checks: on an oversubscribed
// machine the thread that would make progress may be waiting for that core.
constexpr auto k_spin_before_yield = std::chrono::microseconds(20);
constexpr int k_pauses_per_check = 32;

constexpr int k_index_bits = 40;
constexpr uint64_t k_index_mask = (uint64_t{1} << k_index_bits) - 1;
uint64_t gen_of(uint64_t cursor) { return cursor >> k_index_bits; }
int64_t index_of(uint64_t cursor) { return static_cast<int64_t>(cursor & k_index_mask); }

// Set while a thread executes a chunk, so nested parallel_for calls run serially.
thread_local bool t_in_pool_job = false;

// Spins until done() or the spin time passes; returns done().
template <class Pred>
bool spin_until(Pred done) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < k_pauses_per_check; ++i) {
      if (done()) return true;
      _mm_pause();
    }
    const auto spent = std::chrono::steady_clock::now() - start;
    if (spent > k_spin_time) return done();
    if (spent > k_spin_before_yield) std::this_thread::yield();
  }
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::thread::hardware_concurrency());
  n_threads_ = std::max(1, n_threads);
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker_main(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_start_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::work_on_job(uint64_t gen, int tid) {
  uint64_t cur = cursor_.load(std::memory_order_acquire);
  for (;;) {
    if (gen_of(cur) != gen) return;
    // Read before the claim: if the job was replaced meanwhile, the claim below fails (the
    // acquire loads pair with run()'s release stores made after it closed the cursor).
    const Task task = task_.load(std::memory_order_acquire);
    void* ctx = ctx_.load(std::memory_order_acquire);
    const int64_t n = n_.load(std::memory_order_acquire);
    const int64_t min_chunk = chunk_.load(std::memory_order_acquire);
    const int64_t b = index_of(cur);
    if (b >= n) return;
    // Guided: each claim takes a 1/(2N) share of what is left, so the first chunks are long
    // (fewer jumps in each thread's weight stream) and the last ones short (a thread that ends
    // its last chunk waits at most one short chunk for the others).
    const int64_t share = (n - b + 2 * n_threads_ - 1) / (2 * n_threads_);
    const int64_t e = std::min(n, b + std::max(min_chunk, share));
    if (!cursor_.compare_exchange_weak(cur, cur + static_cast<uint64_t>(e - b),
                                       std::memory_order_acquire, std::memory_order_acquire)) {
      continue;  // cur now holds the fresh cursor
    }
    t_in_pool_job = true;
    task(ctx, b, e, tid);
    t_in_pool_job = false;
    if (done_.fetch_add(e - b, std::memory_order_acq_rel) + (e - b) == n) {
      std::lock_guard<std::mutex> lk(mu_);
      if (caller_sleeping_) cv_done_.notify_one();
    }
    cur = cursor_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_main(int tid) {
  uint64_t seen = 0;
  auto new_job = [&] {
    return stop_.load(std::memory_order_acquire) ||
           gen_of(cursor_.load(std::memory_order_acquire)) != seen;
  };
  for (;;) {
    if (!spin_until(new_job)) {
      std::unique_lock<std::mutex> lk(mu_);
      ++sleepers_;
      cv_start_.wait(lk, new_job);
      --sleepers_;
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = gen_of(cursor_.load(std::memory_order_acquire));
    work_on_job(seen, tid);
  }
}

void ThreadPool::run(int64_t n, int64_t min_chunk, Task task, void* ctx) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  if (n_threads_ == 1 || t_in_pool_job || n <= min_chunk || n >= static_cast<int64_t>(k_index_mask)) {
    task(ctx, 0, n, 0);
    return;
  }
  std::lock_guard<std::mutex> caller(caller_mu_);
  bool wake = false;
  uint64_t gen = 0;
  {
    // First close the cursor under a generation of its own with no index left: a late worker
    // that read the old job's cursor must not claim from it once the fields below change (its
    // compare-exchange now fails), and one that reads the closed cursor finds nothing to do.
    // Then publish the fields and open the job with the release store of the cursor.
    std::lock_guard<std::mutex> lk(mu_);
    const uint64_t gen_mask = k_index_mask >> 16;  // 24 bits
    const uint64_t closed = (gen_of(cursor_.load(std::memory_order_relaxed)) + 1) & gen_mask;
    cursor_.store(closed << k_index_bits | k_index_mask, std::memory_order_seq_cst);
    // Release: a worker that reads any new field also sees the closed cursor (its claim fails).
    task_.store(task, std::memory_order_release);
    ctx_.store(ctx, std::memory_order_release);
    n_.store(n, std::memory_order_release);
    chunk_.store(min_chunk, std::memory_order_release);
    done_.store(0, std::memory_order_relaxed);
    gen = (closed + 1) & gen_mask;
    cursor_.store(gen << k_index_bits, std::memory_order_release);
    wake = sleepers_ > 0;
  }
  if (wake) cv_start_.notify_all();
  work_on_job(gen, 0);
  auto finished = [&] { return done_.load(std::memory_order_acquire) == n; };
  if (spin_until(finished)) return;
  std::unique_lock<std::mutex> lk(mu_);
  caller_sleeping_ = true;
  cv_done_.wait(lk, finished);
  caller_sleeping_ = false;
}

}  // namespace slm
