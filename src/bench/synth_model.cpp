// Streaming GGUF writer for random-weight benchmark models: the header (metadata, tokenizer,
// tensor infos) is built in memory, then each tensor is generated and written in row blocks.
#include "bench/synth_model.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/rng.h"
#include "core/reader.h"
#include "formats/gguf.h"
#include "kernels/quant.h"

namespace slm {

namespace {

const SynthModelSpec k_presets[] = {
    // SmolLM2-135M: Llama architecture, tied embeddings.
    {"smollm2-135m", "llama", "SmolLM2-135M shapes, random weights", 49152, 576, 30, 9, 3, 1536,
     8192, 1e-5f, 100000.0f, false, true},
    // Qwen2.5-0.5B: q/k/v biases, tied embeddings.
    {"qwen2.5-0.5b", "qwen2", "Qwen2.5-0.5B shapes, random weights", 151936, 896, 24, 14, 2, 4864,
     32768, 1e-6f, 1000000.0f, true, true},
    // Llama-3.2-1B: tied embeddings, rope theta 500000 (its llama3 frequency scaling is left
    // out: it changes no shape and no cost).
    {"llama3.2-1b", "llama", "Llama-3.2-1B shapes, random weights", 128256, 2048, 16, 32, 8, 8192,
     131072, 1e-5f, 500000.0f, false, true},
    // A small model for tests of the bench command itself.
    {"tiny", "llama", "tiny bench fixture, random weights", 512, 64, 2, 4, 2, 128, 512, 1e-5f,
     10000.0f, false, true},
};

// GGUF metadata and tensor-info encoding (little-endian, as the format defines).
void put_u32(std::string* o, uint32_t v) { o->append(reinterpret_cast<const char*>(&v), 4); }
void put_u64(std::string* o, uint64_t v) { o->append(reinterpret_cast<const char*>(&v), 8); }
void put_f32(std::string* o, float v) { o->append(reinterpret_cast<const char*>(&v), 4); }
void put_str(std::string* o, const std::string& s) {
  put_u64(o, s.size());
  o->append(s);
}

// The header under construction: counts are patched in at the end.
struct Header {
  std::string kv;
  uint64_t n_kv = 0;
  void key(const std::string& k, GgufType t) {
    put_str(&kv, k);
    put_u32(&kv, static_cast<uint32_t>(t));
    ++n_kv;
  }
  void u32(const std::string& k, uint32_t v) {
    key(k, GgufType::UINT32);
    put_u32(&kv, v);
  }
  void f32(const std::string& k, float v) {
    key(k, GgufType::FLOAT32);
    put_f32(&kv, v);
  }
  void str(const std::string& k, const std::string& v) {
    key(k, GgufType::STRING);
    put_str(&kv, v);
  }
  void array_head(const std::string& k, GgufType elem, uint64_t n) {
    key(k, GgufType::ARRAY);
    put_u32(&kv, static_cast<uint32_t>(elem));
    put_u64(&kv, n);
  }
};

struct TensorPlan {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order
  DType dtype;
  enum Fill { random, ones } fill;
  uint64_t nbytes = 0;
  uint64_t offset = 0;  // relative to the data section
};

constexpr uint64_t k_align = 32;
uint64_t align_up(uint64_t x) { return (x + k_align - 1) / k_align * k_align; }

// Filler piece i: "▁" followed by i in base 26 letters, so every piece is distinct.
std::string filler_piece(int64_t i) {
  std::string s;
  do {
    s.insert(s.begin(), static_cast<char>('a' + i % 26));
    i /= 26;
  } while (i > 0);
  return "\xe2\x96\x81" + s;
}

Status add_tokenizer(const SynthModelSpec& s, Header* h) {
  if (s.n_vocab < 259 + 1) return error("synthetic model: n_vocab %lld < 260", (long long)s.n_vocab);
  const uint64_t V = static_cast<uint64_t>(s.n_vocab);
  h->str("tokenizer.ggml.model", "llama");
  h->array_head("tokenizer.ggml.tokens", GgufType::STRING, V);
  for (int64_t i = 0; i < s.n_vocab; ++i) {
    if (i == 0) {
      put_str(&h->kv, "<unk>");
    } else if (i == 1) {
      put_str(&h->kv, "<s>");
    } else if (i == 2) {
      put_str(&h->kv, "</s>");
    } else if (i < 259) {
      char b[8];
      std::snprintf(b, sizeof b, "<0x%02X>", static_cast<unsigned>(i - 3));
      put_str(&h->kv, b);
    } else {
      put_str(&h->kv, filler_piece(i - 259));
    }
  }
  h->array_head("tokenizer.ggml.scores", GgufType::FLOAT32, V);
  for (int64_t i = 0; i < s.n_vocab; ++i) {
    put_f32(&h->kv, i < 259 ? 0.0f : -static_cast<float>(i - 259));
  }
  // llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte.
  h->array_head("tokenizer.ggml.token_type", GgufType::INT32, V);
  for (int64_t i = 0; i < s.n_vocab; ++i) {
    int32_t t = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    put_u32(&h->kv, static_cast<uint32_t>(t));
  }
  h->u32("tokenizer.ggml.unknown_token_id", 0);
  h->u32("tokenizer.ggml.bos_token_id", 1);
  h->u32("tokenizer.ggml.eos_token_id", 2);
  return Status();
}

struct Plan {
  std::string header;  // everything before the data section, padded to the alignment
  std::vector<TensorPlan> tensors;
  uint64_t data_bytes = 0;
};

Expected<Plan> make_plan(const SynthModelSpec& s, const SynthWriteOptions& o) {
  if (s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0 ||
      s.n_embd % s.n_head != 0 || s.n_head % s.n_head_kv != 0) {
    return error("synthetic model '%s': inconsistent shape", s.preset.c_str());
  }
  const DTypeTraits* tr = dtype_traits(o.matrix_type);
  if (!tr) return error("synthetic model: unknown matrix type");
  const int64_t E = s.n_embd, hd = E / s.n_head, kv = s.n_head_kv * hd, F = s.n_ff;

  Plan p;
  auto add = [&](std::string name, std::vector<int64_t> ne, DType t,
                 TensorPlan::Fill f) -> Status {
    uint64_t row = 0, total = 0;
    if (!dtype_row_bytes(t, ne[0], &row)) {
      return error("synthetic model: tensor '%s': %lld columns do not fit %s blocks", name.c_str(),
                   (long long)ne[0], dtype_name(t));
    }
    const uint64_t rows = ne.size() > 1 ? static_cast<uint64_t>(ne[1]) : 1;
    if (!checked_mul(row, rows, &total)) return error("synthetic model: tensor too large");
    p.tensors.push_back(TensorPlan{std::move(name), std::move(ne), t, f, total, p.data_bytes});
    p.data_bytes += align_up(total);
    return Status();
  };
  const DType M = o.matrix_type;
  SLM_TRY(add("token_embd.weight", {E, s.n_vocab}, M, TensorPlan::random));
  SLM_TRY(add("output_norm.weight", {E}, DType::F32, TensorPlan::ones));
  if (!s.tied) SLM_TRY(add("output.weight", {E, s.n_vocab}, M, TensorPlan::random));
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    SLM_TRY(add(b + "attn_norm.weight", {E}, DType::F32, TensorPlan::ones));
    SLM_TRY(add(b + "attn_q.weight", {E, E}, M, TensorPlan::random));
    SLM_TRY(add(b + "attn_k.weight", {E, kv}, M, TensorPlan::random));
    SLM_TRY(add(b + "attn_v.weight", {E, kv}, M, TensorPlan::random));
    if (s.qkv_bias) {
      SLM_TRY(add(b + "attn_q.bias", {E}, DType::F32, TensorPlan::random));
      SLM_TRY(add(b + "attn_k.bias", {kv}, DType::F32, TensorPlan::random));
      SLM_TRY(add(b + "attn_v.bias", {kv}, DType::F32, TensorPlan::random));
    }
    SLM_TRY(add(b + "attn_output.weight", {E, E}, M, TensorPlan::random));
    SLM_TRY(add(b + "ffn_norm.weight", {E}, DType::F32, TensorPlan::ones));
    SLM_TRY(add(b + "ffn_gate.weight", {E, F}, M, TensorPlan::random));
    SLM_TRY(add(b + "ffn_up.weight", {E, F}, M, TensorPlan::random));
    SLM_TRY(add(b + "ffn_down.weight", {F, E}, M, TensorPlan::random));
  }

  Header h;
  h.str("general.architecture", s.arch);
  h.str("general.name", s.display_name);
  const std::string a = s.arch + ".";
  h.u32(a + "context_length", static_cast<uint32_t>(s.n_ctx_train));
  h.u32(a + "embedding_length", static_cast<uint32_t>(E));
  h.u32(a + "block_count", static_cast<uint32_t>(s.n_layer));
  h.u32(a + "feed_forward_length", static_cast<uint32_t>(F));
  h.u32(a + "attention.head_count", static_cast<uint32_t>(s.n_head));
  h.u32(a + "attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  h.u32(a + "rope.dimension_count", static_cast<uint32_t>(hd));
  h.f32(a + "rope.freq_base", s.rope_theta);
  h.f32(a + "attention.layer_norm_rms_epsilon", s.norm_eps);
  SLM_TRY(add_tokenizer(s, &h));

  std::string& out = p.header;
  out = "GGUF";
  put_u32(&out, 3);
  put_u64(&out, p.tensors.size());
  put_u64(&out, h.n_kv);
  out += h.kv;
  for (const TensorPlan& t : p.tensors) {
    put_str(&out, t.name);
    put_u32(&out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put_u64(&out, static_cast<uint64_t>(d));
    put_u32(&out, static_cast<uint32_t>(t.dtype));
    put_u64(&out, t.offset);
  }
  out.resize(align_up(out.size()), '\0');
  return p;
}

// splitmix64: a fast, well-mixed stream; one per tensor so a tensor's values do not depend on
// how the others were generated.
struct ValueRng : SplitMix64 {
  // Uniform on [-1, 1).
  float symmetric() { return static_cast<float>(static_cast<double>(next() >> 40) * 0x1p-23 - 1.0); }
};

class OutFile {
 public:
  explicit OutFile(std::string path) : path_(std::move(path)) {}
  ~OutFile() {
    if (f_) std::fclose(f_);
    if (!done_) std::remove(tmp_.c_str());
  }
  Status open() {
    tmp_ = path_ + ".tmp." + std::to_string(::getpid());
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) return error("%s: cannot create: %s", tmp_.c_str(), std::strerror(errno));
    return Status();
  }
  Status write(const void* p, uint64_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) {
      return error("%s: write failed at offset %llu: %s", tmp_.c_str(),
                   (unsigned long long)written_, std::strerror(errno));
    }
    written_ += n;
    return Status();
  }
  Status zeros(uint64_t n) {
    static const char z[k_align] = {};
    return write(z, n);
  }
  uint64_t written() const { return written_; }
  Status commit() {
    if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0) {
      return error("%s: flush failed: %s", tmp_.c_str(), std::strerror(errno));
    }
    std::fclose(f_);
    f_ = nullptr;
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      return error("%s: cannot rename to %s: %s", tmp_.c_str(), path_.c_str(), std::strerror(errno));
    }
    done_ = true;
    return Status();
  }

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  uint64_t written_ = 0;
  bool done_ = false;
};

}  // namespace

const SynthModelSpec* find_synth_preset(const std::string& name) {
  for (const auto& p : k_presets) {
    if (p.preset == name) return &p;
  }
  return nullptr;
}

std::vector<std::string> synth_preset_names() {
  std::vector<std::string> v;
  for (const auto& p : k_presets) v.push_back(p.preset);
  return v;
}

Expected<uint64_t> synth_model_file_size(const SynthModelSpec& spec, const SynthWriteOptions& o) {
  SLM_ASSIGN_OR_RETURN(Plan p, make_plan(spec, o));
  return static_cast<uint64_t>(p.header.size()) + p.data_bytes;
}

Status write_synth_model_gguf(const SynthModelSpec& spec, const std::string& path,
                              const SynthWriteOptions& opts) {
  if (!(opts.weight_std > 0.0f) || !std::isfinite(opts.weight_std)) {
    return error("synthetic model: weight std must be positive");
  }
  SLM_ASSIGN_OR_RETURN(Plan plan, make_plan(spec, opts));
  const uint64_t total = plan.header.size() + plan.data_bytes;
  OutFile out(path);
  SLM_TRY(out.open());
  SLM_TRY(out.write(plan.header.data(), plan.header.size()));
  // Uniform on [-a, a] has standard deviation a / sqrt(3).
  const float amp = opts.weight_std * std::sqrt(3.0f);
  std::vector<float> rowf;
  std::vector<uint8_t> rowq;
  for (size_t ti = 0; ti < plan.tensors.size(); ++ti) {
    const TensorPlan& t = plan.tensors[ti];
    const int64_t cols = t.ne[0], rows = t.ne.size() > 1 ? t.ne[1] : 1;
    const uint64_t row_bytes = t.nbytes / static_cast<uint64_t>(rows);
    // Row blocks of about 1M values keep the buffers small and the writes large.
    const int64_t block = std::max<int64_t>(1, (1 << 20) / cols);
    rowf.resize(static_cast<size_t>(block * cols));
    rowq.resize(static_cast<size_t>(static_cast<uint64_t>(block) * row_bytes));
    ValueRng rng{{opts.seed * 0x100000001b3ull + ti}};
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      const int64_t nr = std::min(block, rows - r0);
      for (int64_t i = 0; i < nr * cols; ++i) {
        rowf[static_cast<size_t>(i)] = t.fill == TensorPlan::ones ? 1.0f : amp * rng.symmetric();
      }
      for (int64_t r = 0; r < nr; ++r) {
        Status st = quantize_row(t.dtype, rowf.data() + r * cols,
                                 rowq.data() + static_cast<uint64_t>(r) * row_bytes, cols);
        if (!st.ok()) return error("synthetic model: tensor '%s': %s", t.name.c_str(), st.message().c_str());
      }
      SLM_TRY(out.write(rowq.data(), static_cast<uint64_t>(nr) * row_bytes));
    }
    SLM_TRY(out.zeros(align_up(t.nbytes) - t.nbytes));
    if (opts.progress) opts.progress(out.written(), total);
  }
  if (out.written() != total) {
    return error("synthetic model: wrote %llu bytes, planned %llu", (unsigned long long)out.written(),
                 (unsigned long long)total);
  }
  return out.commit();
}

}  // namespace slm
