// The generation loop over LogitsSource / TextDecoder, and the stop-string matcher.
// Per-token work reuses buffers reserved up front; see generate.h for the exact semantics.
#include "generate/generate.h"

#include <algorithm>
#include <chrono>
#include <optional>

namespace slm {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

bool cancelled(const std::atomic<bool>* flag) {
  return flag != nullptr && flag->load(std::memory_order_relaxed);
}

}  // namespace

// ---- StopMatcher ----

StopMatcher::StopMatcher(const std::vector<std::string>& stops) {
  size_t longest = 0;
  for (const std::string& s : stops) {
    if (s.empty()) continue;
    stops_.push_back(s);
    longest = std::max(longest, s.size());
  }
  // pending_ never holds more than a partial stop plus one token's text; reserve generously so
  // ordinary tokens do not reallocate it.
  pending_.reserve(longest + 256);
}

bool StopMatcher::push(std::string_view text, std::string& emit) {
  emit.clear();
  if (matched_ >= 0) return true;  // already stopped: swallow everything
  pending_.append(text);
  if (stops_.empty()) {
    emit.swap(pending_);
    pending_.clear();
    return false;
  }
  // pending_ held no complete stop before this push, so the earliest match is the one to use.
  size_t best = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = pending_.find(stops_[i]);
    if (pos < best) {
      best = pos;
      matched_ = static_cast<int64_t>(i);
    }
  }
  if (best != std::string::npos) {
    emit.assign(pending_, 0, best);
    pending_.clear();
    return true;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string. Stop strings are
  // UTF-8, so the cut is always at a character boundary.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  const size_t n_emit = pending_.size() - hold;
  emit.assign(pending_, 0, n_emit);
  pending_.erase(0, n_emit);
  return false;
}

void StopMatcher::flush(std::string& emit) {
  emit.clear();
  if (matched_ >= 0) return;
  emit.swap(pending_);
  pending_.clear();
}

std::string_view StopMatcher::matched() const {
  return matched_ >= 0 ? std::string_view(stops_[static_cast<size_t>(matched_)])
                       : std::string_view();
}

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
    case FinishReason::eos:
      return "eos";
    case FinishReason::cancelled:
      return "cancelled";
  }
  return "unknown";
}

// ---- the loop ----

namespace {

// Feeds the prompt in batches. Returns the last token's logits, or an empty span if cancelled.
Expected<std::span<const float>> feed_prompt(LogitsSource& source, std::span<const int32_t> prompt,
                                             const GenerateOptions& opts) {
  const auto n = static_cast<int64_t>(prompt.size());
  const int64_t batch = opts.n_batch > 0 ? opts.n_batch : n;
  std::span<const float> logits;
  for (int64_t i = 0; i < n; i += batch) {
    if (cancelled(opts.cancel)) return std::span<const float>();
    const int64_t len = std::min(batch, n - i);
    SLM_ASSIGN_OR_RETURN(
        logits,
        source.forward(prompt.subspan(static_cast<size_t>(i), static_cast<size_t>(len)), false));
  }
  return logits;
}

// external == nullptr: build a sampler from opts.sampling once the logits reveal n_vocab.
Expected<GenerateResult> run_generate(LogitsSource& source, TextDecoder& decoder,
                                      std::span<const int32_t> prompt, const GenerateOptions& opts,
                                      Sampler* external, const TextCallback& on_text) {
  GenerateResult res;
  res.n_prompt = static_cast<int64_t>(prompt.size());
  const int64_t n_ctx = source.n_ctx();
  const int64_t n_past0 = source.n_past();
  if (prompt.empty()) return error("generate: the prompt is empty (at least one token is needed)");
  if (n_past0 + res.n_prompt > n_ctx) {
    return error(
        "generate: prompt of %lld tokens does not fit in the context (n_ctx = %lld, "
        "%lld positions already used); use a larger context or a shorter prompt",
        static_cast<long long>(res.n_prompt), static_cast<long long>(n_ctx),
        static_cast<long long>(n_past0));
  }
  const auto t_prompt = Clock::now();
  SLM_ASSIGN_OR_RETURN(std::span<const float> logits, feed_prompt(source, prompt, opts));
  res.prompt_ms = ms_since(t_prompt);
  if (res.prompt_ms > 0.0) res.prompt_tokens_per_s = 1000.0 * res.n_prompt / res.prompt_ms;
  if (logits.empty()) {
    res.finish_reason = FinishReason::cancelled;
    return res;
  }
  std::optional<Sampler> owned;
  if (external == nullptr) {
    SLM_ASSIGN_OR_RETURN(Sampler created,
                         Sampler::create(opts.sampling, static_cast<int64_t>(logits.size())));
    owned.emplace(std::move(created));
  }
  Sampler& sampler = external != nullptr ? *external : *owned;
  res.seed = sampler.seed();
  if (static_cast<int64_t>(logits.size()) != sampler.n_vocab()) {
    return error("generate: the model gives %zu logits but the sampler expects n_vocab = %lld",
                 logits.size(), static_cast<long long>(sampler.n_vocab()));
  }
  if (opts.penalize_prompt) {
    for (int32_t t : prompt) sampler.accept(t);
  }

  // Most tokens a run can produce: the context limit allows n_ctx - n_past + 1 samples.
  int64_t cap = n_ctx - n_past0 - res.n_prompt + 1;
  if (opts.max_tokens >= 0) cap = std::min(cap, opts.max_tokens);
  res.tokens.reserve(static_cast<size_t>(std::max<int64_t>(cap, 0)));

  StopMatcher stops(opts.stop);
  std::string piece, emit;
  piece.reserve(256);
  emit.reserve(256);
  auto output = [&](const std::string& s) {
    if (s.empty()) return;
    res.text.append(s);
    if (on_text) on_text(s);
  };

  const auto t_gen = Clock::now();
  bool done = false;  // finish_reason decided
  bool stopped = false;
  if (opts.max_tokens == 0) done = true;  // finish_reason stays "length"
  while (!done) {
    if (cancelled(opts.cancel)) {
      res.finish_reason = FinishReason::cancelled;
      break;
    }
    SLM_ASSIGN_OR_RETURN(const int32_t id, sampler.sample(logits));
    sampler.accept(id);
    res.tokens.push_back(id);

    const bool eog = decoder.is_eog(id) || std::find(opts.extra_eos.begin(), opts.extra_eos.end(),
                                                     id) != opts.extra_eos.end();
    if (eog && !opts.ignore_eos) {
      res.finish_reason = FinishReason::eos;
      break;
    }
    piece.clear();
    decoder.push(id, piece);
    stopped = stops.push(piece, emit);
    output(emit);
    if (stopped) {
      res.finish_reason = FinishReason::stop;
      break;
    }
    const auto n_gen = static_cast<int64_t>(res.tokens.size());
    if (opts.max_tokens >= 0 && n_gen >= opts.max_tokens) {
      res.finish_reason = FinishReason::length;
      break;
    }
    if (source.n_past() >= n_ctx) {
      res.finish_reason = FinishReason::length;
      res.note = "context full (n_ctx = " + std::to_string(n_ctx) + ")";
      break;
    }
    const int32_t one[1] = {id};
    SLM_ASSIGN_OR_RETURN(logits, source.forward(std::span<const int32_t>(one, 1), false));
  }

  if (!stopped) {
    // Release what the decoder and the stop matcher held back; the tail may still hold a stop.
    piece.clear();
    decoder.flush(piece);
    if (stops.push(piece, emit)) {
      res.finish_reason = FinishReason::stop;
      output(emit);
    } else {
      output(emit);
      stops.flush(emit);
      output(emit);
    }
  }
  res.stop_matched = std::string(stops.matched());
  res.n_generated = static_cast<int64_t>(res.tokens.size());
  res.gen_ms = ms_since(t_gen);
  if (res.gen_ms > 0.0) res.gen_tokens_per_s = 1000.0 * res.n_generated / res.gen_ms;
  return res;
}

}  // namespace

Expected<GenerateResult> generate(LogitsSource& source, TextDecoder& decoder,
                                  std::span<const int32_t> prompt, const GenerateOptions& opts,
                                  Sampler& sampler, const TextCallback& on_text) {
  return run_generate(source, decoder, prompt, opts, &sampler, on_text);
}

Expected<GenerateResult> generate(LogitsSource& source, TextDecoder& decoder,
                                  std::span<const int32_t> prompt, const GenerateOptions& opts,
                                  const TextCallback& on_text) {
  return run_generate(source, decoder, prompt, opts, nullptr, on_text);
}

}  // namespace slm
