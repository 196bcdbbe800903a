// The machine's limits (read bandwidth, FP32 GEMM peak) sampled by a child process between the
// timed runs of `slm bench`, so they describe the same minutes and their buffers stay out of the
// benchmarked process's peak RSS.
#pragma once

#include <sys/types.h>

#include <memory>
#include <vector>

#include "bench/membw.h"
#include "core/status.h"

namespace slm {

class LimitProbe {
 public:
  // Forks the child. Call it before the process starts threads (the child only inherits the
  // calling thread). bw.passes is the number of passes per bandwidth sample.
  static Expected<std::unique_ptr<LimitProbe>> start(const BandwidthOptions& bw, int gemm_threads);
  ~LimitProbe();  // tells the child to exit and reaps it
  LimitProbe(const LimitProbe&) = delete;
  LimitProbe& operator=(const LimitProbe&) = delete;

  // One sample of each limit, taken while the caller waits (so nothing else of ours runs):
  // bw.passes bandwidth passes (GB/s each, appended to bandwidth_passes()) and sgemm 1024^3
  // runs for at least gemm_seconds (the best run's GFLOP/s appended to gemm_samples()).
  Status sample(double gemm_seconds);

  const std::vector<double>& bandwidth_passes() const { return bw_passes_; }
  const std::vector<double>& gemm_samples() const { return gemm_; }
  const BandwidthOptions& bandwidth_options() const { return bw_; }
  bool avx2() const { return avx2_; }

 private:
  LimitProbe() = default;
  BandwidthOptions bw_;
  pid_t pid_ = -1;
  int to_child_ = -1, from_child_ = -1;
  bool avx2_ = false;
  std::vector<double> bw_passes_, gemm_;
};

}  // namespace slm
