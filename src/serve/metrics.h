// Server metrics in the Prometheus text exposition format: requests by endpoint and status,
// token counters, time-to-first-token and per-token latency histograms, queue and slot gauges.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace slm::serve {

struct EngineStats;

// A cumulative histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  static constexpr std::array<double, 14> k_bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,    1.0,   2.5,  5.0,  10.0, 30.0};
  void observe(double seconds);
  // Appends the _bucket/_sum/_count lines for metric `name`.
  void render(const std::string& name, std::string* out) const;

 private:
  std::array<uint64_t, k_bounds.size() + 1> counts_{};  // last: +Inf only
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  // One finished HTTP request (any route).
  void count_request(const std::string& endpoint, int status);
  // One finished completion: token counts and latencies from the engine's report.
  void observe_completion(int64_t n_prompt, int64_t n_generated, double ttft_ms, double gen_ms);
  void count_disconnect();

  // The whole exposition; engine stats give the gauges (pass nullptr while loading).
  std::string render(const EngineStats* stats, bool ready) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0;
  uint64_t generated_tokens_ = 0;
  uint64_t disconnects_ = 0;
  Histogram ttft_;
  Histogram per_token_;
};

}  // namespace slm::serve
