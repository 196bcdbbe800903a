// Fixture writer: deterministic random weights in Hugging Face layout, written as an HF
// directory or converted the way llama.cpp's converter does into a GGUF file.
#include "model/fixture.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/rng.h"
#include "core/mmap.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/quant.h"

namespace slm {

namespace {

// One logical tensor in PyTorch shape order (rows first) with its name in both formats.
struct FxTensor {
  std::string hf, gguf;
  std::vector<int64_t> shape;
  std::vector<float> data;
  bool matrix = false;
  int64_t permute_heads = 0;  // q/k of arch llama: heads whose rows GGUF reorders
};

// splitmix64: tiny, deterministic across platforms.
struct ValueRng : SplitMix64 {
  // Uniform in [-1, 1).
  float uniform() {
    return static_cast<float>(static_cast<double>(next() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
  }
};

int64_t head_dim_of(const FixtureSpec& s) {
  return s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_head;
}
bool fused_of(const FixtureSpec& s) {
  return s.fused || s.arch == "phi3";
}

std::vector<FxTensor> make_tensors(const FixtureSpec& s) {
  ValueRng rng{{s.seed * 0x1234567ull + 7}};
  const int64_t E = s.n_embd, D = head_dim_of(s), q_dim = s.n_head * D, kv_dim = s.n_head_kv * D;
  std::vector<FxTensor> out;
  // Matrices: uniform with std 1/sqrt(in) so activations stay O(1); norms near 1.
  auto matrix = [&](std::string hf, std::string gguf, int64_t rows, int64_t cols,
                    int64_t heads = 0) {
    FxTensor t{std::move(hf), std::move(gguf), {rows, cols}, {}, true, heads};
    float a = std::sqrt(3.0f / static_cast<float>(cols));
    t.data.resize(static_cast<size_t>(rows * cols));
    for (auto& v : t.data) v = a * rng.uniform();
    out.push_back(std::move(t));
  };
  auto vec = [&](std::string hf, std::string gguf, int64_t n, float base, float spread,
                 int64_t heads = 0) {
    FxTensor t{std::move(hf), std::move(gguf), {n}, {}, false, heads};
    t.data.resize(static_cast<size_t>(n));
    for (auto& v : t.data) v = base + spread * rng.uniform();
    out.push_back(std::move(t));
  };
  {
    FxTensor t{"model.embed_tokens.weight", "token_embd.weight", {s.n_vocab, E}, {}, true, 0};
    t.data.resize(static_cast<size_t>(s.n_vocab * E));
    for (auto& v : t.data) v = rng.uniform();
    out.push_back(std::move(t));
  }
  const bool llama_perm = s.arch == "llama";
  for (int64_t il = 0; il < s.n_layer; ++il) {
    const std::string h = "model.layers." + std::to_string(il) + ".";
    const std::string g = "blk." + std::to_string(il) + ".";
    vec(h + "input_layernorm.weight", g + "attn_norm.weight", E, 1.0f, 0.2f);
    if (fused_of(s)) {
      matrix(h + "self_attn.qkv_proj.weight", g + "attn_qkv.weight", q_dim + 2 * kv_dim, E);
    } else {
      matrix(h + "self_attn.q_proj.weight", g + "attn_q.weight", q_dim, E,
             llama_perm ? s.n_head : 0);
      matrix(h + "self_attn.k_proj.weight", g + "attn_k.weight", kv_dim, E,
             llama_perm ? s.n_head_kv : 0);
      matrix(h + "self_attn.v_proj.weight", g + "attn_v.weight", kv_dim, E);
      if (s.qkv_bias) {
        vec(h + "self_attn.q_proj.bias", g + "attn_q.bias", q_dim, 0.0f, 0.5f,
            llama_perm ? s.n_head : 0);
        vec(h + "self_attn.k_proj.bias", g + "attn_k.bias", kv_dim, 0.0f, 0.5f,
            llama_perm ? s.n_head_kv : 0);
        vec(h + "self_attn.v_proj.bias", g + "attn_v.bias", kv_dim, 0.0f, 0.5f);
      }
    }
    if (s.qk_norm) {
      vec(h + "self_attn.q_norm.weight", g + "attn_q_norm.weight", D, 1.0f, 0.3f);
      vec(h + "self_attn.k_norm.weight", g + "attn_k_norm.weight", D, 1.0f, 0.3f);
    }
    matrix(h + "self_attn.o_proj.weight", g + "attn_output.weight", E, q_dim);
    vec(h + "post_attention_layernorm.weight", g + "ffn_norm.weight", E, 1.0f, 0.2f);
    if (fused_of(s)) {
      matrix(h + "mlp.gate_up_proj.weight", g + "ffn_up.weight", 2 * s.n_ff, E);
    } else {
      matrix(h + "mlp.gate_proj.weight", g + "ffn_gate.weight", s.n_ff, E);
      matrix(h + "mlp.up_proj.weight", g + "ffn_up.weight", s.n_ff, E);
    }
    matrix(h + "mlp.down_proj.weight", g + "ffn_down.weight", E, s.n_ff);
  }
  vec("model.norm.weight", "output_norm.weight", E, 1.0f, 0.2f);
  if (!s.tied) matrix("lm_head.weight", "output.weight", s.n_vocab, E);
  return out;
}

// llama.cpp's converter reorders q/k rows per head from (2, D/2) to (D/2, 2), so that the
// halves rotated by Hugging Face become adjacent pairs: new row 2i+j = old row j*D/2 + i.
std::vector<float> permute_rows(const FxTensor& t) {
  const int64_t rows = t.shape[0], cols = t.shape.size() > 1 ? t.shape[1] : 1;
  const int64_t hd = rows / t.permute_heads, half = hd / 2;
  std::vector<float> out(t.data.size());
  for (int64_t h = 0; h < t.permute_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const float* src = t.data.data() + (h * hd + j * half + i) * cols;
        std::copy_n(src, cols, out.data() + (h * hd + 2 * i + j) * cols);
      }
    }
  }
  return out;
}

// Rows of `cols` values in type dt.
Expected<std::string> encode(const std::vector<float>& v, DType dt, int64_t cols) {
  std::string bytes;
  if (dt == DType::F32) {
    bytes.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  } else if (dt == DType::F16 || dt == DType::BF16) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      h[i] = dt == DType::F16 ? fp32_to_fp16(v[i]) : fp32_to_bf16(v[i]);
    bytes.assign(reinterpret_cast<const char*>(h.data()), h.size() * 2);
  } else {
    uint64_t rb = 0;
    if (!dtype_row_bytes(dt, cols, &rb)) {
      return error("fixture: %lld columns do not fit blocks of %s", (long long)cols,
                   dtype_name(dt));
    }
    const int64_t rows = static_cast<int64_t>(v.size()) / cols;
    bytes.resize(rb * static_cast<uint64_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      SLM_TRY(quantize_row(dt, v.data() + r * cols, bytes.data() + static_cast<uint64_t>(r) * rb,
                           cols));
    }
  }
  return bytes;
}

// The values a file of type dt holds for v: quantize then dequantize, row by row.
Expected<std::vector<float>> round_through(const std::vector<float>& v, DType dt, int64_t cols) {
  if (dt == DType::F32) return v;
  SLM_ASSIGN_OR_RETURN(std::string bytes, encode(v, dt, cols));
  uint64_t rb = 0;
  dtype_row_bytes(dt, cols, &rb);
  std::vector<float> out(v.size());
  const int64_t rows = static_cast<int64_t>(v.size()) / cols;
  for (int64_t r = 0; r < rows; ++r) {
    SLM_TRY(dequantize_row_checked(dt, bytes.data() + static_cast<uint64_t>(r) * rb,
                                   out.data() + r * cols, cols));
  }
  return out;
}

std::vector<int64_t> gguf_ne(const std::vector<int64_t>& shape) {
  return std::vector<int64_t>(shape.rbegin(), shape.rend());
}

// llama.cpp's converter stores llama3 scaling as per-frequency divisors.
std::vector<float> llama3_rope_freqs(const FixtureSpec& s) {
  const int64_t D = head_dim_of(s);
  const double pi = 3.14159265358979323846;
  const double lo = s.rope_low_freq_factor, hi = s.rope_high_freq_factor;
  const double orig = static_cast<double>(s.rope_orig_ctx);
  std::vector<float> f;
  for (int64_t i = 0; i < D; i += 2) {
    double freq = 1.0 / std::pow(static_cast<double>(s.rope_theta),
                                 static_cast<double>(i) / static_cast<double>(D));
    double wavelen = 2 * pi / freq;
    if (wavelen < orig / hi) {
      f.push_back(1.0f);
    } else if (wavelen > orig / lo) {
      f.push_back(s.rope_factor);
    } else {
      double smooth = (orig / wavelen - lo) / (hi - lo);
      f.push_back(static_cast<float>(1.0 / ((1 - smooth) / s.rope_factor + smooth)));
    }
  }
  return f;
}

}  // namespace

Status write_fixture_hf(const FixtureSpec& s, const std::string& dir, DType dtype) {
  using json = nlohmann::json;
  SafetensorsWriter w;
  for (const auto& t : make_tensors(s)) {
    const int64_t cols = t.shape.back();
    std::vector<float> data = t.data;
    if (t.matrix) {
      SLM_ASSIGN_OR_RETURN(data, round_through(t.data, s.round_matrices, cols));
    }
    SLM_ASSIGN_OR_RETURN(std::string bytes, encode(data, t.matrix ? dtype : DType::F32, cols));
    SLM_TRY(w.add_tensor(t.hf, t.matrix ? dtype : DType::F32, gguf_ne(t.shape), std::move(bytes)));
  }
  w.set_metadata("format", "pt");
  SLM_TRY(w.write(dir + "/model.safetensors"));

  json c;
  c["model_type"] = s.hf_model_type.empty() ? s.arch : s.hf_model_type;
  c["vocab_size"] = s.n_vocab;
  c["hidden_size"] = s.n_embd;
  c["num_hidden_layers"] = s.n_layer;
  c["num_attention_heads"] = s.n_head;
  c["num_key_value_heads"] = s.n_head_kv;
  c["head_dim"] = head_dim_of(s);
  c["intermediate_size"] = s.n_ff;
  c["max_position_embeddings"] = s.n_ctx;
  c["rms_norm_eps"] = s.norm_eps;
  c["rope_theta"] = s.rope_theta;
  c["tie_word_embeddings"] = s.tied;
  c["attention_bias"] = s.qkv_bias;
  c["hidden_act"] = "silu";
  if (s.rope_scaling == RopeScalingType::llama3) {
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", s.rope_factor},
                         {"low_freq_factor", s.rope_low_freq_factor},
                         {"high_freq_factor", s.rope_high_freq_factor},
                         {"original_max_position_embeddings", s.rope_orig_ctx}};
  } else if (s.rope_scaling == RopeScalingType::linear) {
    c["rope_scaling"] = {{"type", "linear"}, {"factor", s.rope_factor}};
  } else {
    c["rope_scaling"] = nullptr;
  }
  SLM_TRY(write_file_atomic(dir + "/config.json", c.dump(2)));
  if (!s.chat_template.empty()) {
    json tc = {{"chat_template", s.chat_template}};
    SLM_TRY(write_file_atomic(dir + "/tokenizer_config.json", tc.dump(2)));
  }
  if (!s.eos_ids.empty()) {
    json g;
    if (s.eos_ids.size() == 1) {
      g["eos_token_id"] = s.eos_ids[0];
    } else {
      g["eos_token_id"] = s.eos_ids;
    }
    SLM_TRY(write_file_atomic(dir + "/generation_config.json", g.dump(2)));
  }
  return Status();
}

Status write_fixture_gguf(const FixtureSpec& s, const std::string& path, DType dtype) {
  GgufWriter w;
  const std::string a = s.arch;
  w.set_string("general.architecture", a);
  w.set_string("general.name", "slm-fixture-" + a);
  w.set_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(a + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", s.norm_eps);
  w.set_f32(a + ".rope.freq_base", s.rope_theta);
  w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(head_dim_of(s)));
  if (s.head_dim > 0 && s.head_dim != s.n_embd / s.n_head) {
    w.set_u32(a + ".attention.key_length", static_cast<uint32_t>(s.head_dim));
    w.set_u32(a + ".attention.value_length", static_cast<uint32_t>(s.head_dim));
  }
  if (s.rope_scaling == RopeScalingType::linear) {
    w.set_string(a + ".rope.scaling.type", "linear");
    w.set_f32(a + ".rope.scaling.factor", s.rope_factor);
  }
  if (!s.vocab_gguf.empty()) {
    SLM_ASSIGN_OR_RETURN(GgufFile vocab, GgufFile::open(s.vocab_gguf));
    for (const auto& [key, value] : vocab.metadata()) {
      if (key.rfind("tokenizer.", 0) == 0) w.set_value(key, value);
    }
  }
  if (!s.chat_template.empty()) w.set_string("tokenizer.chat_template", s.chat_template);
  for (const auto& t : make_tensors(s)) {
    std::vector<float> data = t.permute_heads ? permute_rows(t) : t.data;
    DType dt = t.matrix ? dtype : DType::F32;
    SLM_ASSIGN_OR_RETURN(std::string bytes, encode(data, dt, t.shape.back()));
    SLM_TRY(w.add_tensor(t.gguf, dt, gguf_ne(t.shape), std::move(bytes)));
  }
  if (s.rope_scaling == RopeScalingType::llama3) {
    std::vector<float> f = llama3_rope_freqs(s);
    SLM_ASSIGN_OR_RETURN(std::string bytes, encode(f, DType::F32, static_cast<int64_t>(f.size())));
    SLM_TRY(w.add_tensor("rope_freqs.weight", DType::F32, {static_cast<int64_t>(f.size())},
                         std::move(bytes)));
  }
  return w.write(path);
}

}  // namespace slm
