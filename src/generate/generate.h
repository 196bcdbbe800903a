// The generation loop: feed a prompt, then sample, stream text and stop on EOG, stop strings,
// max_tokens, a full context or cancellation. Works over small interfaces so tests can drive it.
//
// Semantics:
//   - The prompt is appended to whatever the source already holds (n_past), in batches of
//     n_batch tokens. It must fit: n_past + prompt length <= n_ctx, else an error naming both
//     numbers; nothing is ever truncated silently. An empty prompt is an error.
//   - Each step: sample a token (Sampler, see sampler.h), record it, then in this order:
//     end-of-generation token (tokenizer EOG ids + extra_eos, unless ignore_eos) -> "eos", its
//     text is not emitted; decode its text (streaming, never half a UTF-8 character) and look
//     for stop strings -> "stop"; max_tokens reached -> "length"; context full -> "length"
//     with a note; otherwise run the token through the model. The cancel flag is checked
//     before every token (and between prompt batches) -> "cancelled".
//   - Stop strings match across token boundaries. Neither the matched stop string nor anything
//     after it is emitted. Text that could be the start of a stop string is held back until it
//     is known not to be one (or generation ends, when it is released).
//   - The last sampled token is never run through the model, so afterwards
//     source.n_past() == n_past before + prompt length + tokens.size() - 1.
//   - Prompt tokens are recorded in the sampler's penalty history (llama.cpp does the same)
//     unless penalize_prompt is false.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "generate/sampler.h"
#include "tokenizer/tokenizer.h"

namespace slm {

class Model;
class Session;

// Anything that turns tokens into next-token logits (a Session, or a fake in tests).
class LogitsSource {
 public:
  virtual ~LogitsSource() = default;
  // Same contract as Session::forward: appends tokens at n_past; returns the last token's logits
  // (n_vocab floats) or all of them (tokens.size() x n_vocab) when all_logits is set.
  virtual Expected<std::span<const float>> forward(std::span<const int32_t> tokens,
                                                   bool all_logits) = 0;
  virtual void truncate(int64_t n) = 0;  // drop positions >= n
  virtual int64_t n_ctx() const = 0;
  virtual int64_t n_past() const = 0;
};

// Streaming token -> text conversion plus the end-of-generation test.
class TextDecoder {
 public:
  virtual ~TextDecoder() = default;
  virtual void push(int32_t id, std::string& out) = 0;  // appends the new complete text
  virtual void flush(std::string& out) = 0;             // appends what is held back
  virtual bool is_eog(int32_t id) const = 0;
};

// Adapters over the real classes (defined in generate/adapters.cpp).
class SessionLogits final : public LogitsSource {
 public:
  explicit SessionLogits(Session& session) : session_(session) {}
  Expected<std::span<const float>> forward(std::span<const int32_t> tokens,
                                           bool all_logits) override;
  void truncate(int64_t n) override;
  int64_t n_ctx() const override;
  int64_t n_past() const override;

 private:
  Session& session_;
};

// keep_leading_space: StreamDecoder drops the space SPM-style tokenizers put before the first
// word (right for decoding a whole sequence); a continuation of a prompt needs it, so by default
// it is put back. Pass false for Hugging Face decode() behaviour on the new tokens.
class TokenizerTextDecoder final : public TextDecoder {
 public:
  explicit TokenizerTextDecoder(const Tokenizer& tok, bool keep_leading_space = true)
      : tok_(tok), stream_(tok), keep_space_(keep_leading_space) {}
  void push(int32_t id, std::string& out) override;
  void flush(std::string& out) override;
  bool is_eog(int32_t id) const override;

 private:
  const Tokenizer& tok_;
  StreamDecoder stream_;
  bool keep_space_;
  bool started_ = false;  // a token with non-empty text was seen
};

// Incremental stop-string matcher with hold-back (see the semantics above).
class StopMatcher {
 public:
  StopMatcher() = default;
  explicit StopMatcher(const std::vector<std::string>& stops);  // empty strings are ignored
  // Appends text; sets emit to the text that is now safe to output (replacing its contents).
  // Returns true when a stop string was found: emit then holds the text before it.
  bool push(std::string_view text, std::string& emit);
  // End of generation: emit everything still held back.
  void flush(std::string& emit);
  // The stop string that matched, or "" if none did.
  std::string_view matched() const;

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  int64_t matched_ = -1;
};

enum class FinishReason { stop, length, eos, cancelled };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "eos", "cancelled"

struct GenerateOptions {
  SamplerParams sampling;
  int64_t max_tokens = 256;             // < 0: until EOG or the context is full
  std::vector<std::string> stop;        // stop strings
  std::vector<int32_t> extra_eos;       // end-of-generation ids besides the decoder's (model EOS)
  bool ignore_eos = false;              // keep going through EOG tokens
  bool penalize_prompt = true;          // put prompt tokens in the penalty history
  int64_t n_batch = 512;                // prompt tokens per forward call (<= 0: all at once)
  std::atomic<bool>* cancel = nullptr;  // set from another thread / signal handler to stop
  // Session/Tokenizer overloads: drop the leading space of the first generated word as
  // Hugging Face decode() does (default: keep it, as llama.cpp prints continuations).
  bool strip_leading_space = false;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // sampled tokens, including a final EOG token
  std::string text;             // everything passed to on_text, concatenated
  FinishReason finish_reason = FinishReason::length;
  std::string note;          // e.g. why "length" (context full)
  std::string stop_matched;  // the stop string that ended generation
  int64_t n_prompt = 0;
  int64_t n_generated = 0;  // == tokens.size()
  double prompt_ms = 0.0;   // prompt processing
  double gen_ms = 0.0;      // from the first sample to the end
  double prompt_tokens_per_s = 0.0;
  double gen_tokens_per_s = 0.0;
  uint64_t seed = 0;  // the sampler's effective seed
};

// Receives streamed text (never half a UTF-8 character, never stop-string text).
using TextCallback = std::function<void(std::string_view)>;

// The core loop. The sampler must be sized to the source's vocabulary (checked).
Expected<GenerateResult> generate(LogitsSource& source, TextDecoder& decoder,
                                  std::span<const int32_t> prompt, const GenerateOptions& opts,
                                  Sampler& sampler, const TextCallback& on_text);
// Same, with a fresh sampler built from opts.sampling once the vocabulary size is known.
Expected<GenerateResult> generate(LogitsSource& source, TextDecoder& decoder,
                                  std::span<const int32_t> prompt, const GenerateOptions& opts,
                                  const TextCallback& on_text);
// Over a real session and tokenizer; the Model overload adds the model's extra EOS ids.
Expected<GenerateResult> generate(Session& session, const Tokenizer& tok,
                                  std::span<const int32_t> prompt, const GenerateOptions& opts,
                                  const TextCallback& on_text);
Expected<GenerateResult> generate(Session& session, const Model& model,
                                  std::span<const int32_t> prompt, const GenerateOptions& opts,
                                  const TextCallback& on_text);

}  // namespace slm
