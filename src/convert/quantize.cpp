// quantize_model: Model::load -> plan_gguf_export -> per tensor: recipe type, rows to F32 and
// quantized in parallel chunks (bounded memory), streamed to OUT through a temporary file.
#include "convert/quantize.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "convert/export_plan.h"
#include "core/thread_pool.h"
#include "formats/gguf_stream.h"
#include "kernels/quant.h"
#include "model/model.h"

namespace slm {

namespace {

using Mix = QuantRecipe::Mix;

struct RecipeRow {
  const char* name;
  DType base;
  Mix mix;
  int file_type;  // llama_ftype: single K types take the matching _S number
};

const RecipeRow k_recipes[] = {
    {"F32", DType::F32, Mix::none, 0},       {"F16", DType::F16, Mix::none, 1},
    {"BF16", DType::BF16, Mix::none, 32},    {"Q8_0", DType::Q8_0, Mix::none, 7},
    {"Q4_0", DType::Q4_0, Mix::none, 2},     {"Q4_1", DType::Q4_1, Mix::none, 3},
    {"Q5_0", DType::Q5_0, Mix::none, 8},     {"Q5_1", DType::Q5_1, Mix::none, 9},
    {"Q2_K", DType::Q2_K, Mix::none, 10},    {"Q3_K", DType::Q3_K, Mix::none, 11},
    {"Q4_K", DType::Q4_K, Mix::none, 14},    {"Q5_K", DType::Q5_K, Mix::none, 16},
    {"Q6_K", DType::Q6_K, Mix::none, 18},    {"Q3_K_M", DType::Q3_K, Mix::q3_k_m, 12},
    {"Q4_K_S", DType::Q4_K, Mix::q4_k_s, 14}, {"Q4_K_M", DType::Q4_K, Mix::q4_k_m, 15},
    {"Q5_K_S", DType::Q5_K, Mix::q5_k_s, 16}, {"Q5_K_M", DType::Q5_K, Mix::q5_k_m, 17},
};

// llama.cpp's quantization format version for the block layouts written here.
constexpr uint32_t k_quantization_version = 2;

// Rows converted per step, so that memory stays ~ 2 x this many bytes whatever the tensor.
constexpr uint64_t k_chunk_f32_bytes = 32ull << 20;

// Layer index from "blk.N.<rest>", or -1.
int64_t layer_of(const std::string& name, std::string* rest) {
  if (name.rfind("blk.", 0) != 0) return -1;
  size_t p = 4;
  int64_t il = 0;
  while (p < name.size() && std::isdigit(static_cast<unsigned char>(name[p]))) {
    il = il * 10 + (name[p] - '0');
    if (il > (1 << 20)) return -1;
    ++p;
  }
  if (p == 4 || p >= name.size() || name[p] != '.') return -1;
  *rest = name.substr(p + 1);
  return il;
}

// llama.cpp's "more bits" layers: the first and last eighth, and every third in between.
bool use_more_bits(int64_t il, int64_t n) {
  return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// The mix rule for one matrix (before fallbacks).
DType mix_type(const QuantRecipe& r, const std::string& name, int64_t n_layer, bool has_output) {
  const bool is_output =
      name == "output.weight" || (!has_output && name == "token_embd.weight");
  if (r.mix == Mix::none) return r.base;
  if (is_output) return DType::Q6_K;
  std::string rest;
  const int64_t il = layer_of(name, &rest);
  if (il < 0) return r.base;
  const bool attn_v = starts_with(rest, "attn_v.");
  const bool attn_qkv = starts_with(rest, "attn_qkv.");
  const bool ffn_down = starts_with(rest, "ffn_down.");
  const bool attn_out = starts_with(rest, "attn_output.");
  switch (r.mix) {
    case Mix::q4_k_m:
    case Mix::q5_k_m:
      if ((attn_v || ffn_down) && use_more_bits(il, n_layer)) return DType::Q6_K;
      if (attn_qkv) return r.mix == Mix::q4_k_m ? DType::Q5_K : DType::Q6_K;
      return r.base;
    case Mix::q4_k_s:
      if (attn_v && il < 4) return DType::Q5_K;
      if (ffn_down && il < n_layer / 8) return DType::Q5_K;
      return r.base;
    case Mix::q5_k_s:
      return r.base;
    case Mix::q3_k_m:
      if (attn_v) return il < 2 ? DType::Q5_K : DType::Q4_K;
      if (ffn_down) return il < n_layer / 16 ? DType::Q5_K : DType::Q4_K;
      if (attn_out || attn_qkv) return DType::Q4_K;
      return r.base;
    default:
      return r.base;
  }
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// OUT must be a new or regular file in an existing directory, and not the input itself.
Status check_paths(const std::string& in, const std::string& out) {
  struct stat si {}, so {}, sd {};
  if (::stat(in.c_str(), &si) != 0) {
    return error("%s: cannot read input: %s", in.c_str(), std::strerror(errno));
  }
  const std::string dir = dir_of(out);
  if (::stat(dir.c_str(), &sd) != 0 || !S_ISDIR(sd.st_mode)) {
    return error("%s: output directory %s does not exist", out.c_str(), dir.c_str());
  }
  if (::stat(out.c_str(), &so) == 0) {
    if (S_ISDIR(so.st_mode)) return error("%s: output is a directory", out.c_str());
    if (so.st_dev == si.st_dev && so.st_ino == si.st_ino) {
      return error("%s: output is the input file; choose another output path", out.c_str());
    }
  }
  return Status();
}

// Hints the kernel to reclaim the pages wholly inside a source tensor once it is written, so
// reading a multi-GB memory-mapped input does not grow the resident set to the file size.
// MADV_PAGEOUT keeps contents (file pages are re-read, anonymous ones swapped), so this is safe
// for any memory, including views that alias another tensor.
void release_source_pages(const void* data, uint64_t nbytes) {
#ifdef MADV_PAGEOUT
  const long page_l = ::sysconf(_SC_PAGESIZE);
  if (page_l <= 0 || !data) return;
  const uintptr_t page = static_cast<uintptr_t>(page_l);
  const uintptr_t b = reinterpret_cast<uintptr_t>(data);
  const uintptr_t lo = (b + page - 1) / page * page, hi = (b + nbytes) / page * page;
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_PAGEOUT);
#else
  (void)data;
  (void)nbytes;
#endif
}

void set_meta(std::vector<std::pair<std::string, GgufValue>>* kv, const std::string& key,
              GgufValue v) {
  for (auto& [k, old] : *kv) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  kv->emplace_back(key, std::move(v));
}

}  // namespace

const std::vector<std::string>& quant_recipe_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const RecipeRow& r : k_recipes) v.emplace_back(r.name);
    return v;
  }();
  return names;
}

Expected<QuantRecipe> parse_quant_recipe(const std::string& name) {
  const std::string u = upper(name);
  for (const RecipeRow& r : k_recipes) {
    if (u == r.name) {
      QuantRecipe q;
      q.name = r.name;
      q.base = r.base;
      q.mix = r.mix;
      q.file_type = r.file_type;
      return q;
    }
  }
  std::string list;
  for (const std::string& n : quant_recipe_names()) list += (list.empty() ? "" : ", ") + n;
  return error("unknown quantization type '%s' (valid: %s)", name.c_str(), list.c_str());
}

std::string quant_recipe_help() {
  return "Types: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K apply to every\n"
         "2-D matrix (token_embd and output included); norms, biases and rope_freqs stay F32.\n"
         "Mixes (llama.cpp's rules; 'more-bits layers' = first and last eighth of the layers\n"
         "and every third layer in between; 'output' = output.weight, or token_embd when the\n"
         "embeddings are tied):\n"
         "  Q4_K_M  output Q6_K; attn_v and ffn_down of more-bits layers Q6_K; attn_qkv Q5_K;\n"
         "          rest Q4_K\n"
         "  Q5_K_M  output Q6_K; attn_v and ffn_down of more-bits layers Q6_K; attn_qkv Q6_K;\n"
         "          rest Q5_K\n"
         "  Q4_K_S  output Q6_K; attn_v of layers 0-3 and ffn_down of the first eighth Q5_K;\n"
         "          rest Q4_K\n"
         "  Q5_K_S  output Q6_K; rest Q5_K\n"
         "  Q3_K_M  output Q6_K; attn_v Q5_K in layers 0-1 else Q4_K; ffn_down Q5_K in the first\n"
         "          sixteenth else Q4_K; attn_output and attn_qkv Q4_K; rest Q3_K\n"
         "Rows whose length is not a multiple of 256 cannot hold K types: Q2_K/Q3_K -> Q4_0,\n"
         "Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; not a multiple of 32 -> F16.\n";
}

DType fallback_type(DType t, int64_t ne0) {
  const DTypeTraits* tr = dtype_traits(t);
  if (!tr || ne0 % tr->block_size == 0) return t;
  DType f = t;
  switch (t) {
    case DType::Q2_K:
    case DType::Q3_K:
      f = DType::Q4_0;
      break;
    case DType::Q4_K:
      f = DType::Q5_0;
      break;
    case DType::Q5_K:
      f = DType::Q5_1;
      break;
    case DType::Q6_K:
      f = DType::Q8_0;
      break;
    default:
      break;
  }
  const DTypeTraits* ft = dtype_traits(f);
  return ne0 % ft->block_size == 0 ? f : DType::F16;
}

DType choose_tensor_type(const QuantRecipe& r, const std::string& name, bool is_matrix,
                         int64_t ne0, int64_t n_layer, bool has_output) {
  if (!is_matrix) return DType::F32;
  return fallback_type(mix_type(r, name, n_layer, has_output), ne0);
}

Expected<QuantizeSummary> quantize_model(const std::string& in, const std::string& out,
                                         const QuantizeOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  SLM_ASSIGN_OR_RETURN(QuantRecipe recipe, parse_quant_recipe(opts.recipe));
  SLM_TRY(check_paths(in, out));
  LoadOptions lo;
  lo.tokenizer_path = opts.tokenizer_path;
  SLM_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::load(in, lo));
  SLM_ASSIGN_OR_RETURN(ExportPlan plan, plan_gguf_export(*model));

  const int64_t n_layer = model->config().n_layer;
  bool has_output = false;
  for (const ExportTensor& t : plan.tensors) has_output |= t.name == "output.weight";

  QuantizeSummary sum;
  std::vector<GgufTensorInfo> infos;
  for (const ExportTensor& t : plan.tensors) {
    GgufTensorInfo info;
    info.name = t.name;
    info.ne.assign(t.src.ne, t.src.ne + std::max(1, t.src.n_dims));
    info.dtype = choose_tensor_type(recipe, t.name, t.is_matrix, t.src.ne[0], n_layer, has_output);
    if (!can_dequantize(t.src.dtype)) {
      return error("%s: tensor '%s': source type %s cannot be converted", in.c_str(),
                   t.name.c_str(), dtype_name(t.src.dtype));
    }
    sum.in_bytes += t.src.nbytes;
    sum.n_elements += static_cast<uint64_t>(t.src.nelements());
    sum.tensor_types.emplace_back(t.name, info.dtype);
    infos.push_back(std::move(info));
  }
  set_meta(&plan.metadata, "general.file_type",
           gguf_uint(GgufType::UINT32, static_cast<uint64_t>(recipe.file_type)));
  set_meta(&plan.metadata, "general.quantization_version",
           gguf_uint(GgufType::UINT32, k_quantization_version));
  uint64_t alignment = 32;
  for (const auto& [k, v] : plan.metadata) {
    if (k == "general.alignment") alignment = v.u;
  }

  GgufStreamWriter w;
  SLM_TRY(w.open(out, plan.metadata, infos, 3, alignment));
  ThreadPool pool(opts.n_threads);
  std::vector<float> f32;
  std::vector<uint8_t> qbuf;
  QuantizeProgress prog;
  prog.n_tensors = static_cast<int64_t>(plan.tensors.size());
  prog.in_total = sum.in_bytes;
  for (size_t ti = 0; ti < plan.tensors.size(); ++ti) {
    const ExportTensor& t = plan.tensors[ti];
    const DType dt = infos[ti].dtype;
    const int64_t cols = t.src.ne[0], rows = t.src.rows();
    uint64_t row_bytes = 0;
    if (!dtype_row_bytes(dt, cols, &row_bytes)) {
      return error("tensor '%s': rows of %lld cannot hold %s", t.name.c_str(),
                   static_cast<long long>(cols), dtype_name(dt));
    }
    const int64_t chunk_rows = std::max<int64_t>(
        1, static_cast<int64_t>(k_chunk_f32_bytes / (static_cast<uint64_t>(cols) * 4)));
    prog.tensor = static_cast<int64_t>(ti);
    prog.name = t.name;
    prog.type = dt;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const int64_t r1 = std::min(rows, r0 + chunk_rows), n = r1 - r0;
      f32.resize(static_cast<size_t>(n * cols));
      qbuf.resize(static_cast<size_t>(static_cast<uint64_t>(n) * row_bytes));
      std::mutex mu;
      Status first;
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        float* x = f32.data() + b * cols;
        export_rows_f32(t, r0 + b, r0 + e, x);
        for (int64_t r = b; r < e; ++r) {
          Status s = quantize_row(dt, f32.data() + r * cols,
                                  qbuf.data() + static_cast<uint64_t>(r) * row_bytes, cols);
          if (!s.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            if (first.ok()) {
              first = s.with_context("tensor '" + t.name + "' row " + std::to_string(r0 + r));
            }
            return;
          }
        }
      }, 8);
      if (!first.ok()) return first.with_context(in);
      SLM_TRY(w.append(qbuf.data(), qbuf.size()));
      prog.in_done += t.src.nbytes / static_cast<uint64_t>(rows) * static_cast<uint64_t>(n);
      prog.out_done = w.bytes_written();
      prog.tensor_done = r1 == rows;
      if (opts.on_progress) opts.on_progress(prog);
    }
    sum.out_tensor_bytes += row_bytes * static_cast<uint64_t>(rows);
    release_source_pages(t.src.data, t.src.nbytes);
  }
  SLM_TRY(w.finish());
  sum.out_bytes = w.bytes_written();
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace slm
