// The machine's memory read bandwidth, measured the way a weight-streaming forward pass reads:
// N threads each sum one slice of a buffer far larger than the last-level cache, read as four
// sequential streams per thread (the pattern that reaches the most bandwidth per core).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace slm {

struct BandwidthOptions {
  int n_threads = 1;
  uint64_t buffer_bytes = 512ull << 20;  // well above L3 so every pass comes from DRAM
  int passes = 10;                       // timed passes after one untimed warm-up pass
};

struct BandwidthResult {
  int n_threads = 0;
  uint64_t buffer_bytes = 0;
  std::vector<double> pass_gbs;  // every timed pass, GB/s (1e9 bytes per second)
  double best_gbs = 0;           // the fastest pass: the limit the hardware reached
  double median_gbs = 0;
  bool avx2 = false;  // which read loop ran (AVX2 loads or the scalar fallback)
};

// Allocates and touches the buffer, then times `passes` reads of it, each thread reading a
// contiguous 1/N slice. A pass is timed from the moment all threads are released until the
// last one finishes. Errors: bad options, allocation failure.
Expected<BandwidthResult> measure_read_bandwidth(const BandwidthOptions& opts);

}  // namespace slm
