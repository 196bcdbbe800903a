// Token sampling: logit bias, repetition/frequency/presence penalties, top-k / top-p / min-p
// filters, temperature, and a portable seeded RNG, with per-sequence history for penalties.
//
// Semantics (llama.cpp's default sampler chain; V = vocabulary size, c[t] = count of token t
// among the last repeat_last_n accepted tokens):
//   1. logit bias: l[t] += bias[t] (-inf bans a token).
//   2. penalties, for tokens with c[t] > 0:
//      repetition: l[t] = l[t] <= 0 ? l[t] * repeat_penalty : l[t] / repeat_penalty;
//      frequency / presence (OpenAI): l[t] -= c[t] * frequency_penalty + presence_penalty.
//   3. temperature == 0: greedy, argmax of the penalised logits, lowest id on ties. Stop here.
//   4. top-k (k <= 0 or k >= V: off): keep the k largest logits.
//   5. top-p (p >= 1: off): over the softmax (temperature 1) of the survivors, keep the
//      smallest prefix of the sorted list whose mass is >= p.
//   6. min-p (p <= 0: off): keep tokens with probability >= min_p * the top probability.
//   7. temperature: l /= T, then draw from softmax(l) over the survivors.
// Candidates are ordered by (logit descending, id ascending), a total order, so results do not
// depend on the standard library's sort. Randomness comes from xoshiro256** seeded by SplitMix64:
// the same seed gives the same tokens on every platform (up to libm's expf).
// Defaults are llama.cpp's (T 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off, window 64).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "core/status.h"

namespace slm {

struct SamplerParams {
  // Seed meaning "pick one from std::random_device" (the chosen seed is then reported by
  // Sampler::seed()).
  static constexpr uint64_t k_random_seed = ~uint64_t{0};

  float temperature = 0.8f;        // 0: greedy; must be >= 0
  int32_t top_k = 40;              // <= 0: off
  float top_p = 0.95f;             // in (0, 1]; 1: off
  float min_p = 0.05f;             // in [0, 1]; 0: off
  float repeat_penalty = 1.0f;     // > 0; 1: off
  int32_t repeat_last_n = 64;      // penalty window; 0: penalties off; < 0: every accepted token
  float frequency_penalty = 0.0f;  // subtract count * f
  float presence_penalty = 0.0f;   // subtract p once a token was seen
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, additive bias)
  uint64_t seed = k_random_seed;
};

// One token with its (processed) logit and its probability among the final candidates.
struct TokenCandidate {
  int32_t id = 0;
  float logit = 0.0f;
  float prob = 0.0f;
};

// A sampler for one sequence. All buffers are sized to the vocabulary at creation; sampling and
// accepting a token never allocate.
class Sampler {
 public:
  // Validates the parameters (ranges, NaN, logit_bias ids < n_vocab).
  static Expected<Sampler> create(const SamplerParams& params, int64_t n_vocab);

  // Picks the next token from logits (n_vocab floats). Does not record it: call accept().
  // Error: logits of the wrong size, or every token banned (all logits -inf / NaN).
  Expected<int32_t> sample(std::span<const float> logits);

  // Runs steps 1-2 and 4-7 without drawing: the surviving candidates with their final logits
  // and normalised probabilities, in (probability desc, id asc) order when any filter sorted
  // them, else in id order. With temperature 0 this is the single greedy token with prob 1.
  // The span is valid until the next call.
  Expected<std::span<const TokenCandidate>> candidates(std::span<const float> logits);

  // Records a token in the penalty history (generated tokens, and prompt tokens if the caller
  // wants them penalised as llama.cpp does).
  void accept(int32_t id);
  // Forgets the history and restarts the RNG from the seed.
  void reset();

  const SamplerParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }  // the effective seed
  int64_t n_vocab() const { return n_vocab_; }

 private:
  Sampler() = default;
  Status prepare(std::span<const float> logits);  // fills cand_ with biased, penalised logits
  void apply_filters();                           // top-k, top-p, min-p, temperature, softmax

  SamplerParams params_;
  uint64_t seed_ = 0;
  int64_t n_vocab_ = 0;
  Rng rng_;
  std::vector<TokenCandidate> cand_;  // n_vocab capacity; first n_cand_ are live
  int64_t n_cand_ = 0;
  bool sorted_ = false;
  std::vector<float> bias_;        // n_vocab, dense; empty when there is no bias
  std::vector<int32_t> counts_;    // n_vocab: occurrences within the penalty window
  std::vector<int32_t> seen_;      // distinct tokens with counts_ > 0 (n_vocab capacity)
  std::vector<int32_t> seen_pos_;  // n_vocab: index of a token in seen_, -1 if absent
  std::vector<int32_t> window_;    // ring buffer of the last repeat_last_n accepted tokens
  int64_t window_pos_ = 0;
  int64_t window_len_ = 0;
};

}  // namespace slm
