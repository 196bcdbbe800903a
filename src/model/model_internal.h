// Internals shared by the model loaders (config.cpp, loader.cpp) and the forward pass:
// Model::Parts (what a loader produces) and the config mapping functions.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mmap.h"
#include "core/status.h"
#include "model/model.h"

namespace slm {

class GgufFile;
struct Llama2cHeader;

// Canonical (GGUF-named) tensors of one model, as views into whichever files hold them.
using TensorMap = std::map<std::string, TensorView, std::less<>>;

struct Model::Parts {
  ModelConfig config;
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string chat_template;
  std::vector<int32_t> extra_eos;
  // Keep-alive for the views: the parsed file objects (type-erased) and converted buffers.
  std::vector<std::shared_ptr<void>> owners;
  std::vector<std::vector<float>> f32_buffers;
  std::vector<TensorView> all_tensors;  // every tensor of the source file(s), for info
  // The weights are views into read-only file mappings (GGUF), whose pages may be dropped and
  // are read back from the file if touched again.
  bool weights_file_mapped = false;
};

// Hyper-parameters from GGUF metadata ({arch}.* keys). Errors name the key.
Expected<ModelConfig> config_from_gguf(const GgufFile& gguf);
// Hyper-parameters from a Hugging Face config.json document. Errors name the field.
Expected<ModelConfig> config_from_hf(const nlohmann::json& cfg);
// Hyper-parameters from a llama2.c header (arch "llama", adjacent-pair rope).
ModelConfig config_from_llama2c(const Llama2cHeader& h);

// Hugging Face tensor name -> canonical GGUF name ("" for tensors slm does not use).
// Fused Phi-3 tensors map to blk.N.attn_qkv.weight and blk.N.ffn_up.weight (gate then up).
std::string hf_to_gguf_name(const std::string& hf);

// Checks the config for consistency (positive sizes, divisibility, supported features).
Status validate_config(const ModelConfig& c);

// Binds canonical tensors to ModelWeights: checks every shape and dtype, splits fused
// tensors into row ranges, converts small vectors (norms, biases) to F32 owned by parts.
// Also sets config.tied_embeddings when output.weight is absent, and qkv_bias / qk_norm when
// the tensors are present.
Status bind_weights(const TensorMap& tensors, Model::Parts* parts);

}  // namespace slm
