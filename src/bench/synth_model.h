// Random-weight benchmark models with the exact shapes of real small models (SmolLM2-135M,
// Qwen2.5-0.5B, Llama-3.2-1B), written as GGUF that both slm and llama.cpp load.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace slm {

struct SynthModelSpec {
  std::string preset;        // "smollm2-135m", ...
  std::string arch;          // GGUF general.architecture: "llama" or "qwen2"
  std::string display_name;  // general.name
  int64_t n_vocab = 0;       // >= 259: <unk>, <s>, </s> and the 256 byte tokens come first
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool qkv_bias = false;
  bool tied = true;  // no output.weight: the output projection reads token_embd
};

// The built-in shapes: "smollm2-135m", "qwen2.5-0.5b", "llama3.2-1b", and "tiny" (a
// few-hundred-KB model for tests). nullptr if unknown.
const SynthModelSpec* find_synth_preset(const std::string& name);
std::vector<std::string> synth_preset_names();

struct SynthWriteOptions {
  DType matrix_type = DType::F32;  // F32, F16, BF16 or a type quantize_row supports (Q8_0, ...)
  uint64_t seed = 1;
  // Weights ~ uniform with this standard deviation (the scale of trained models' matrices,
  // so activations stay finite through every layer); norm weights are 1.
  float weight_std = 0.02f;
  // Called after each tensor with (bytes written so far, total bytes).
  std::function<void(uint64_t, uint64_t)> progress;
};

// Total file size the writer will produce for spec (exact).
Expected<uint64_t> synth_model_file_size(const SynthModelSpec& spec, const SynthWriteOptions& o);

// Writes the model tensor by tensor (memory use is a few MB whatever the model size) to a
// temporary file beside path, flushes it and renames it into place. The tokenizer is a
// SentencePiece-style ("llama") vocabulary: <unk>, <s>, </s>, byte tokens <0x00>..<0xFF>,
// then distinct filler pieces with decreasing scores.
Status write_synth_model_gguf(const SynthModelSpec& spec, const std::string& path,
                              const SynthWriteOptions& opts = {});

}  // namespace slm
