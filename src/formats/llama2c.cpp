// llama2.c checkpoints: header validation, layout of the fp32 arrays for the legacy and the
// version 1 export, and zero-copy per-layer views with GGUF canonical names.
#include "formats/llama2c.h"

#include "core/reader.h"

namespace slm {

namespace {

// Caps far above any llama2.c-trainable model (Llama 2 70B: dim 8192, hidden 28672, 80
// layers, vocab 32000) but low enough that no product of them overflows before it is checked.
constexpr int32_t k_max_dim = 1 << 16;
constexpr int32_t k_max_hidden = 1 << 18;
constexpr int32_t k_max_layers = 1 << 10;
constexpr int32_t k_max_vocab = 1 << 22;
constexpr int32_t k_max_seq_len = 1 << 22;
constexpr uint64_t k_v1_header_bytes = 256;  // the versioned export pads its header to 256

// One array of the file, in file order. Per-layer arrays hold n_layers consecutive slices.
struct Segment {
  const char* name;  // GGUF tensor name stem; nullptr for arrays that are skipped
  bool per_layer;
  int n_dims;
  int64_t ne0, ne1;          // per slice, GGUF order
  uint64_t skip_floats = 0;  // for skipped arrays (freq_cis)
};

Status check_field(const std::string& what, const char* field, int32_t v, int32_t max) {
  if (v <= 0 || v > max) {
    return error("%s: header field %s = %d is out of range (1..%d)", what.c_str(), field, v, max);
  }
  return Status();
}

Status validate_header(const std::string& what, const Llama2cHeader& h) {
  SLM_TRY(check_field(what, "dim", h.dim, k_max_dim));
  SLM_TRY(check_field(what, "hidden_dim", h.hidden_dim, k_max_hidden));
  SLM_TRY(check_field(what, "n_layers", h.n_layers, k_max_layers));
  SLM_TRY(check_field(what, "n_heads", h.n_heads, h.dim));
  SLM_TRY(check_field(what, "n_kv_heads", h.n_kv_heads, h.n_heads));
  SLM_TRY(check_field(what, "vocab_size", h.vocab_size, k_max_vocab));
  SLM_TRY(check_field(what, "seq_len", h.seq_len, k_max_seq_len));
  if (h.dim % h.n_heads != 0) {
    return error("%s: header field dim = %d is not divisible by n_heads = %d", what.c_str(), h.dim,
                 h.n_heads);
  }
  if (h.n_heads % h.n_kv_heads != 0) {
    return error("%s: header field n_heads = %d is not divisible by n_kv_heads = %d", what.c_str(),
                 h.n_heads, h.n_kv_heads);
  }
  // RoPE rotates pairs within a head, and the legacy freq_cis tables hold head_size/2 columns.
  if (h.head_size() % 2 != 0) {
    return error("%s: head size dim/n_heads = %d is odd (RoPE needs pairs)", what.c_str(),
                 h.head_size());
  }
  return Status();
}

std::vector<Segment> file_layout(const Llama2cHeader& h) {
  const int64_t dim = h.dim, hidden = h.hidden_dim, kv = h.kv_dim(), vocab = h.vocab_size;
  // PyTorch Linear (out, in) is GGUF ne {in, out}: wq (dim, dim), wk/wv (kv_dim, dim),
  // wo (dim, dim), w1/w3 (hidden, dim), w2 (dim, hidden).
  const Segment tok{"token_embd", false, 2, dim, vocab};
  const Segment attn_norm{"attn_norm", true, 1, dim, 1};
  const Segment ffn_norm{"ffn_norm", true, 1, dim, 1};
  const Segment wq{"attn_q", true, 2, dim, dim};
  const Segment wk{"attn_k", true, 2, dim, kv};
  const Segment wv{"attn_v", true, 2, dim, kv};
  const Segment wo{"attn_output", true, 2, dim, dim};
  const Segment w1{"ffn_gate", true, 2, dim, hidden};
  const Segment w2{"ffn_down", true, 2, hidden, dim};
  const Segment w3{"ffn_up", true, 2, dim, hidden};
  const Segment norm{"output_norm", false, 1, dim, 1};
  const Segment out{"output", false, 2, dim, vocab};
  std::vector<Segment> s;
  if (h.version == 0) {
    // run.c memory_map_weights order; freq_cis_real and freq_cis_imag follow the final norm,
    // each (seq_len, head_size / 2).
    const uint64_t freq =
        static_cast<uint64_t>(h.seq_len) * static_cast<uint64_t>(h.head_size() / 2);
    Segment skip{nullptr, false, 0, 0, 0, freq};
    s = {tok, attn_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3, norm, skip, skip};
  } else {
    // export.py version1_export order.
    s = {attn_norm, ffn_norm, norm, tok, wq, wk, wv, wo, w1, w2, w3};
  }
  if (!h.shared_classifier) s.push_back(out);
  return s;
}

// Floats one segment occupies, or false on overflow.
bool segment_floats(const Segment& seg, int32_t n_layers, uint64_t* out) {
  if (!seg.name) {
    *out = seg.skip_floats;
    return true;
  }
  uint64_t n = 0;
  if (!checked_mul(static_cast<uint64_t>(seg.ne0), static_cast<uint64_t>(seg.ne1), &n)) {
    return false;
  }
  if (seg.per_layer && !checked_mul(n, static_cast<uint64_t>(n_layers), &n)) return false;
  *out = n;
  return true;
}

Status read_header(ByteReader& r, Llama2cHeader* h) {
  uint32_t first = 0;
  SLM_TRY(r.read(&first, "header"));
  bool versioned = first == k_llama2c_magic;
  if (versioned) {
    SLM_TRY(r.read(&h->version, "version"));
    if (h->version == 2) {
      return error(
          "%s: llama2.c export version 2 (int8 Q8_0) is not supported; export with "
          "--version 0 or 1",
          r.what().c_str());
    }
    if (h->version != 1) {
      return error("%s: unsupported llama2.c export version %d", r.what().c_str(), h->version);
    }
  } else {
    SLM_TRY(r.seek(0, "header"));
    h->version = 0;
  }
  SLM_TRY(r.read(&h->dim, "dim"));
  SLM_TRY(r.read(&h->hidden_dim, "hidden_dim"));
  SLM_TRY(r.read(&h->n_layers, "n_layers"));
  SLM_TRY(r.read(&h->n_heads, "n_heads"));
  SLM_TRY(r.read(&h->n_kv_heads, "n_kv_heads"));
  SLM_TRY(r.read(&h->vocab_size, "vocab_size"));
  SLM_TRY(r.read(&h->seq_len, "seq_len"));
  if (versioned) {
    uint8_t shared = 0;
    SLM_TRY(r.read(&shared, "shared_classifier"));
    if (shared > 1) {
      return error("%s: header field shared_classifier = %u is not 0 or 1", r.what().c_str(),
                   shared);
    }
    h->shared_classifier = shared == 1;
    if (r.size() < k_v1_header_bytes) {
      return error("%s: header: truncated (version 1 header is %llu bytes, file has %llu)",
                   r.what().c_str(), (unsigned long long)k_v1_header_bytes,
                   (unsigned long long)r.size());
    }
    SLM_TRY(r.seek(k_v1_header_bytes, "header padding"));
  } else {
    // run.c: a negative vocab_size marks an unshared classifier (wcls stored at the end).
    h->shared_classifier = h->vocab_size > 0;
    if (h->vocab_size < 0 && h->vocab_size != INT32_MIN) h->vocab_size = -h->vocab_size;
  }
  return Status();
}

}  // namespace

const TensorView* Llama2cCheckpoint::tensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Expected<Llama2cCheckpoint> Llama2cCheckpoint::parse(const uint8_t* data, uint64_t size,
                                                     std::string what) {
  ByteReader r(data, size, what);
  Llama2cCheckpoint ck;
  Llama2cHeader& h = ck.header_;
  SLM_TRY(read_header(r, &h));
  SLM_TRY(validate_header(what, h));

  const std::vector<Segment> layout = file_layout(h);
  uint64_t total_floats = 0;
  for (const Segment& seg : layout) {
    uint64_t n = 0;
    if (!segment_floats(seg, h.n_layers, &n) || !checked_add(total_floats, n, &total_floats)) {
      return error("%s: tensor sizes overflow", what.c_str());
    }
  }
  uint64_t need = 0;
  if (!checked_mul(total_floats, 4, &need)) {
    return error("%s: tensor sizes overflow", what.c_str());
  }
  if (need > r.remaining()) {
    return error(
        "%s: truncated: the header describes %llu bytes of weights after offset %llu, "
        "the file has %llu",
        what.c_str(), (unsigned long long)need, (unsigned long long)r.offset(),
        (unsigned long long)r.remaining());
  }
  if (need < r.remaining()) {
    return error("%s: %llu trailing bytes after the weights the header describes (offset %llu)",
                 what.c_str(), (unsigned long long)(r.remaining() - need),
                 (unsigned long long)(r.offset() + need));
  }

  // Sizes are now known to fit the file, so the views below cannot leave it.
  for (const Segment& seg : layout) {
    uint64_t n = 0;
    (void)segment_floats(seg, h.n_layers, &n);
    const uint8_t* base = nullptr;
    SLM_TRY(r.read_bytes(n * 4, &base, seg.name ? seg.name : "freq_cis"));
    if (!seg.name) continue;
    const int n_slices = seg.per_layer ? h.n_layers : 1;
    const uint64_t slice_bytes = n * 4 / static_cast<uint64_t>(n_slices);
    for (int i = 0; i < n_slices; ++i) {
      TensorView t;
      t.name = seg.per_layer ? "blk." + std::to_string(i) + "." + seg.name + ".weight"
                             : std::string(seg.name) + ".weight";
      t.dtype = DType::F32;
      t.n_dims = seg.n_dims;
      t.ne[0] = seg.ne0;
      t.ne[1] = seg.ne1;
      t.data = base + static_cast<uint64_t>(i) * slice_bytes;
      t.nbytes = slice_bytes;
      ck.index_[t.name] = ck.tensors_.size();
      ck.tensors_.push_back(std::move(t));
    }
  }
  return ck;
}

Expected<Llama2cCheckpoint> Llama2cCheckpoint::open(const std::string& path) {
  SLM_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  SLM_ASSIGN_OR_RETURN(Llama2cCheckpoint ck, parse(map->data(), map->size(), path));
  ck.map_ = std::move(map);
  return ck;
}

}  // namespace slm
