// Random-weight fixture models for tests and benchmarks: one spec written either as a Hugging
// Face directory (config.json + model.safetensors) or as a GGUF file with the same function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "model/model.h"

namespace slm {

struct FixtureSpec {
  std::string arch = "llama";  // GGUF architecture: "llama", "qwen2", "qwen3" or "phi3"
  std::string hf_model_type;   // config.json model_type; empty: same as arch
  int64_t n_vocab = 256;
  int64_t n_embd = 64;
  int64_t n_layer = 2;
  int64_t n_head = 4;
  int64_t n_head_kv = 4;
  int64_t head_dim = 0;  // 0: n_embd / n_head
  int64_t n_ff = 96;
  int64_t n_ctx = 512;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScalingType rope_scaling = RopeScalingType::none;
  float rope_factor = 8.0f;
  float rope_low_freq_factor = 1.0f;
  float rope_high_freq_factor = 4.0f;
  int64_t rope_orig_ctx = 64;
  bool tied = false;      // no output.weight / lm_head.weight
  bool qkv_bias = false;  // q/k/v biases (Qwen2)
  bool qk_norm = false;   // q_norm / k_norm (Qwen3)
  // Fused qkv and gate_up tensors (Phi-3); always on for arch "phi3".
  bool fused = false;
  uint64_t seed = 1;
  // Round every matrix through this type (quantize, then dequantize) before writing the HF
  // dir, so an F32 HF dir holds exactly the values a GGUF of that type stores. F32: no-op.
  DType round_matrices = DType::F32;
  // Optional extras so loaders' tokenizer handling can be exercised:
  std::string vocab_gguf;        // GGUF file whose tokenizer.* metadata is copied (GGUF only);
                                 // n_vocab must equal its token count
  std::string chat_template;     // GGUF tokenizer.chat_template / HF tokenizer_config.json
  std::vector<int32_t> eos_ids;  // HF generation_config.json eos_token_id (a list if > 1)
};

// Writes config.json and model.safetensors (matrices in `dtype`: F32, F16 or BF16; vectors in
// F32) into dir, which must exist.
Status write_fixture_hf(const FixtureSpec& spec, const std::string& dir, DType dtype = DType::F32);

// Writes the same weights as a GGUF file with llama.cpp's conventions: canonical names, q/k
// rows permuted for arch "llama" (adjacent-pair rope), llama3 scaling as rope_freqs.weight.
// Matrices in `dtype` (F32, F16, BF16 or a type quantize_row supports: Q8_0, Q4_0, ...),
// vectors in F32.
Status write_fixture_gguf(const FixtureSpec& spec, const std::string& path,
                          DType dtype = DType::F32);

}  // namespace slm
