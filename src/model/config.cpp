// Config mapping: GGUF metadata, Hugging Face config.json and llama2.c headers all become one
// ModelConfig. Adding a model family that fits the decoder means adding an entry here.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "model/model_internal.h"

namespace slm {

namespace {

using json = nlohmann::json;

struct ArchInfo {
  const char* gguf_arch;  // general.architecture
  const char* hf_type;    // config.json model_type
  bool gguf_interleaved;  // rope layout in GGUF files of this arch
};

// llama.cpp's converter permutes q/k rows of "llama" models so that rope rotates adjacent
// pairs; the other families keep Hugging Face's half layout (NEOX).
constexpr ArchInfo k_archs[] = {
    {"llama", "llama", true},  {"llama", "mistral", true}, {"qwen2", "qwen2", false},
    {"qwen3", "qwen3", false}, {"phi3", "phi3", false},
};

const ArchInfo* find_gguf_arch(const std::string& a) {
  for (const auto& e : k_archs) {
    if (a == e.gguf_arch) return &e;
  }
  return nullptr;
}

const ArchInfo* find_hf_type(const std::string& t) {
  for (const auto& e : k_archs) {
    if (t == e.hf_type) return &e;
  }
  return nullptr;
}

// Typed reads of optional config.json fields; a present field of the wrong type is an error.
Status json_int(const json& j, const char* key, int64_t* out, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return error("config.json: missing field '%s'", key);
    return Status();
  }
  if (!it->is_number_integer()) return error("config.json: field '%s' is not an integer", key);
  *out = it->get<int64_t>();
  return Status();
}

Status json_float(const json& j, const char* key, float* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status();
  if (!it->is_number()) return error("config.json: field '%s' is not a number", key);
  *out = it->get<float>();
  return Status();
}

Status json_bool(const json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status();
  if (!it->is_boolean()) return error("config.json: field '%s' is not a boolean", key);
  *out = it->get<bool>();
  return Status();
}

}  // namespace

Status validate_config(const ModelConfig& c) {
  auto pos = [](int64_t v, const char* what) -> Status {
    if (v <= 0 || v > (int64_t{1} << 31))
      return error("model config: %s = %lld is out of range", what, (long long)v);
    return Status();
  };
  SLM_TRY(pos(c.n_vocab, "n_vocab"));
  SLM_TRY(pos(c.n_embd, "n_embd"));
  SLM_TRY(pos(c.n_layer, "n_layer"));
  SLM_TRY(pos(c.n_head, "n_head"));
  SLM_TRY(pos(c.n_head_kv, "n_head_kv"));
  SLM_TRY(pos(c.head_dim, "head_dim"));
  SLM_TRY(pos(c.n_ff, "n_ff"));
  if (c.n_layer > 4096)
    return error("model config: n_layer = %lld is too large", (long long)c.n_layer);
  if (c.n_head % c.n_head_kv != 0) {
    return error("model config: n_head %lld is not a multiple of n_head_kv %lld",
                 (long long)c.n_head, (long long)c.n_head_kv);
  }
  if (c.head_dim % 2 != 0)
    return error("model config: head_dim %lld is odd", (long long)c.head_dim);
  if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps))
    return error("model config: bad norm epsilon");
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta))
    return error("model config: bad rope theta");
  if (c.rope_scaling != RopeScalingType::none && !(c.rope_factor > 0)) {
    return error("model config: bad rope scaling factor");
  }
  if (c.rope_scaling == RopeScalingType::llama3 &&
      (!(c.rope_high_freq_factor > c.rope_low_freq_factor) || c.rope_orig_ctx <= 0)) {
    return error("model config: bad llama3 rope scaling parameters");
  }
  return Status();
}

Expected<ModelConfig> config_from_gguf(const GgufFile& g) {
  ModelConfig c;
  SLM_ASSIGN_OR_RETURN(c.arch, g.get_string("general.architecture"));
  const ArchInfo* ai = find_gguf_arch(c.arch);
  if (!ai) return error("unsupported GGUF architecture '%s'", c.arch.c_str());
  c.source_format = "gguf";
  SLM_ASSIGN_OR_RETURN(c.name, g.get_string_or("general.name", ""));
  const std::string p = c.arch + ".";
  SLM_ASSIGN_OR_RETURN(c.n_embd, g.get_int(p + "embedding_length"));
  SLM_ASSIGN_OR_RETURN(c.n_layer, g.get_int(p + "block_count"));
  SLM_ASSIGN_OR_RETURN(c.n_ff, g.get_int(p + "feed_forward_length"));
  SLM_ASSIGN_OR_RETURN(c.n_head, g.get_int(p + "attention.head_count"));
  SLM_ASSIGN_OR_RETURN(c.n_head_kv, g.get_int_or(p + "attention.head_count_kv", c.n_head));
  SLM_ASSIGN_OR_RETURN(c.n_ctx_train, g.get_int_or(p + "context_length", 2048));
  SLM_ASSIGN_OR_RETURN(double eps, g.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.norm_eps = static_cast<float>(eps);
  SLM_ASSIGN_OR_RETURN(double theta, g.get_float_or(p + "rope.freq_base", 10000.0));
  c.rope_theta = static_cast<float>(theta);
  if (c.n_head <= 0) return error("GGUF: %sattention.head_count must be positive", p.c_str());
  SLM_ASSIGN_OR_RETURN(c.head_dim, g.get_int_or(p + "attention.key_length", c.n_embd / c.n_head));
  SLM_ASSIGN_OR_RETURN(int64_t vlen, g.get_int_or(p + "attention.value_length", c.head_dim));
  if (vlen != c.head_dim) {
    return error("GGUF: %sattention.value_length %lld differs from key_length %lld (unsupported)",
                 p.c_str(), (long long)vlen, (long long)c.head_dim);
  }
  SLM_ASSIGN_OR_RETURN(int64_t rope_dims, g.get_int_or(p + "rope.dimension_count", c.head_dim));
  if (rope_dims != c.head_dim) {
    return error(
        "GGUF: %srope.dimension_count %lld != head_dim %lld (partial rotary is unsupported)",
        p.c_str(), (long long)rope_dims, (long long)c.head_dim);
  }
  SLM_ASSIGN_OR_RETURN(std::string scaling, g.get_string_or(p + "rope.scaling.type", "none"));
  if (scaling == "linear") {
    c.rope_scaling = RopeScalingType::linear;
    SLM_ASSIGN_OR_RETURN(double f, g.get_float(p + "rope.scaling.factor"));
    c.rope_factor = static_cast<float>(f);
  } else if (scaling != "none") {
    // llama3 GGUF files carry the rope_freqs tensor instead of a scaling type.
    return error("GGUF: %srope.scaling.type '%s' is unsupported", p.c_str(), scaling.c_str());
  }
  c.rope_interleaved = ai->gguf_interleaved;
  // n_vocab, tied embeddings, bias and qk-norm come from the tensors (bind_weights).
  return c;
}

Expected<ModelConfig> config_from_hf(const json& j) {
  if (!j.is_object()) return error("config.json: not a JSON object");
  ModelConfig c;
  auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string())
    return error("config.json: missing string field 'model_type'");
  std::string model_type = mt->get<std::string>();
  const ArchInfo* ai = find_hf_type(model_type);
  if (!ai) return error("config.json: unsupported model_type '%s'", model_type.c_str());
  c.arch = ai->gguf_arch;
  c.source_format = "hf";
  SLM_TRY(json_int(j, "vocab_size", &c.n_vocab, true));
  SLM_TRY(json_int(j, "hidden_size", &c.n_embd, true));
  SLM_TRY(json_int(j, "num_hidden_layers", &c.n_layer, true));
  SLM_TRY(json_int(j, "num_attention_heads", &c.n_head, true));
  SLM_TRY(json_int(j, "intermediate_size", &c.n_ff, true));
  c.n_head_kv = c.n_head;
  SLM_TRY(json_int(j, "num_key_value_heads", &c.n_head_kv, false));
  if (c.n_head <= 0) return error("config.json: num_attention_heads must be positive");
  c.head_dim = c.n_embd / c.n_head;
  SLM_TRY(json_int(j, "head_dim", &c.head_dim, false));
  c.n_ctx_train = 2048;
  SLM_TRY(json_int(j, "max_position_embeddings", &c.n_ctx_train, false));
  c.norm_eps = 1e-6f;
  SLM_TRY(json_float(j, "rms_norm_eps", &c.norm_eps));
  SLM_TRY(json_float(j, "rope_theta", &c.rope_theta));
  // transformers' per-family default is false; absent lm_head.weight also means tied.
  SLM_TRY(json_bool(j, "tie_word_embeddings", &c.tied_embeddings));
  float partial = 1.0f;
  SLM_TRY(json_float(j, "partial_rotary_factor", &partial));
  if (partial != 1.0f)
    return error("config.json: partial_rotary_factor %g is unsupported", partial);

  auto rs = j.find("rope_scaling");
  if (rs != j.end() && !rs->is_null()) {
    if (!rs->is_object()) return error("config.json: rope_scaling is not an object");
    std::string type;
    for (const char* k : {"rope_type", "type"}) {
      auto t = rs->find(k);
      if (t != rs->end() && t->is_string()) {
        type = t->get<std::string>();
        break;
      }
    }
    if (type == "llama3") {
      c.rope_scaling = RopeScalingType::llama3;
      SLM_TRY(json_float(*rs, "factor", &c.rope_factor));
      SLM_TRY(json_float(*rs, "low_freq_factor", &c.rope_low_freq_factor));
      SLM_TRY(json_float(*rs, "high_freq_factor", &c.rope_high_freq_factor));
      SLM_TRY(json_int(*rs, "original_max_position_embeddings", &c.rope_orig_ctx, false));
    } else if (type == "linear") {
      c.rope_scaling = RopeScalingType::linear;
      SLM_TRY(json_float(*rs, "factor", &c.rope_factor));
    } else if (type != "default" && !type.empty()) {
      return error("config.json: rope_scaling type '%s' is unsupported", type.c_str());
    }
  }
  c.rope_interleaved = false;  // Hugging Face checkpoints rotate halves
  return c;
}

ModelConfig config_from_llama2c(const Llama2cHeader& h) {
  ModelConfig c;
  c.arch = "llama";
  c.source_format = "llama2c";
  c.n_vocab = h.vocab_size;
  c.n_embd = h.dim;
  c.n_layer = h.n_layers;
  c.n_head = h.n_heads;
  c.n_head_kv = h.n_kv_heads;
  c.head_dim = h.n_heads > 0 ? h.dim / h.n_heads : 0;
  c.n_ff = h.hidden_dim;
  c.n_ctx_train = h.seq_len;
  c.norm_eps = k_llama2c_norm_eps;
  c.rope_theta = k_llama2c_rope_theta;
  c.rope_interleaved = true;
  c.tied_embeddings = h.shared_classifier;
  return c;
}

std::string hf_to_gguf_name(const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  static constexpr const char* k_prefix = "model.layers.";
  if (hf.rfind(k_prefix, 0) != 0) return "";
  size_t p = std::char_traits<char>::length(k_prefix);
  size_t dot = hf.find('.', p);
  if (dot == std::string::npos || dot == p || dot - p > 6) return "";
  for (size_t i = p; i < dot; ++i) {
    if (hf[i] < '0' || hf[i] > '9') return "";
  }
  std::string layer = hf.substr(p, dot - p);
  std::string rest = hf.substr(dot + 1);
  std::string suffix;
  for (const char* s : {".weight", ".bias"}) {
    size_t n = std::char_traits<char>::length(s);
    if (rest.size() > n && rest.compare(rest.size() - n, n, s) == 0) {
      suffix = s;
      rest.resize(rest.size() - n);
      break;
    }
  }
  if (suffix.empty()) return "";
  static const std::pair<const char*, const char*> k_table[] = {
      {"input_layernorm", "attn_norm"},    {"post_attention_layernorm", "ffn_norm"},
      {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},      {"self_attn.o_proj", "attn_output"},
      {"self_attn.qkv_proj", "attn_qkv"},  {"self_attn.q_norm", "attn_q_norm"},
      {"self_attn.k_norm", "attn_k_norm"}, {"mlp.gate_proj", "ffn_gate"},
      {"mlp.up_proj", "ffn_up"},           {"mlp.down_proj", "ffn_down"},
      {"mlp.gate_up_proj", "ffn_up"},
  };
  for (const auto& [from, to] : k_table) {
    if (rest == from) return "blk." + layer + "." + to + suffix;
  }
  return "";
}

}  // namespace slm
