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
  // Claims and runs chunks of job `gen` until none is left (or a newer job replaced it).
  void work_on_job(uint64_t gen, int tid);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex caller_mu_;  // one parallel_for at a time per pool

  // The current job. A job is done when its finished item count reaches n, not when every
  // worker has checked in, so a worker the OS has not scheduled (an oversubscribed machine)
  // never holds up the caller: whoever runs takes the chunks. The cursor packs the job's
  // generation (high 24 bits) with the next unclaimed index (low 40 bits); a worker claims a
  // chunk by compare-exchange on it, which fails if the job it read has been replaced, so a
  // late worker cannot run a chunk of a finished job. The job fields are atomics because such
  // a late worker may read them while the caller publishes the next job (it then discards them).
  std::atomic<uint64_t> cursor_{0};
  std::atomic<Task> task_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> chunk_{1};  // the job's min_chunk (claims are guided, see work_on_job)
  std::atomic<int64_t> done_{0};  // items finished in the current job
  std::atomic<bool> stop_{false};

  // Sleeping: workers idle past the spin time wait on cv_start_; the caller, once its own
  // chunks are done and the spin time passed, on cv_done_.
  std::mutex mu_;
  std::condition_variable cv_start_;
  std::condition_variable cv_done_;
  int sleepers_ = 0;              // workers blocked on cv_start_ (guarded by mu_)
  bool caller_sleeping_ = false;  // the caller blocked on cv_done_ (guarded by mu_)
};

}  // namespace slm
