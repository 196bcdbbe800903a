// Perplexity over a LogitsSource following llama.cpp's protocol (see perplexity.h): windows of
// n_ctx tokens, BOS at the start of each, scoring the second half. Logits are consumed batch by
// batch, so nothing of size n_ctx x n_vocab is ever kept.
#include "generate/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace slm {

namespace {

// -log softmax(l)[tok], computed like llama.cpp: float differences, double sum.
double token_nll(const float* l, int64_t n_vocab, int32_t tok) {
  float m = l[0];
  for (int64_t j = 1; j < n_vocab; ++j) m = std::max(m, l[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < n_vocab; ++j) sum += std::exp(l[j] - m);
  return -(static_cast<double>(l[tok] - m) - std::log(sum));
}

}  // namespace

Expected<PerplexityResult> perplexity(LogitsSource& source, std::span<const int32_t> tokens,
                                      const PerplexityOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n_ctx = opts.n_ctx;
  const auto n_tokens = static_cast<int64_t>(tokens.size());
  if (n_ctx < 3) {
    return error(
        "perplexity: n_ctx = %lld is too small (at least 3, so each window scores a "
        "token)",
        static_cast<long long>(n_ctx));
  }
  if (source.n_ctx() < n_ctx) {
    return error("perplexity: the session context (%lld) is smaller than n_ctx = %lld",
                 static_cast<long long>(source.n_ctx()), static_cast<long long>(n_ctx));
  }
  if (n_tokens < 2 * n_ctx) {
    return error(
        "perplexity: you need at least %lld tokens to evaluate perplexity with a "
        "context of %lld; the text tokenizes to only %lld tokens",
        static_cast<long long>(2 * n_ctx), static_cast<long long>(n_ctx),
        static_cast<long long>(n_tokens));
  }
  int64_t n_chunks = n_tokens / n_ctx;
  if (opts.n_chunks >= 0) n_chunks = std::min(n_chunks, opts.n_chunks);
  if (n_chunks == 0) return error("perplexity: n_chunks = 0: nothing to evaluate");
  const int64_t batch = opts.n_batch > 0 ? std::min(opts.n_batch, n_ctx) : n_ctx;
  const int64_t first = n_ctx / 2;

  PerplexityResult res;
  res.n_tokens = n_tokens;
  res.n_ctx = n_ctx;
  res.n_chunks = n_chunks;
  res.chunk_ppl.reserve(static_cast<size_t>(n_chunks));
  std::vector<int32_t> window(static_cast<size_t>(n_ctx));  // the evaluated copy (BOS first)
  double nll = 0.0, nll2 = 0.0;
  int64_t count = 0;

  for (int64_t c = 0; c < n_chunks; ++c) {
    if (opts.cancel != nullptr && opts.cancel->load(std::memory_order_relaxed)) {
      return error("perplexity: cancelled after %lld of %lld chunks", static_cast<long long>(c),
                   static_cast<long long>(n_chunks));
    }
    const std::span<const int32_t> orig =
        tokens.subspan(static_cast<size_t>(c * n_ctx), static_cast<size_t>(n_ctx));
    std::copy(orig.begin(), orig.end(), window.begin());
    if (opts.bos_id >= 0) window[0] = opts.bos_id;
    source.truncate(0);  // every window starts from an empty cache
    for (int64_t b0 = 0; b0 < n_ctx; b0 += batch) {
      const int64_t len = std::min(batch, n_ctx - b0);
      SLM_ASSIGN_OR_RETURN(
          std::span<const float> logits,
          source.forward(std::span<const int32_t>(window.data() + b0, static_cast<size_t>(len)),
                         true));
      if (logits.empty() || logits.size() % static_cast<size_t>(len) != 0) {
        return error("perplexity: the model returned %zu logits for %lld tokens", logits.size(),
                     static_cast<long long>(len));
      }
      const auto n_vocab = static_cast<int64_t>(logits.size()) / len;
      // Row r is position b0 + r; positions first .. n_ctx - 2 predict the next original token.
      for (int64_t r = 0; r < len; ++r) {
        const int64_t pos = b0 + r;
        if (pos < first || pos > n_ctx - 2) continue;
        const int32_t target = orig[static_cast<size_t>(pos + 1)];
        if (target < 0 || target >= n_vocab) {
          return error("perplexity: token %d at index %lld is outside the vocabulary (%lld)",
                       target, static_cast<long long>(c * n_ctx + pos + 1),
                       static_cast<long long>(n_vocab));
        }
        const double v = token_nll(logits.data() + r * n_vocab, n_vocab, target);
        nll += v;
        nll2 += v * v;
      }
    }
    count += n_ctx - 1 - first;
    const double running = std::exp(nll / static_cast<double>(count));
    res.chunk_ppl.push_back(running);
    if (opts.on_chunk) opts.on_chunk(c + 1, running);
  }

  const double mean = nll / static_cast<double>(count);
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  res.mean_nll = mean;
  res.ppl = std::exp(mean);
  res.ppl_error =
      (var > 0.0 && count > 1) ? res.ppl * std::sqrt(var / static_cast<double>(count - 1)) : 0.0;
  res.n_scored = count;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

std::string format_chunk_ppl(int64_t chunk, double running_ppl) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "[%lld]%.4f,", static_cast<long long>(chunk), running_ppl);
  return buf;
}

std::string format_final_ppl(const PerplexityResult& r) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "Final estimate: PPL = %.4f +/- %.5f", r.ppl, r.ppl_error);
  return buf;
}

}  // namespace slm
