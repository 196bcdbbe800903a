// Thread pool implementation: workers spin on a generation counter between jobs (a decode step
// issues hundreds of small jobs back to back, and a futex wake-up costs tens of microseconds),
// then sleep on a condition variable once idle; chunks come from a shared atomic cursor.
#include "core/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace slm {

namespace {
// How long an idle thread spins before sleeping. Gaps between the jobs of one forward pass are
// a few microseconds; gaps between tokens (sampling, detokenizing) well under this.
constexpr auto k_spin_time = std::chrono::microseconds(300);
constexpr int k_pauses_per_check = 32;

// Set while a thread executes a chunk, so nested parallel_for calls run serially.
thread_local bool t_in_pool_job = false;

// Spins until done() or the spin time passes; returns done().
template <class Pred>
bool spin_until(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + k_spin_time;
  for (;;) {
    for (int i = 0; i < k_pauses_per_check; ++i) {
      if (done()) return true;
      _mm_pause();
    }
    if (std::chrono::steady_clock::now() > deadline) return done();
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
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::work_on_job(int tid) {
  t_in_pool_job = true;
  for (;;) {
    int64_t b = next_.fetch_add(chunk_, std::memory_order_relaxed);
    if (b >= n_) break;
    task_(ctx_, b, std::min(n_, b + chunk_), tid);
  }
  t_in_pool_job = false;
}

void ThreadPool::worker_main(int tid) {
  uint64_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock<std::mutex> lk(mu_);
      ++sleepers_;
      cv_start_.wait(lk, [&] { return stop_ || generation_.load() != seen; });
      --sleepers_;
      if (stop_) return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) return;
    }
    seen = generation_.load(std::memory_order_acquire);
    work_on_job(tid);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);
      if (caller_sleeping_) cv_done_.notify_one();
    }
  }
}

void ThreadPool::run(int64_t n, int64_t min_chunk, Task task, void* ctx) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  if (n_threads_ == 1 || t_in_pool_job || n <= min_chunk) {
    task(ctx, 0, n, 0);
    return;
  }
  std::lock_guard<std::mutex> caller(caller_mu_);
  // About four chunks per thread: enough to even out load without much cursor traffic.
  int64_t chunk = std::max(min_chunk, (n + 4 * n_threads_ - 1) / (4 * n_threads_));
  bool wake = false;
  {
    // Workers are all between jobs (the previous run waited for active_ == 0), so the job
    // fields are theirs to read only after they see the new generation.
    std::lock_guard<std::mutex> lk(mu_);
    task_ = task;
    ctx_ = ctx;
    n_ = n;
    chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    active_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    wake = sleepers_ > 0;
  }
  if (wake) cv_start_.notify_all();
  work_on_job(0);
  if (spin_until([&] { return active_.load(std::memory_order_acquire) == 0; })) return;
  std::unique_lock<std::mutex> lk(mu_);
  caller_sleeping_ = true;
  cv_done_.wait(lk, [&] { return active_.load(std::memory_order_acquire) == 0; });
  caller_sleeping_ = false;
}

}  // namespace slm
