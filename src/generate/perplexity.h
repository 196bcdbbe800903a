// Perplexity with exactly the llama.cpp `perplexity` tool protocol, so numbers are comparable.
//
// Protocol (tools/perplexity/perplexity.cpp in llama.cpp, default mode without --ppl-stride):
//   - The text is tokenized once with the model's special-token rules (BOS prepended if the
//     model adds BOS; a model that appends EOS is refused).
//   - At least 2 * n_ctx tokens are required. The tokens are cut into
//     n_chunks = n_tokens / n_ctx non-overlapping windows of n_ctx tokens (the tail is dropped;
//     n_chunks may be capped by the caller).
//   - Each window is evaluated from an empty cache. If the model adds BOS, the window's first
//     token is replaced by BOS for evaluation (the original token is still the one scored, but
//     position 0 is never scored anyway).
//   - With first = n_ctx / 2, the logits at positions first .. n_ctx - 2 predict the tokens at
//     first + 1 .. n_ctx - 1: n_ctx - 1 - first scores per window, each
//     nll = -(l[tok] - max(l) - log(sum_j exp(l[j] - max(l)))).
//   - After each window the running estimate exp(sum nll / count) is reported ("[i]x.xxxx,").
//   - Final: PPL = exp(mean nll), and the +/- is PPL * sqrt((mean(nll^2) - mean(nll)^2) /
//     (count - 1)).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "generate/generate.h"

namespace slm {

class Session;
class Tokenizer;

struct PerplexityOptions {
  int64_t n_ctx = 512;    // window length (the source's context must be at least this)
  int64_t n_chunks = -1;  // < 0: every full window
  int64_t n_batch = 512;  // tokens per forward call within a window
  int32_t bos_id = -1;    // >= 0: evaluate each window with its first token replaced by this
  std::atomic<bool>* cancel = nullptr;
  // Called after each window with its 1-based index and the running PPL.
  std::function<void(int64_t chunk, double running_ppl)> on_chunk;
};

struct PerplexityResult {
  std::vector<double> chunk_ppl;  // running estimate after each window
  double ppl = 0.0;
  double ppl_error = 0.0;  // the "+/-" value; 0 when the variance estimate is not positive
  double mean_nll = 0.0;
  int64_t n_tokens = 0;  // tokens in the text
  int64_t n_ctx = 0;
  int64_t n_chunks = 0;
  int64_t n_scored = 0;  // predictions scored in total
  double seconds = 0.0;
};

// Over tokens that are already tokenized (opts.bos_id says whether to put BOS first).
Expected<PerplexityResult> perplexity(LogitsSource& source, std::span<const int32_t> tokens,
                                      const PerplexityOptions& opts);
// Tokenizes text like llama.cpp (add special tokens, do not parse them) and sets bos_id from the
// tokenizer; opts.bos_id is ignored.
Expected<PerplexityResult> perplexity(Session& session, const Tokenizer& tok, std::string_view text,
                                      const PerplexityOptions& opts);

// llama.cpp's output format: "[3]12.3456," and "Final estimate: PPL = 12.3456 +/- 0.12345".
std::string format_chunk_ppl(int64_t chunk, double running_ppl);
std::string format_final_ppl(const PerplexityResult& r);

}  // namespace slm
