// Model::load: detects the format (GGUF magic, a directory = Hugging Face, else llama2.c),
// maps the config, binds canonical tensor names to ModelWeights and attaches the tokenizer.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "kernels/matmul.h"
#include "kernels/qdot.h"
#include "kernels/repack.h"
#include "model/model_internal.h"
#include "tokenizer/tokenizer.h"

namespace slm {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Rows [r0, r0 + nr) of a 2-D view, zero-copy.
TensorView row_slice(const TensorView& v, int64_t r0, int64_t nr, const char* part) {
  TensorView s = v;
  s.name = v.name + "[" + part + "]";
  s.data = v.row(r0);
  s.ne[1] = nr;
  s.nbytes = static_cast<uint64_t>(nr) * v.row_bytes();
  s.x8 = nullptr;
  return s;
}

class Binder {
 public:
  Binder(const TensorMap& t, Model::Parts* parts) : t_(t), parts_(parts) {}

  const TensorView* find(const std::string& name) const {
    auto it = t_.find(name);
    return it == t_.end() ? nullptr : &it->second;
  }

  Status check_dtype(const TensorView& v) const {
    if (!matmul_supports(v.dtype)) {
      return error("tensor '%s': dtype %s is not supported", v.name.c_str(), dtype_name(v.dtype));
    }
    uint64_t rb = 0;
    if (!dtype_row_bytes(v.dtype, v.ne[0], &rb) ||
        rb * static_cast<uint64_t>(v.rows()) != v.nbytes) {
      return error("tensor '%s': %llu bytes do not match shape %s of %s", v.name.c_str(),
                   (unsigned long long)v.nbytes, v.shape_string().c_str(), dtype_name(v.dtype));
    }
    return Status();
  }

  // A weight matrix with `in` columns and `out` rows (PyTorch shape (out, in)).
  Status matrix(const std::string& name, int64_t in, int64_t out, TensorView* dst) const {
    const TensorView* v = find(name);
    if (!v) return error("missing tensor '%s'", name.c_str());
    SLM_TRY(check_dtype(*v));
    if (v->ne[0] != in || v->ne[1] != out || v->ne[2] != 1 || v->ne[3] != 1) {
      return error("tensor '%s': shape %s, expected [%lld, %lld]", name.c_str(),
                   v->shape_string().c_str(), (long long)in, (long long)out);
    }
    *dst = *v;
    return Status();
  }

  // A vector of n values, converted to F32 (and copied if misaligned) into owned storage.
  Status vector(const std::string& name, int64_t n, TensorView* dst) {
    const TensorView* v = find(name);
    if (!v) return error("missing tensor '%s'", name.c_str());
    SLM_TRY(check_dtype(*v));
    if (v->nelements() != n || v->ne[0] != n) {
      return error("tensor '%s': shape %s, expected [%lld]", name.c_str(),
                   v->shape_string().c_str(), (long long)n);
    }
    *dst = *v;
    if (v->dtype != DType::F32 || reinterpret_cast<uintptr_t>(v->data) % alignof(float) != 0) {
      auto& buf = parts_->f32_buffers.emplace_back(static_cast<size_t>(n));
      weight_row_to_f32(*v, 0, buf.data());
      dst->dtype = DType::F32;
      dst->data = buf.data();
      dst->nbytes = static_cast<uint64_t>(n) * 4;
    }
    return Status();
  }

 private:
  const TensorMap& t_;
  Model::Parts* parts_;
};

}  // namespace

Status bind_weights(const TensorMap& tensors, Model::Parts* parts) {
  ModelConfig& c = parts->config;
  ModelWeights& w = parts->weights;
  Binder b(tensors, parts);

  const TensorView* emb = b.find("token_embd.weight");
  if (!emb) return error("missing tensor 'token_embd.weight'");
  if (c.n_vocab == 0) c.n_vocab = emb->ne[1];
  SLM_TRY(validate_config(c));
  const int64_t E = c.n_embd, hd = c.head_dim;
  const int64_t q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;
  SLM_TRY(b.matrix("token_embd.weight", E, c.n_vocab, &w.tok_embd));
  SLM_TRY(b.vector("output_norm.weight", E, &w.out_norm));
  if (!b.find("output.weight")) c.tied_embeddings = true;
  if (c.tied_embeddings) {
    w.output = w.tok_embd;
  } else {
    SLM_TRY(b.matrix("output.weight", E, c.n_vocab, &w.output));
  }
  if (b.find("rope_freqs.weight")) SLM_TRY(b.vector("rope_freqs.weight", hd / 2, &w.rope_freqs));
  if (b.find("rope_factors_long.weight") || b.find("rope_factors_short.weight")) {
    // Phi-3 "longrope" (128k variants) switches factor sets by length: not implemented.
    return error("tensor 'rope_factors_long.weight': longrope scaling is unsupported");
  }

  c.qkv_bias = b.find("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = b.find("blk.0.attn_q_norm.weight") != nullptr;
  w.layers.assign(static_cast<size_t>(c.n_layer), LayerWeights{});
  for (int64_t il = 0; il < c.n_layer; ++il) {
    LayerWeights& L = w.layers[static_cast<size_t>(il)];
    const std::string p = "blk." + std::to_string(il) + ".";
    SLM_TRY(b.vector(p + "attn_norm.weight", E, &L.attn_norm));
    SLM_TRY(b.vector(p + "ffn_norm.weight", E, &L.ffn_norm));
    if (b.find(p + "attn_qkv.weight")) {
      // Phi-3: one matrix holding q, k and v rows in that order.
      TensorView qkv;
      SLM_TRY(b.matrix(p + "attn_qkv.weight", E, q_dim + 2 * kv_dim, &qkv));
      L.wq = row_slice(qkv, 0, q_dim, "q");
      L.wk = row_slice(qkv, q_dim, kv_dim, "k");
      L.wv = row_slice(qkv, q_dim + kv_dim, kv_dim, "v");
      if (b.find(p + "attn_qkv.bias"))
        return error("tensor '%sattn_qkv.bias': unsupported", p.c_str());
    } else {
      SLM_TRY(b.matrix(p + "attn_q.weight", E, q_dim, &L.wq));
      SLM_TRY(b.matrix(p + "attn_k.weight", E, kv_dim, &L.wk));
      SLM_TRY(b.matrix(p + "attn_v.weight", E, kv_dim, &L.wv));
    }
    SLM_TRY(b.matrix(p + "attn_output.weight", q_dim, E, &L.wo));
    if (c.qkv_bias) {
      SLM_TRY(b.vector(p + "attn_q.bias", q_dim, &L.bq));
      SLM_TRY(b.vector(p + "attn_k.bias", kv_dim, &L.bk));
      SLM_TRY(b.vector(p + "attn_v.bias", kv_dim, &L.bv));
    }
    if (c.qk_norm) {
      SLM_TRY(b.vector(p + "attn_q_norm.weight", hd, &L.q_norm));
      SLM_TRY(b.vector(p + "attn_k_norm.weight", hd, &L.k_norm));
    }
    if (!b.find(p + "ffn_gate.weight")) {
      // Phi-3: ffn_up holds 2*n_ff rows, the gate rows first, then the up rows.
      TensorView gu;
      SLM_TRY(b.matrix(p + "ffn_up.weight", E, 2 * c.n_ff, &gu));
      L.w_gate = row_slice(gu, 0, c.n_ff, "gate");
      L.w_up = row_slice(gu, c.n_ff, c.n_ff, "up");
    } else {
      SLM_TRY(b.matrix(p + "ffn_gate.weight", E, c.n_ff, &L.w_gate));
      SLM_TRY(b.matrix(p + "ffn_up.weight", E, c.n_ff, &L.w_up));
    }
    SLM_TRY(b.matrix(p + "ffn_down.weight", c.n_ff, E, &L.w_down));
  }
  return Status();
}

namespace {

Status load_gguf(const std::string& path, Model::Parts* parts) {
  SLM_ASSIGN_OR_RETURN(GgufFile g, GgufFile::open(path));
  auto gguf = std::make_shared<GgufFile>(std::move(g));
  parts->owners.push_back(gguf);
  SLM_ASSIGN_OR_RETURN(parts->config, config_from_gguf(*gguf));
  TensorMap map;
  for (const auto& t : gguf->tensors()) map.emplace(t.name, t);
  parts->all_tensors = gguf->tensors();
  parts->weights_file_mapped = true;  // GgufFile maps every tensor it has
  SLM_TRY(bind_weights(map, parts));
  if (gguf->has("tokenizer.ggml.model")) {
    SLM_ASSIGN_OR_RETURN(parts->tokenizer, Tokenizer::from_gguf(*gguf));
  }
  SLM_ASSIGN_OR_RETURN(parts->chat_template, gguf->get_string_or("tokenizer.chat_template", ""));
  return Status();
}

Expected<json> read_json(const std::string& path) {
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(path, 64ull << 20));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return error("%s: invalid JSON", path.c_str());
  return j;
}

Status load_hf_tokenizer(const std::string& dir, Model::Parts* parts) {
  std::error_code ec;
  std::string cfg_text;
  if (fs::exists(dir + "/tokenizer_config.json", ec)) {
    SLM_ASSIGN_OR_RETURN(cfg_text, read_file(dir + "/tokenizer_config.json", 64ull << 20));
    json cfg = json::parse(cfg_text, nullptr, false);
    if (cfg.is_discarded()) return error("%s/tokenizer_config.json: invalid JSON", dir.c_str());
    auto ct = cfg.find("chat_template");
    if (ct != cfg.end() && ct->is_string()) {
      parts->chat_template = ct->get<std::string>();
    } else if (ct != cfg.end() && ct->is_array()) {
      // A list of {name, template}: the one named "default" is the chat template.
      for (const auto& e : *ct) {
        if (e.is_object() && e.value("name", json()).is_string() && e["name"] == "default" &&
            e.value("template", json()).is_string()) {
          parts->chat_template = e["template"].get<std::string>();
        }
      }
    }
  }
  if (parts->chat_template.empty() && fs::exists(dir + "/chat_template.jinja", ec)) {
    SLM_ASSIGN_OR_RETURN(parts->chat_template,
                         read_file(dir + "/chat_template.jinja", 16ull << 20));
  }
  if (fs::exists(dir + "/tokenizer.json", ec)) {
    SLM_ASSIGN_OR_RETURN(std::string tok_text, read_file(dir + "/tokenizer.json", 256ull << 20));
    auto tok = Tokenizer::from_hf_json(tok_text, cfg_text);
    if (!tok.ok()) return tok.status().with_context(dir + "/tokenizer.json");
    parts->tokenizer = std::move(tok).value();
  }
  if (fs::exists(dir + "/generation_config.json", ec)) {
    SLM_ASSIGN_OR_RETURN(json gen, read_json(dir + "/generation_config.json"));
    auto eos = gen.is_object() ? gen.find("eos_token_id") : gen.end();
    if (gen.is_object() && eos != gen.end()) {
      auto add = [&](const json& v) {
        if (v.is_number_integer() && v.get<int64_t>() >= 0 &&
            v.get<int64_t>() < (int64_t{1} << 31)) {
          parts->extra_eos.push_back(static_cast<int32_t>(v.get<int64_t>()));
        }
      };
      if (eos->is_array()) {
        for (const auto& v : *eos) add(v);
      } else {
        add(*eos);
      }
    }
  }
  return Status();
}

Status load_hf(const std::string& dir, Model::Parts* parts) {
  SLM_ASSIGN_OR_RETURN(json cfg, read_json(dir + "/config.json"));
  auto c = config_from_hf(cfg);
  if (!c.ok()) return c.status().with_context(dir);
  parts->config = std::move(c).value();
  parts->config.name = fs::path(dir).filename().string();
  if (parts->config.name.empty())
    parts->config.name = fs::path(dir).parent_path().filename().string();
  SLM_ASSIGN_OR_RETURN(SafetensorsSet st, SafetensorsSet::open_dir(dir));
  auto set = std::make_shared<SafetensorsSet>(std::move(st));
  parts->owners.push_back(set);
  parts->all_tensors = set->tensors();
  TensorMap map;
  for (const auto& t : set->tensors()) {
    std::string name = hf_to_gguf_name(t.name);
    if (!name.empty()) map.emplace(name, t);
  }
  SLM_TRY(bind_weights(map, parts).with_context(dir));
  return load_hf_tokenizer(dir, parts);
}

Status load_llama2c(const std::string& path, const LoadOptions& opts, Model::Parts* parts) {
  SLM_ASSIGN_OR_RETURN(Llama2cCheckpoint ck, Llama2cCheckpoint::open(path));
  auto ckp = std::make_shared<Llama2cCheckpoint>(std::move(ck));
  parts->owners.push_back(ckp);
  parts->config = config_from_llama2c(ckp->header());
  parts->config.name = fs::path(path).stem().string();
  parts->all_tensors = ckp->tensors();
  TensorMap map;
  for (const auto& t : ckp->tensors()) map.emplace(t.name, t);
  SLM_TRY(bind_weights(map, parts).with_context(path));
  if (!opts.tokenizer_path.empty()) {
    SLM_ASSIGN_OR_RETURN(parts->tokenizer,
                         Tokenizer::from_llama2c(opts.tokenizer_path, parts->config.n_vocab));
  }
  return Status();
}

// MemAvailable of /proc/meminfo in bytes (free memory plus what the kernel can reclaim, the
// page cache included); 0 if unknown.
uint64_t available_memory() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

// The weight matrices' copies in the kernels' layouts (kernels/repack.h), in one buffer owned
// by parts. Each matrix's file pages are dropped once it is copied (GGUF mappings only: a
// dropped page of a read-only file mapping is read back if touched, while other memory would
// lose its contents), so the resident set grows by about one matrix at a time, never by the
// whole copy, and inference touches no page of them.
Status add_kernel_layouts(Model::Parts* parts, uint64_t budget) {
  ModelWeights& w = parts->weights;
  std::vector<TensorView*> views;
  uint64_t total = 0;
  auto add = [&](TensorView* v) {
    const DotKernel* k = x8_applies(*v) ? dot_kernel(v->dtype) : nullptr;
    if (!k || !k->tile_x8) return;
    views.push_back(v);
    total += (x8_bytes(*v) + 63) / 64 * 64;
  };
  // The embedding rows are read through weight_row_to_f32, which reads x8 copies too.
  const bool tied = w.output.data == w.tok_embd.data;
  add(&w.tok_embd);
  if (!tied) add(&w.output);
  for (LayerWeights& L : w.layers) {
    for (TensorView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) add(v);
  }
  if (views.empty()) return Status();
  // The copies are anonymous memory, which cannot be paged back to the file: a model larger
  // than the memory left keeps reading the file's rows (slower, but it runs, paged by the OS).
  if (!budget) budget = available_memory() / 10 * 9;
  if (budget && total > budget) return Status();
  std::shared_ptr<uint8_t> buf(static_cast<uint8_t*>(std::aligned_alloc(64, total)), std::free);
  if (!buf) {
    return error("out of memory for the kernel layout of %zu matrices (%llu bytes)",
                 views.size(), static_cast<unsigned long long>(total));
  }
  const bool drop = parts->weights_file_mapped;
  if (drop) {
    // The norms and biases are copied too, or reading them would map dropped pages back: the
    // page cache may hold the file in large folios, and a fault maps the whole folio around
    // the page it needs.
    auto own = [&](TensorView* v) {
      if (!v->data || v->dtype != DType::F32) return;
      const auto* f = static_cast<const float*>(v->data);
      v->data = parts->f32_buffers.emplace_back(f, f + v->nelements()).data();
    };
    own(&w.out_norm);
    own(&w.rope_freqs);
    for (LayerWeights& L : w.layers) {
      for (TensorView* v : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv, &L.q_norm, &L.k_norm}) {
        own(v);
      }
    }
  }
  const long page_l = ::sysconf(_SC_PAGESIZE);
  const uintptr_t page = page_l > 0 ? static_cast<uintptr_t>(page_l) : 0;
  auto drop_pages = [&](const TensorView& v) {
    if (!drop || !page) return;
    const uintptr_t b = reinterpret_cast<uintptr_t>(v.data);
    const uintptr_t lo = (b + page - 1) / page * page, hi = (b + v.nbytes) / page * page;
    if (hi <= lo) return;
    // The range first becomes a mapping of its own (MADV_DONTDUMP: a flag that changes nothing
    // for reads, which the kernel keeps per mapping): a fault on a neighbouring tensor may map
    // the pages around it, the whole large folio it sits in, but never past its mapping's end.
    // Without this, reads of the matrices left in the file (a K-quant mix) mapped 20 MB of
    // dropped Q5_0 pages back.
    ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTDUMP);
    ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  };
  uint8_t* at = buf.get();
  for (TensorView* v : views) {
    repack_x8(*v, at);
    v->x8 = at;
    at += (x8_bytes(*v) + 63) / 64 * 64;
    drop_pages(*v);  // each at once, so the copies never sit beside the whole file
  }
  // Again, for the pages that later faults mapped back with their folios.
  for (TensorView* v : views) drop_pages(*v);
  if (tied) w.output.x8 = w.tok_embd.x8;
  parts->owners.push_back(std::move(buf));
  return Status();
}

}  // namespace

Model::Model(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {
  config_ = parts_->config;
  weights_ = parts_->weights;
  tokenizer_ = std::move(parts_->tokenizer);
  chat_template_ = parts_->chat_template;
  extra_eos_ = parts_->extra_eos;
}

Model::~Model() = default;

Expected<std::unique_ptr<Model>> Model::load(const std::string& path, const LoadOptions& opts) {
  auto parts = std::make_unique<Parts>();
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    SLM_TRY(load_hf(path, parts.get()));
  } else {
    char magic[4] = {};
    std::ifstream f(path, std::ios::binary);
    if (!f) return error("%s: cannot open", path.c_str());
    f.read(magic, 4);
    if (f.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) {
      SLM_TRY(load_gguf(path, parts.get()));
    } else {
      SLM_TRY(load_llama2c(path, opts, parts.get()));
    }
  }
  if (opts.kernel_layouts) SLM_TRY(add_kernel_layouts(parts.get(), opts.kernel_layout_budget));
  return std::make_unique<Model>(std::move(parts));
}

int64_t Model::n_params() const {
  int64_t n = 0;
  for (const auto& t : parts_->all_tensors) n += t.nelements();
  return n;
}

std::vector<std::pair<std::string, int64_t>> Model::dtype_histogram() const {
  std::map<std::string, int64_t> h;
  for (const auto& t : parts_->all_tensors) h[dtype_name(t.dtype)]++;
  return {h.begin(), h.end()};
}

}  // namespace slm
