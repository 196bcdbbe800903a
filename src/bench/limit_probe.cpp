// A forked child that measures the machine's limits on request over a pipe: fixed-size request
// and reply records, the child exits when the parent closes its end (or dies).
#include "bench/limit_probe.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "core/mmap.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"

namespace slm {

namespace {

constexpr int k_max_passes = 64;

struct Request {
  double gemm_seconds = 0;
};

struct Reply {
  int32_t ok = 0;
  int32_t avx2 = 0;
  int32_t n_passes = 0;
  double passes[k_max_passes] = {};
  double gemm_gflops = 0;
  char error[200] = {};
};

[[noreturn]] void child_main(int in, int out, const BandwidthOptions& bw, int gemm_threads) {
  std::unique_ptr<ThreadPool> pool;
  Request req;
  while (read_full(in, &req, sizeof req)) {
    Reply rep;
    auto r = measure_read_bandwidth(bw);
    if (r.ok()) {
      rep.ok = 1;
      rep.avx2 = r->avx2 ? 1 : 0;
      rep.n_passes = static_cast<int32_t>(std::min<size_t>(r->pass_gbs.size(), k_max_passes));
      std::copy_n(r->pass_gbs.begin(), rep.n_passes, rep.passes);
      if (!pool) pool = std::make_unique<ThreadPool>(gemm_threads);
      rep.gemm_gflops = measure_sgemm_gflops(pool.get(), req.gemm_seconds);
    } else {
      std::snprintf(rep.error, sizeof rep.error, "%s", r.status().message().c_str());
    }
    if (!write_full(out, &rep, sizeof rep)) break;
  }
  // _exit: no atexit handlers or stdio flushes of the parent's state copied into this process.
  ::_exit(0);
}

}  // namespace

Expected<std::unique_ptr<LimitProbe>> LimitProbe::start(const BandwidthOptions& bw, int gemm_threads) {
  if (bw.passes < 1 || bw.passes > k_max_passes) {
    return error("bench: bandwidth passes per sample %d out of range [1, %d]", bw.passes, k_max_passes);
  }
  if (gemm_threads < 1 || gemm_threads > 1024) {
    return error("bench: threads %d out of range [1, 1024]", gemm_threads);
  }
  int down[2], up[2];
  if (::pipe(down) != 0) return error("bench: pipe: %s", std::strerror(errno));
  if (::pipe(up) != 0) {
    const int e = errno;
    ::close(down[0]);
    ::close(down[1]);
    return error("bench: pipe: %s", std::strerror(e));
  }
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    for (int fd : {down[0], down[1], up[0], up[1]}) ::close(fd);
    return error("bench: fork: %s", std::strerror(e));
  }
  if (pid == 0) {
    ::close(down[1]);
    ::close(up[0]);
    child_main(down[0], up[1], bw, gemm_threads);
  }
  ::close(down[0]);
  ::close(up[1]);
  std::unique_ptr<LimitProbe> p(new LimitProbe());
  p->bw_ = bw;
  p->pid_ = pid;
  p->to_child_ = down[1];
  p->from_child_ = up[0];
  return p;
}

LimitProbe::~LimitProbe() {
  if (to_child_ >= 0) ::close(to_child_);  // EOF: the child leaves its loop
  if (from_child_ >= 0) ::close(from_child_);
  if (pid_ > 0) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

Status LimitProbe::sample(double gemm_seconds) {
  Request req;
  req.gemm_seconds = gemm_seconds;
  // A write to a child that died would raise SIGPIPE and kill us: ignore it for this call.
  struct sigaction ign {}, old {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old);
  const bool sent = write_full(to_child_, &req, sizeof req);
  ::sigaction(SIGPIPE, &old, nullptr);
  Reply rep;
  if (!sent || !read_full(from_child_, &rep, sizeof rep)) {
    return error("bench: the limit-measuring child process stopped answering");
  }
  if (!rep.ok) {
    rep.error[sizeof rep.error - 1] = '\0';
    return error("%s", rep.error);
  }
  avx2_ = rep.avx2 != 0;
  bw_passes_.insert(bw_passes_.end(), rep.passes, rep.passes + rep.n_passes);
  gemm_.push_back(rep.gemm_gflops);
  return Status();
}

}  // namespace slm
