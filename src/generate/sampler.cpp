// Sampler implementation: bias and penalties on a candidate array sized to the vocabulary, then
// the filter chain documented in sampler.h, then a draw with our own xoshiro256** generator.
#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace slm {

namespace {

// Total order: larger logit first, then lower id, so every sort gives the same result.
bool better(const TokenCandidate& a, const TokenCandidate& b) {
  if (a.logit != b.logit) return a.logit > b.logit;
  return a.id < b.id;
}

bool finite(float x) {
  return std::isfinite(x);
}

}  // namespace

Expected<Sampler> Sampler::create(const SamplerParams& p, int64_t n_vocab) {
  if (n_vocab <= 0 || n_vocab > std::numeric_limits<int32_t>::max()) {
    return error("sampler: invalid vocabulary size %lld", static_cast<long long>(n_vocab));
  }
  if (!(p.temperature >= 0.0f) || !finite(p.temperature)) {
    return error("sampler: temperature must be a finite number >= 0 (got %g)", p.temperature);
  }
  if (!(p.top_p >= 0.0f && p.top_p <= 1.0f)) {
    return error("sampler: top_p must be in [0, 1] (got %g)", p.top_p);
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return error("sampler: min_p must be in [0, 1] (got %g)", p.min_p);
  }
  if (!(p.repeat_penalty > 0.0f) || !finite(p.repeat_penalty)) {
    return error("sampler: repeat_penalty must be a finite number > 0 (got %g)", p.repeat_penalty);
  }
  if (!finite(p.frequency_penalty) || !finite(p.presence_penalty)) {
    return error("sampler: frequency_penalty and presence_penalty must be finite (got %g, %g)",
                 p.frequency_penalty, p.presence_penalty);
  }
  Sampler s;
  s.params_ = p;
  s.n_vocab_ = n_vocab;
  const auto v = static_cast<size_t>(n_vocab);
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || id >= n_vocab) {
      return error("sampler: logit_bias token id %d out of range [0, %lld)", id,
                   static_cast<long long>(n_vocab));
    }
    // -inf bans a token; +inf or NaN would turn the softmax into NaN.
    if (std::isnan(bias) || bias == std::numeric_limits<float>::infinity()) {
      return error("sampler: logit_bias for token %d must be a number or -inf (got %g)", id, bias);
    }
    if (s.bias_.empty()) s.bias_.assign(v, 0.0f);
    s.bias_[static_cast<size_t>(id)] += bias;
  }
  s.cand_.resize(v);
  s.counts_.assign(v, 0);
  s.seen_pos_.assign(v, -1);
  s.seen_.reserve(v);
  if (p.repeat_last_n > 0) s.window_.assign(static_cast<size_t>(p.repeat_last_n), 0);

  s.seed_ = p.seed;
  if (p.seed == SamplerParams::k_random_seed) {
    uint64_t seed = 0;
    try {
      std::random_device rd;
      seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    } catch (...) {
      seed = 0x853C49E6748FEA9BULL;  // no entropy source: still a valid, fixed seed
    }
    // Keep the reported seed distinct from the "random" marker so it can be replayed.
    s.seed_ = seed == SamplerParams::k_random_seed ? seed - 1 : seed;
  }
  s.rng_.reseed(s.seed_);
  return s;
}

void Sampler::accept(int32_t id) {
  if (id < 0 || id >= n_vocab_ || params_.repeat_last_n == 0) return;
  auto add = [this](int32_t t) {
    const auto i = static_cast<size_t>(t);
    if (counts_[i]++ == 0) {
      seen_pos_[i] = static_cast<int32_t>(seen_.size());
      seen_.push_back(t);  // capacity is n_vocab: never reallocates
    }
  };
  auto remove = [this](int32_t t) {
    const auto i = static_cast<size_t>(t);
    if (--counts_[i] == 0) {
      const auto pos = static_cast<size_t>(seen_pos_[i]);
      const int32_t last = seen_.back();
      seen_[pos] = last;
      seen_pos_[static_cast<size_t>(last)] = static_cast<int32_t>(pos);
      seen_.pop_back();
      seen_pos_[i] = -1;
    }
  };
  if (params_.repeat_last_n > 0) {
    const auto cap = static_cast<int64_t>(window_.size());
    if (window_len_ == cap) {
      remove(window_[static_cast<size_t>(window_pos_)]);
    } else {
      ++window_len_;
    }
    window_[static_cast<size_t>(window_pos_)] = id;
    window_pos_ = (window_pos_ + 1) % cap;
  }
  add(id);
}

void Sampler::reset() {
  for (int32_t t : seen_) {
    counts_[static_cast<size_t>(t)] = 0;
    seen_pos_[static_cast<size_t>(t)] = -1;
  }
  seen_.clear();
  window_pos_ = 0;
  window_len_ = 0;
  rng_.reseed(seed_);
}

Status Sampler::prepare(std::span<const float> logits) {
  if (static_cast<int64_t>(logits.size()) != n_vocab_) {
    return error("sampler: got %zu logits, expected n_vocab = %lld", logits.size(),
                 static_cast<long long>(n_vocab_));
  }
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    cand_[i] = {static_cast<int32_t>(i), std::isnan(l) ? neg_inf : l, 0.0f};
  }
  if (!bias_.empty()) {
    for (size_t i = 0; i < bias_.size(); ++i) cand_[i].logit += bias_[i];
  }
  const float rp = params_.repeat_penalty;
  const float fp = params_.frequency_penalty;
  const float pp = params_.presence_penalty;
  if (rp != 1.0f || fp != 0.0f || pp != 0.0f) {
    for (int32_t t : seen_) {
      const auto i = static_cast<size_t>(t);
      float l = cand_[i].logit;
      // CTRL-style repetition penalty that also pushes negative logits down.
      l = l <= 0.0f ? l * rp : l / rp;
      l -= static_cast<float>(counts_[i]) * fp + pp;  // counts_[i] > 0 for every seen token
      cand_[i].logit = l;
    }
  }
  n_cand_ = n_vocab_;
  sorted_ = false;
  return Status();
}

void Sampler::apply_filters() {
  TokenCandidate* c = cand_.data();
  // Banned tokens (-inf) can never be drawn; dropping them keeps the sorts short.
  int64_t n = 0;
  for (int64_t i = 0; i < n_cand_; ++i) {
    if (c[i].logit > -std::numeric_limits<float>::infinity()) c[n++] = c[i];
  }
  const int32_t k = params_.top_k;
  if (k > 0 && k < n) {
    std::partial_sort(c, c + k, c + n, better);
    n = k;
    sorted_ = true;
  }
  if (params_.top_p < 1.0f && n > 1) {
    if (!sorted_) {
      std::sort(c, c + n, better);
      sorted_ = true;
    }
    const double m = c[0].logit;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(c[i].logit) - m);
    double cum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      cum += std::exp(static_cast<double>(c[i].logit) - m) / sum;
      if (cum >= static_cast<double>(params_.top_p)) {
        n = i + 1;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f && n > 1) {
    float m = c[0].logit;
    if (!sorted_) {
      for (int64_t i = 1; i < n; ++i) m = std::max(m, c[i].logit);
    }
    // p_i / p_max = exp(l_i - l_max) >= min_p; order is preserved.
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (std::exp(static_cast<double>(c[i].logit) - m) >= static_cast<double>(params_.min_p)) {
        c[kept++] = c[i];
      }
    }
    n = kept;
  }
  const float inv_t = 1.0f / params_.temperature;
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    c[i].logit *= inv_t;
    m = std::max(m, c[i].logit);
  }
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(c[i].logit) - m);
  for (int64_t i = 0; i < n; ++i) {
    c[i].prob = static_cast<float>(std::exp(static_cast<double>(c[i].logit) - m) / sum);
  }
  n_cand_ = n;
}

Expected<std::span<const TokenCandidate>> Sampler::candidates(std::span<const float> logits) {
  SLM_TRY(prepare(logits));
  if (params_.temperature == 0.0f) {
    // Greedy: strict '>' while scanning ids upwards keeps the lowest id on ties.
    int64_t best = 0;
    for (int64_t i = 1; i < n_vocab_; ++i) {
      if (cand_[static_cast<size_t>(i)].logit > cand_[static_cast<size_t>(best)].logit) best = i;
    }
    if (!(cand_[static_cast<size_t>(best)].logit > -std::numeric_limits<float>::infinity())) {
      return error("sampler: every token is banned (all logits are -inf or NaN)");
    }
    cand_[0] = cand_[static_cast<size_t>(best)];
    cand_[0].prob = 1.0f;
    n_cand_ = 1;
  } else {
    apply_filters();
    if (n_cand_ == 0) return error("sampler: every token is banned (all logits are -inf or NaN)");
  }
  return std::span<const TokenCandidate>(cand_.data(), static_cast<size_t>(n_cand_));
}

Expected<int32_t> Sampler::sample(std::span<const float> logits) {
  SLM_ASSIGN_OR_RETURN(std::span<const TokenCandidate> c, candidates(logits));
  if (c.size() == 1) return c[0].id;
  // Inverse CDF over the candidates in their (deterministic) order.
  const double u = rng_.next_double();
  double cum = 0.0;
  for (const TokenCandidate& t : c) {
    cum += static_cast<double>(t.prob);
    if (u < cum) return t.id;
  }
  return c.back().id;  // rounding left u just above the total mass
}

}  // namespace slm
