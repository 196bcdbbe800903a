// Thread pool implementation: workers sleep on a condition variable between jobs and take
// chunks from a shared atomic cursor, so uneven chunks balance themselves.
#include "core/thread_pool.h"

#include <immintrin.h>

#include <algorithm>

namespace slm {

namespace {
// Spin briefly (64 pauses, about a microsecond) before sleeping: decode steps issue
// jobs back to back, and a condition-variable wake-up costs tens of microseconds.
constexpr int k_spin_iters = 64;

// Set while a thread executes a chunk, so nested parallel_for calls run serially.
thread_local bool t_in_pool_job = false;
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
    for (int i = 0; i < k_spin_iters && generation_.load(std::memory_order_acquire) == seen; ++i) {
      _mm_pause();
    }
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_start_.wait(lk, [&] { return stop_ || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
    }
    work_on_job(tid);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);  // pairs with the caller's predicate check
      cv_done_.notify_one();
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
  {
    std::lock_guard<std::mutex> lk(mu_);
    task_ = task;
    ctx_ = ctx;
    n_ = n;
    chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    active_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_start_.notify_all();
  work_on_job(0);
  for (int i = 0; i < k_spin_iters && active_.load(std::memory_order_acquire) != 0; ++i)
    _mm_pause();
  std::unique_lock<std::mutex> lk(mu_);
  cv_done_.wait(lk, [&] { return active_.load(std::memory_order_acquire) == 0; });
}

}  // namespace slm
