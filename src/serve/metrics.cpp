// Prometheus text format (version 0.0.4) for the server's counters, histograms and gauges.
// Counters are kept here (not read from the engine) so they survive and count every route.
#include "serve/metrics.h"

#include <cstdio>

#include "serve/engine.h"

namespace slm::serve {
namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

void header(std::string* out, const char* name, const char* type, const char* help) {
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
}

}  // namespace

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < k_bounds.size() && seconds > k_bounds[i]) ++i;
  ++counts_[i];
  sum_ += seconds;
  ++count_;
}

void Histogram::render(const std::string& name, std::string* out) const {
  uint64_t cum = 0;
  for (size_t i = 0; i < k_bounds.size(); ++i) {
    cum += counts_[i];
    *out += name + "_bucket{le=\"" + num(k_bounds[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_[k_bounds.size()];
  *out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  *out += name + "_sum " + num(sum_) + "\n";
  *out += name + "_count " + std::to_string(count_) + "\n";
}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::observe_completion(int64_t n_prompt, int64_t n_generated, double ttft_ms,
                                 double gen_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  prompt_tokens_ += static_cast<uint64_t>(n_prompt > 0 ? n_prompt : 0);
  generated_tokens_ += static_cast<uint64_t>(n_generated > 0 ? n_generated : 0);
  if (n_generated > 0) ttft_.observe(ttft_ms / 1000.0);
  // Per-token latency: the time between tokens after the first.
  if (n_generated > 1) per_token_.observe(gen_ms / 1000.0 / static_cast<double>(n_generated - 1));
}

void Metrics::count_disconnect() {
  std::lock_guard<std::mutex> lock(mu_);
  ++disconnects_;
}

std::string Metrics::render(const EngineStats* stats, bool ready) const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  header(&out, "slm_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
  for (const auto& [key, n] : requests_) {
    out += "slm_requests_total{endpoint=\"" + key.first + "\",code=\"" + std::to_string(key.second) +
           "\"} " + std::to_string(n) + "\n";
  }
  header(&out, "slm_prompt_tokens_total", "counter", "Prompt tokens of finished completions.");
  out += "slm_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
  header(&out, "slm_generated_tokens_total", "counter", "Generated tokens of finished completions.");
  out += "slm_generated_tokens_total " + std::to_string(generated_tokens_) + "\n";
  header(&out, "slm_client_disconnects_total", "counter",
         "Requests cancelled because the client went away.");
  out += "slm_client_disconnects_total " + std::to_string(disconnects_) + "\n";
  header(&out, "slm_time_to_first_token_seconds", "histogram",
         "Submission to first generated token.");
  ttft_.render("slm_time_to_first_token_seconds", &out);
  header(&out, "slm_time_per_output_token_seconds", "histogram",
         "Mean time between generated tokens after the first, per request.");
  per_token_.render("slm_time_per_output_token_seconds", &out);
  header(&out, "slm_ready", "gauge", "1 once the model is loaded.");
  out += std::string("slm_ready ") + (ready ? "1" : "0") + "\n";
  EngineStats none;
  const EngineStats& s = stats ? *stats : none;
  header(&out, "slm_queue_depth", "gauge", "Requests waiting for a slot.");
  out += "slm_queue_depth " + std::to_string(s.queued) + "\n";
  header(&out, "slm_busy_slots", "gauge", "Slots decoding a request.");
  out += "slm_busy_slots " + std::to_string(s.busy_slots) + "\n";
  header(&out, "slm_slots", "gauge", "Slots (requests decoded concurrently).");
  out += "slm_slots " + std::to_string(s.n_slots) + "\n";
  return out;
}

}  // namespace slm::serve
