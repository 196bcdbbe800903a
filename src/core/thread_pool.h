// A small persistent thread pool: parallel_for(n, fn) splits [0, n) into chunks run by the
// workers and the calling thread; the call returns when every chunk is done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace slm {

class ThreadPool {
 public:
  // n_threads counts the calling thread; 0 means all hardware threads.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  // Calls fn(begin, end) or fn(begin, end, thread_index) over disjoint chunks covering
  // [0, n). thread_index is in [0, n_threads()) and is unique among concurrently running
  // chunks, so it can index per-thread scratch. Chunks hold at least min_chunk items.
  // Called from inside a chunk (nested), it runs serially on the current thread.
  template <class F>
  void parallel_for(int64_t n, F&& fn, int64_t min_chunk = 1) {
    using Fn = std::remove_reference_t<F>;
    auto tramp = [](void* ctx, int64_t b, int64_t e, int tid) {
      Fn& f = *static_cast<Fn*>(ctx);
      if constexpr (std::is_invocable_v<Fn&, int64_t, int64_t, int>) {
        f(b, e, tid);
      } else {
        (void)tid;
        f(b, e);
      }
    };
    run(n, min_chunk, tramp, const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using Task = void (*)(void* ctx, int64_t begin, int64_t end, int tid);
  void run(int64_t n, int64_t min_chunk, Task task, void* ctx);
  void worker_main(int tid);
  void work_on_job(int tid);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex caller_mu_;  // one parallel_for at a time per pool

  // The current job, published under mu_ and read by workers after they see a new generation.
  std::mutex mu_;
  std::condition_variable cv_start_;
  std::condition_variable cv_done_;
  std::atomic<uint64_t> generation_{0};  // bumped (under mu_) when a job is published
  bool stop_ = false;
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};  // workers still inside the current job
  int sleepers_ = 0;            // workers blocked on cv_start_ (guarded by mu_)
  bool caller_sleeping_ = false;  // the caller blocked on cv_done_ (guarded by mu_)
};

}  // namespace slm
