// What a model path is (GGUF file, Hugging Face directory, llama2.c checkpoint) and the parts
// that can be loaded without the weights: tokenizer, chat template, special token strings.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace slm {

enum class ModelFormat { gguf, hf_dir, llama2c };
const char* model_format_name(ModelFormat f);

// Directory -> hf_dir; file starting with "GGUF" -> gguf; any other regular file -> llama2c.
Expected<ModelFormat> detect_model_format(const std::string& path);

struct ModelMeta {
  ModelFormat format = ModelFormat::gguf;
  std::unique_ptr<Tokenizer> tokenizer;  // null if the model has none
  std::string chat_template;             // empty if none
  std::string bos_token, eos_token;      // token strings for templates ("" if none)
};

// Loads tokenizer and chat template only (a vocab-only GGUF is enough). For llama2.c the
// tokenizer comes from tokenizer_path (required).
Expected<ModelMeta> load_model_meta(const std::string& path, const std::string& tokenizer_path);

// Hugging Face tokenizer_config.json helpers: the chat template (string, or the "default" entry
// of a list of {name, template}) and a special token given as a string or {"content": ...}.
std::string hf_chat_template(const std::string& tokenizer_config_json);
std::string hf_special_token(const std::string& tokenizer_config_json, const char* key);

}  // namespace slm
