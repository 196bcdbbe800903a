// `slm quantize` as a library call: load any model, pick each tensor's output type by a recipe
// (one type or a llama.cpp-style K-quant mix), quantize rows in parallel, stream a GGUF.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace slm {

// A named recipe: "Q4_K" (every matrix in one type) or a mix such as "Q4_K_M".
struct QuantRecipe {
  std::string name;       // canonical spelling, e.g. "Q4_K_M"
  DType base = DType::F32;  // the type most matrices get
  enum class Mix { none, q3_k_m, q4_k_s, q4_k_m, q5_k_s, q5_k_m } mix = Mix::none;
  int file_type = 0;  // general.file_type (llama.cpp's llama_ftype number)
};

// Parses a recipe name (case-insensitive): F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K
// Q5_K Q6_K Q3_K_M Q4_K_S Q4_K_M Q5_K_S Q5_K_M. The error lists the valid names.
Expected<QuantRecipe> parse_quant_recipe(const std::string& name);
// The valid names, in the order above.
const std::vector<std::string>& quant_recipe_names();
// A human description of the recipes and fallbacks (for --help).
std::string quant_recipe_help();

// The type tensor `name` (GGUF canonical name, e.g. "blk.3.ffn_down.weight") gets:
// vectors (is_matrix false) stay F32; matrices take the recipe's base type, or the mix's
// rule for output/attn_v/attn_qkv/attn_output/ffn_down by layer (n_layer layers); then
// fallback_type applies when ne0 cannot hold the chosen type's blocks.
// has_output: the model has a separate output.weight (else token_embd doubles as it).
DType choose_tensor_type(const QuantRecipe& r, const std::string& name, bool is_matrix,
                         int64_t ne0, int64_t n_layer, bool has_output);

// The type used instead of t for rows of ne0 elements when ne0 is not a multiple of t's block
// size: Q2_K, Q3_K -> Q4_0; Q4_K -> Q5_0; Q5_K -> Q5_1; Q6_K -> Q8_0 (as llama.cpp, with Q4_0
// standing in for its IQ4_NL); then any 32-block type that still does not fit -> F16.
DType fallback_type(DType t, int64_t ne0);

struct QuantizeProgress {
  int64_t tensor = 0;     // index of the tensor being written (0-based)
  int64_t n_tensors = 0;
  std::string name;       // its name
  DType type = DType::F32;
  uint64_t in_done = 0, in_total = 0;  // source weight bytes processed / in all
  uint64_t out_done = 0;               // output bytes written so far
  bool tensor_done = false;            // this call marks the end of a tensor
};

struct QuantizeOptions {
  std::string recipe = "Q8_0";
  int n_threads = 0;  // 0: all cores
  std::string tokenizer_path;  // llama2.c tokenizer.bin for llama2.c checkpoints
  std::function<void(const QuantizeProgress&)> on_progress;  // called from the calling thread
};

struct QuantizeSummary {
  uint64_t in_bytes = 0;   // source weight bytes
  uint64_t out_bytes = 0;  // output file size
  uint64_t n_elements = 0;
  uint64_t out_tensor_bytes = 0;  // tensor data only (for bits per weight)
  double seconds = 0;
  std::vector<std::pair<std::string, DType>> tensor_types;  // in file order
  double bits_per_weight() const {
    return n_elements ? 8.0 * static_cast<double>(out_tensor_bytes) / static_cast<double>(n_elements) : 0;
  }
};

// Loads `in` (GGUF file, HF directory or llama2.c checkpoint) and writes `out` by the recipe.
// Errors (nothing is written, an existing `out` stays intact): unknown recipe, unreadable
// input, missing output directory, out naming the input, a tensor that cannot be quantized.
Expected<QuantizeSummary> quantize_model(const std::string& in, const std::string& out,
                                         const QuantizeOptions& opts);

}  // namespace slm
