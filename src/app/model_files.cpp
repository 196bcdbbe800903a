// Format detection and weight-free loading of tokenizer, chat template and special tokens.
#include "app/model_files.h"

#include <sys/stat.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/mmap.h"
#include "formats/gguf.h"

namespace slm {

const char* model_format_name(ModelFormat f) {
  switch (f) {
    case ModelFormat::gguf: return "gguf";
    case ModelFormat::hf_dir: return "hf";
    case ModelFormat::llama2c: return "llama2c";
  }
  return "unknown";
}

Expected<ModelFormat> detect_model_format(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return error("%s: cannot open: %s", path.c_str(), std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return ModelFormat::hf_dir;
  if (!S_ISREG(st.st_mode)) return error("%s: not a file or directory", path.c_str());
  SLM_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  if (map->size() >= 4 && std::memcmp(map->data(), "GGUF", 4) == 0) return ModelFormat::gguf;
  return ModelFormat::llama2c;
}

namespace {

nlohmann::json parse_json_or_null(const std::string& text) {
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string token_string(const Tokenizer& tok, int32_t id) {
  return id >= 0 && id < tok.vocab_size() ? tok.token_text(id) : std::string();
}

}  // namespace

std::string hf_chat_template(const std::string& config_json) {
  nlohmann::json j = parse_json_or_null(config_json);
  if (!j.is_object() || !j.contains("chat_template")) return "";
  const auto& t = j["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (const auto& e : t) {
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
          e["template"].is_string()) {
        return e["template"].get<std::string>();
      }
    }
  }
  return "";
}

std::string hf_special_token(const std::string& config_json, const char* key) {
  nlohmann::json j = parse_json_or_null(config_json);
  if (!j.is_object() || !j.contains(key)) return "";
  const auto& t = j[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) {
    return t["content"].get<std::string>();
  }
  return "";
}

Expected<ModelMeta> load_model_meta(const std::string& path, const std::string& tokenizer_path) {
  SLM_ASSIGN_OR_RETURN(ModelFormat fmt, detect_model_format(path));
  ModelMeta meta;
  meta.format = fmt;
  switch (fmt) {
    case ModelFormat::gguf: {
      SLM_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(path));
      if (gguf.has("tokenizer.ggml.model")) {
        auto tok = Tokenizer::from_gguf(gguf);
        if (!tok.ok()) return tok.status().with_context(path);
        meta.tokenizer = std::move(tok).value();
      }
      SLM_ASSIGN_OR_RETURN(meta.chat_template, gguf.get_string_or("tokenizer.chat_template", ""));
      break;
    }
    case ModelFormat::hf_dir: {
      std::string tj = path + "/tokenizer.json", tc = path + "/tokenizer_config.json";
      std::string config_text;
      if (file_exists(tc)) {
        SLM_ASSIGN_OR_RETURN(config_text, read_file(tc, 64ull << 20));
        meta.chat_template = hf_chat_template(config_text);
      }
      if (file_exists(tj)) {
        SLM_ASSIGN_OR_RETURN(std::string json_text, read_file(tj, 512ull << 20));
        auto tok = Tokenizer::from_hf_json(json_text, config_text);
        if (!tok.ok()) return tok.status().with_context(tj);
        meta.tokenizer = std::move(tok).value();
      }
      if (meta.chat_template.empty() && file_exists(path + "/chat_template.jinja")) {
        SLM_ASSIGN_OR_RETURN(meta.chat_template, read_file(path + "/chat_template.jinja"));
      }
      if (!config_text.empty()) {
        meta.bos_token = hf_special_token(config_text, "bos_token");
        meta.eos_token = hf_special_token(config_text, "eos_token");
      }
      break;
    }
    case ModelFormat::llama2c: {
      if (tokenizer_path.empty()) {
        return error("%s: llama2.c checkpoints keep their tokenizer in a separate file: "
                     "pass --tokenizer tokenizer.bin", path.c_str());
      }
      SLM_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
      int32_t vocab = 0;
      if (map->size() >= 28) std::memcpy(&vocab, map->data() + 20, 4);
      int64_t v = vocab < 0 ? -static_cast<int64_t>(vocab) : vocab;
      auto tok = Tokenizer::from_llama2c(tokenizer_path, v);
      if (!tok.ok()) return tok.status();
      meta.tokenizer = std::move(tok).value();
      break;
    }
  }
  if (meta.tokenizer) {
    if (meta.bos_token.empty()) meta.bos_token = token_string(*meta.tokenizer, meta.tokenizer->bos_id());
    if (meta.eos_token.empty()) meta.eos_token = token_string(*meta.tokenizer, meta.tokenizer->eos_id());
  }
  return meta;
}

}  // namespace slm
