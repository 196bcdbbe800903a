// Helpers for the model-parity tests: run the PyTorch reference (tests/ref/torch_model.py) on a
// Hugging Face directory, a deterministic token sequence, and the logits error metric.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slm::test {

// Logits (positions x vocab, row-major) of the PyTorch reference for toks; out_path is a scratch
// file. On failure records a test failure and returns an empty vector.
std::vector<float> torch_logits_hf(const std::string& hf_dir, const std::vector<int32_t>& toks,
                                   const std::string& out_path);

// n tokens from a fixed linear congruential sequence starting at seed, each < n_vocab.
std::vector<int32_t> lcg_tokens(int64_t n_vocab, uint32_t seed, int n = 40);

// max|a - b| / max|b| over one logits row; a non-finite value in a gives a huge error.
double logits_rel_err(const float* a, const float* b, int64_t n);

}  // namespace slm::test
