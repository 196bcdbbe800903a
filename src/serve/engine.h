// The serving engine: continuous batching of completion requests over one model.
// N slots, each with its own KV cache region; one engine thread runs the decode steps of all
// active slots as one batched forward pass, admits queued requests between steps and retires
// finished ones. Results are batch-invariant: the same request and seed give the same tokens
// whatever else is running (prompts are evaluated per request; decode steps use arithmetic
// that does not depend on the batch's size or composition).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "generate/sampler.h"

namespace slm {
class Model;
}

namespace slm::serve {

struct EngineOptions {
  int n_slots = 4;          // requests decoded concurrently
  int64_t n_ctx = 2048;     // context per slot (prompt + generated tokens)
  int n_threads = 0;        // 0: all cores
  int max_queue = 64;       // waiting requests beyond the busy slots; more is "queue full"
  DType kv_type = DType::F16;
};

struct Request {
  std::vector<int32_t> prompt;  // already templated and tokenized; not empty
  SamplerParams sampling;       // seed k_random_seed: the engine picks one and reports it
  int64_t max_tokens = 256;     // capped to the slot's context left after the prompt
  std::vector<std::string> stop;
  bool ignore_eos = false;
  // Drop the space SentencePiece-style tokenizers put before the first generated word
  // (Hugging Face decode() behaviour); default keeps it, as `slm run` prints continuations.
  bool strip_leading_space = false;
  // Wall-clock limit from submission; time_point::max() means none.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

enum class Finish { stop, length, eos, cancelled, timeout, error };
const char* finish_name(Finish f);  // "stop", "length", "eos", "cancelled", "timeout", "error"

struct Completion {
  Finish finish = Finish::length;
  std::string text;          // everything passed to on_text
  std::string error;         // Finish::error only
  std::string stop_matched;
  int64_t n_prompt = 0;
  int64_t n_generated = 0;
  uint64_t seed = 0;
  double queue_ms = 0;       // submission -> slot assigned
  double ttft_ms = 0;        // submission -> first generated token
  double gen_ms = 0;         // first token -> done
};

// Callbacks run on the engine thread and must return quickly (hand the text to the
// connection's thread). on_text gets streamed text (never half a UTF-8 character, never
// stop-string text); returning false cancels the request. on_done is called exactly once.
struct Callbacks {
  std::function<bool(std::string_view text)> on_text;
  std::function<void(const Completion&)> on_done;
};

enum class SubmitError { none, queue_full, prompt_too_long, invalid, shutting_down };

struct SubmitResult {
  uint64_t id = 0;  // valid when error == none
  SubmitError error = SubmitError::none;
  std::string message;  // for errors: names the limit, e.g. "prompt has 5000 tokens; the context is 2048"
};

struct EngineStats {
  int n_slots = 0;
  int busy_slots = 0;
  int queued = 0;
  uint64_t prompt_tokens = 0;     // totals since start
  uint64_t generated_tokens = 0;
};

class Engine {
 public:
  static Expected<std::unique_ptr<Engine>> create(const Model& model, const EngineOptions& opts);
  virtual ~Engine() = default;  // cancels everything and joins the engine thread

  virtual SubmitResult submit(Request req, Callbacks cb) = 0;
  // Cancels a queued or running request (no-op if already done); its slot is free before
  // the next decode step and on_done reports Finish::cancelled.
  virtual void cancel(uint64_t id) = 0;
  virtual EngineStats stats() const = 0;
  // Stops admitting; cancel_running cancels in-flight requests, otherwise waits for them.
  // Returns when no request is left.
  virtual void shutdown(bool cancel_running) = 0;
  virtual const Model& model() const = 0;
};

}  // namespace slm::serve
