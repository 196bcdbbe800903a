// GGUF export plan: llama.cpp's metadata keys and tensor names/order for a loaded Model, and
// the row conversion (dequantize + q/k head permutation) writers use to fill the file.
#include "convert/export_plan.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "kernels/matmul.h"
#include "model/model.h"
#include "tokenizer/tokenizer_impl.h"

namespace slm {

namespace {

constexpr std::string_view k_marker = "\xe2\x96\x81";  // "▁", SentencePiece's space

void put(ExportPlan* p, std::string key, GgufValue v) {
  p->metadata.emplace_back(std::move(key), std::move(v));
}
void put_u32(ExportPlan* p, std::string key, int64_t v) {
  put(p, std::move(key), gguf_uint(GgufType::UINT32, static_cast<uint64_t>(v)));
}
void put_f32(ExportPlan* p, std::string key, double v) {
  put(p, std::move(key), gguf_float(GgufType::FLOAT32, v));
}

Status check_u32(int64_t v, const char* what) {
  if (v < 0 || v > int64_t{UINT32_MAX})
    return error("export: %s = %lld does not fit a GGUF u32", what, (long long)v);
  return Status();
}

// llama.cpp's converter stores llama3 scaling as per-frequency divisors (rope_freqs.weight):
// 1 for short wavelengths, `factor` for long ones, interpolated in between.
std::vector<float> llama3_rope_divisors(const ModelConfig& c) {
  const double pi = 3.14159265358979323846;
  const double lo = c.rope_low_freq_factor, hi = c.rope_high_freq_factor;
  const double orig = static_cast<double>(c.rope_orig_ctx);
  std::vector<float> f;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    double freq = 1.0 / std::pow(static_cast<double>(c.rope_theta),
                                 static_cast<double>(i) / static_cast<double>(c.head_dim));
    double wavelen = 2 * pi / freq;
    if (wavelen < orig / hi) {
      f.push_back(1.0f);
    } else if (wavelen > orig / lo) {
      f.push_back(c.rope_factor);
    } else {
      double smooth = (orig / wavelen - lo) / (hi - lo);
      f.push_back(static_cast<float>(1.0 / ((1 - smooth) / c.rope_factor + smooth)));
    }
  }
  return f;
}

Status plan_hparams(const Model& m, ExportPlan* p) {
  const ModelConfig& c = m.config();
  const std::string a = c.arch + ".";
  for (auto [v, what] : {std::pair{c.n_ctx_train, "context_length"}, {c.n_embd, "n_embd"},
                         {c.n_layer, "n_layer"}, {c.n_ff, "n_ff"}, {c.n_head, "n_head"},
                         {c.n_head_kv, "n_head_kv"}, {c.head_dim, "head_dim"},
                         {c.n_vocab, "n_vocab"}}) {
    SLM_TRY(check_u32(v, what));
  }
  put(p, "general.architecture", gguf_string(c.arch));
  put(p, "general.name", gguf_string(c.name.empty() ? c.arch : c.name));
  put_u32(p, a + "vocab_size", c.n_vocab);
  put_u32(p, a + "context_length", c.n_ctx_train);
  put_u32(p, a + "embedding_length", c.n_embd);
  put_u32(p, a + "block_count", c.n_layer);
  put_u32(p, a + "feed_forward_length", c.n_ff);
  put_u32(p, a + "attention.head_count", c.n_head);
  put_u32(p, a + "attention.head_count_kv", c.n_head_kv);
  put_f32(p, a + "attention.layer_norm_rms_epsilon", c.norm_eps);
  put_f32(p, a + "rope.freq_base", c.rope_theta);
  put_u32(p, a + "rope.dimension_count", c.head_dim);
  if (c.head_dim * c.n_head != c.n_embd) {
    put_u32(p, a + "attention.key_length", c.head_dim);
    put_u32(p, a + "attention.value_length", c.head_dim);
  }
  // A GGUF source already carries llama3 scaling as rope_freqs.weight (config says none).
  if (c.rope_scaling == RopeScalingType::linear && !m.weights().rope_freqs.data) {
    put(p, a + "rope.scaling.type", gguf_string("linear"));
    put_f32(p, a + "rope.scaling.factor", c.rope_factor);
  }
  return Status();
}

// ---- tokenizer ----

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

// Same patterns and flags, step by step.
bool same_steps(const std::vector<tok::SplitStep>& a, const std::vector<tok::SplitStep>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].re->pattern() != b[i].re->pattern() || a[i].keep_gaps != b[i].keep_gaps ||
        a[i].drop_matches != b[i].drop_matches) {
      return false;
    }
  }
  return true;
}

// Families whose GGUF pre name makes slm's and llama.cpp's loaders use ignore_merges (mirrors
// tokenizer/load_gguf.cpp).
bool pre_ignores_merges(const std::string& pre) {
  return pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3" || pre == "tekken" ||
         pre == "falcon3" || pre == "pixtral";
}

// A tokenizer.ggml.pre name whose preset splitting (and ignore_merges rule) equals the loaded
// byte-level tokenizer's. GGUF sources keep their name; tokenizer.json sources are matched
// against the presets, so only splittings llama.cpp knows can be exported.
Expected<std::string> resolve_pre(const tok::TokenizerImpl& t) {
  static const char* const k_names[] = {
      "gpt-2",     "starcoder",  "llama3",      "llama-bpe",     "dbrx",       "smaug-bpe",
      "qwen2",     "tekken",     "gpt-4o",      "deepseek-llm",  "deepseek-coder",
      "deepseek3-llm", "falcon", "bloom",       "viking",        "default"};
  std::vector<std::string> candidates;
  if (!t.pre_type().empty() && t.pre_type() != "hf-byte-level") candidates.push_back(t.pre_type());
  candidates.insert(candidates.end(), std::begin(k_names), std::end(k_names));
  for (const std::string& name : candidates) {
    bool known = false;
    auto steps = tok::preset_steps(name, &known);
    // A preset whose patterns do not compile cannot be what the tokenizer uses.
    if (!steps.ok() || (!known && name != t.pre_type())) continue;
    if (same_steps(*steps, t.pre_steps) && pre_ignores_merges(name) == t.ignore_merges) {
      return name;
    }
  }
  return error(
      "export: the tokenizer's pre-tokenizer (%zu split steps, ignore_merges %d) matches no "
      "GGUF tokenizer.ggml.pre preset",
      t.pre_steps.size(), t.ignore_merges ? 1 : 0);
}

// Merges as "left right" strings in rank order.
std::vector<std::string> merges_in_rank_order(const tok::TokenizerImpl& t) {
  std::vector<std::pair<int32_t, const std::string*>> by_rank;
  by_rank.reserve(t.merge_rank.size());
  for (const auto& [key, rank] : t.merge_rank) by_rank.emplace_back(rank, &key);
  std::sort(by_rank.begin(), by_rank.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  out.reserve(by_rank.size());
  for (const auto& [rank, key] : by_rank) {
    std::string m = *key;
    const size_t sep = m.find('\xff');
    if (sep != std::string::npos) m[sep] = ' ';
    out.push_back(std::move(m));
  }
  return out;
}

// SentencePiece-style scores for a vocabulary merged by rank (tokenizer.json): the token made
// by the best-ranked merge scores highest, so merging by score picks the same pair as merging
// by rank. Tokens no merge makes score lowest (-1e9), so they win only where nothing else
// applies (single characters are never merge results; their score is never consulted).
std::vector<float> scores_from_ranks(const tok::TokenizerImpl& t) {
  std::vector<float> s(static_cast<size_t>(t.vocab_size()), -1e9f);
  for (const auto& [key, rank] : t.merge_rank) {
    std::string joined = key;
    joined.erase(joined.find('\xff'), 1);
    const int32_t id = t.lookup(joined);
    if (id < 0) continue;
    float& v = s[static_cast<size_t>(id)];
    v = std::max(v, -static_cast<float>(rank));
  }
  return s;
}

Status plan_tokenizer(const Model& m, ExportPlan* p) {
  if (!m.has_tokenizer()) return Status();
  const auto* t = dynamic_cast<const tok::TokenizerImpl*>(&m.tokenizer());
  if (!t) return error("export: unknown tokenizer implementation");
  const int64_t n_tok = t->vocab_size(), n_vocab = m.config().n_vocab;
  if (n_tok > n_vocab) {
    return error("export: the tokenizer has %lld tokens but token_embd.weight only %lld rows",
                 (long long)n_tok, (long long)n_vocab);
  }
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  tokens.reserve(static_cast<size_t>(n_vocab));
  for (int32_t i = 0; i < n_tok; ++i) {
    tokens.push_back(t->token_text(i));
    types.push_back(static_cast<int64_t>(t->token_type(i)));
  }
  std::vector<float> scores;
  const tok::TextRules& r = t->text;
  std::string model;
  if (t->kind() == TokenizerKind::spm) {
    model = "llama";
    // slm's and llama.cpp's "llama" loader: '▁' escaping, the space prefix on every text
    // fragment, no pre-tokenizer splits, no normalization. A tokenizer.json Metaspace with
    // prepend_scheme "first" differs only after a special token split out of the text.
    if (!t->pre_steps.empty() || r.nfc || r.nfkc || r.byte_prefix_space) {
      return error("export: SentencePiece-style tokenizer with a pre-tokenizer or normalizer "
                   "that GGUF 'llama' tokenizers cannot express");
    }
    if (!r.escape_spaces) {
      // llama2.c vocabularies spell the space as ' '; GGUF spells it '▁'.
      for (auto& s : tokens) {
        if (s.find(k_marker) != std::string::npos) {
          return error("export: token '%s' already contains '▁' in a ' '-spelled vocabulary",
                       s.c_str());
        }
        replace_all(s, " ", k_marker);
      }
    }
    scores = t->merge_by_score ? t->scores : scores_from_ranks(*t);
    scores.resize(static_cast<size_t>(n_tok), 0.0f);
  } else if (t->kind() == TokenizerKind::bpe) {
    if (!t->byte_level) return error("export: BPE tokenizer without byte-level mapping");
    // An NFC normalizer (Qwen2) is dropped, as llama.cpp's converter does: ids differ only
    // for text that is not already NFC.
    if (r.byte_prefix_space || r.prefix_space || r.escape_spaces || r.nfkc) {
      return error("export: byte-level BPE tokenizer with text rules GGUF 'gpt2' lacks");
    }
    model = "gpt2";
  } else {
    model = "bert";
    const tok::WordPieceRules& w = t->wpm;
    // slm's GGUF "bert" loader uses BERT's defaults.
    if (!w.clean_text || !w.handle_cjk || !w.strip_accents || !w.lowercase ||
        w.max_chars_per_word != 100) {
      return error("export: WordPiece settings differ from the GGUF 'bert' defaults");
    }
    if (w.initial_prefix.empty()) {
      // tokenizer.json spelling -> GGUF's: word-initial "x" -> "▁x", continuation "##x" -> "x";
      // special tokens ([CLS], ...) keep their text, as in llama.cpp's converter.
      const std::string& cont = w.continuation_prefix;
      for (int32_t i = 0; i < n_tok; ++i) {
        std::string& s = tokens[static_cast<size_t>(i)];
        if (t->token_type(i) != TokenType::normal) continue;
        if (!cont.empty() && s.compare(0, cont.size(), cont) == 0) {
          s.erase(0, cont.size());
        } else {
          s.insert(0, k_marker);
        }
      }
    } else if (w.initial_prefix != k_marker || !w.continuation_prefix.empty()) {
      return error("export: WordPiece spelling not expressible in GGUF");
    }
  }
  // Embedding rows beyond the vocabulary get llama.cpp's padding tokens.
  for (int64_t i = n_tok; i < n_vocab; ++i) {
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    types.push_back(static_cast<int64_t>(TokenType::unused));
    if (!scores.empty()) scores.push_back(-1000.0f);
  }

  put(p, "tokenizer.ggml.model", gguf_string(model));
  if (model == "gpt2") {
    SLM_ASSIGN_OR_RETURN(std::string pre, resolve_pre(*t));
    put(p, "tokenizer.ggml.pre", gguf_string(pre));
  } else {
    // llama.cpp ignores pre for SPM and WordPiece; keep a GGUF source's name, else "default"
    // (slm's tokenizer.json loader uses "hf"/"bert" labels that are not GGUF names).
    const std::string& pre = t->pre_type();
    const bool gguf_name = m.config().source_format == "gguf" && !pre.empty();
    put(p, "tokenizer.ggml.pre", gguf_string(gguf_name ? pre : "default"));
  }
  put(p, "tokenizer.ggml.tokens", gguf_string_array(std::move(tokens)));
  if (!scores.empty()) {
    put(p, "tokenizer.ggml.scores",
        gguf_float_array(GgufType::FLOAT32, std::vector<double>(scores.begin(), scores.end())));
  }
  put(p, "tokenizer.ggml.token_type", gguf_int_array(GgufType::INT32, std::move(types)));
  if (model == "gpt2") put(p, "tokenizer.ggml.merges", gguf_string_array(merges_in_rank_order(*t)));

  auto id = [&](const char* key, int32_t v) {
    if (v >= 0) put_u32(p, key, v);
  };
  // An absent id must not turn into the "llama"/"bert" loaders' defaults (bos 1, unk 100, ...):
  // an out-of-range id reads as "none" in slm. The gpt2 defaults are already "none".
  auto id_or_none = [&](const char* key, int32_t v) { put_u32(p, key, v >= 0 ? v : n_vocab); };
  if (model == "bert") {
    // The GGUF "bert" loader always wraps text in [CLS] ... [SEP].
    if (!t->add_bos() || !t->add_eos() || t->bos_id() != t->cls_id || t->eos_id() != t->sep_id) {
      return error("export: WordPiece tokenizer without the [CLS] ... [SEP] template GGUF "
                   "'bert' implies");
    }
    id_or_none("tokenizer.ggml.unknown_token_id", t->unk_id);
    id_or_none("tokenizer.ggml.seperator_token_id", t->sep_id);  // sic: llama.cpp's spelling
    id_or_none("tokenizer.ggml.padding_token_id", t->pad_id);
    id_or_none("tokenizer.ggml.cls_token_id", t->cls_id);
    id_or_none("tokenizer.ggml.mask_token_id", t->mask_id);
  } else {
    if (model == "llama") {
      id_or_none("tokenizer.ggml.bos_token_id", t->bos_id());
      id_or_none("tokenizer.ggml.eos_token_id", t->eos_id());
      id_or_none("tokenizer.ggml.unknown_token_id", t->unk_id);
    } else {
      id("tokenizer.ggml.bos_token_id", t->bos_id());
      id("tokenizer.ggml.eos_token_id", t->eos_id());
      id("tokenizer.ggml.unknown_token_id", t->unk_id);
    }
    id("tokenizer.ggml.padding_token_id", t->pad_id);
    put(p, "tokenizer.ggml.add_bos_token", gguf_bool(t->add_bos()));
    put(p, "tokenizer.ggml.add_eos_token", gguf_bool(t->add_eos()));
  }
  id("tokenizer.ggml.eot_token_id", t->eot_id());
  if (model == "llama") put(p, "tokenizer.ggml.add_space_prefix", gguf_bool(r.prefix_space));
  return Status();
}

// ---- tensors ----

// The three row slices bind_weights cut from one fused matrix, as one view again; false if
// they are not adjacent rows of one buffer.
bool rejoin(const TensorView& a, const TensorView& b, const TensorView* c, const std::string& name,
            TensorView* out) {
  if (a.dtype != b.dtype || a.ne[0] != b.ne[0] || b.data != a.row(a.ne[1])) return false;
  TensorView v = a;
  v.name = name;
  v.ne[1] = a.ne[1] + b.ne[1];
  v.nbytes = a.nbytes + b.nbytes;
  v.x8 = nullptr;  // a's copy covers a's rows only
  if (c) {
    if (c->dtype != a.dtype || c->ne[0] != a.ne[0] || c->data != b.row(b.ne[1])) return false;
    v.ne[1] += c->ne[1];
    v.nbytes += c->nbytes;
  }
  *out = v;
  return true;
}

Status plan_tensors(const Model& m, ExportPlan* p) {
  const ModelConfig& c = m.config();
  const ModelWeights& w = m.weights();
  auto add = [&](std::string name, const TensorView& v, bool matrix, int64_t heads = 0) {
    ExportTensor t;
    t.name = std::move(name);
    t.src = v;
    t.permute_heads = heads;
    t.is_matrix = matrix;
    p->tensors.push_back(std::move(t));
  };
  // GGUF "llama" rotates adjacent pairs; a half-split source needs the converter's permutation.
  const bool permute = c.arch == "llama" && !c.rope_interleaved;
  const bool fused = c.arch == "phi3";  // llama.cpp's phi3 reads attn_qkv and a 2*n_ff ffn_up

  add("token_embd.weight", w.tok_embd, true);
  if (w.rope_freqs.data) {
    add("rope_freqs.weight", w.rope_freqs, false);
  } else if (c.rope_scaling == RopeScalingType::llama3) {
    auto buf = std::make_shared<const std::vector<float>>(llama3_rope_divisors(c));
    TensorView v;
    v.name = "rope_freqs.weight";
    v.dtype = DType::F32;
    v.n_dims = 1;
    v.ne[0] = static_cast<int64_t>(buf->size());
    v.data = buf->data();
    v.nbytes = buf->size() * sizeof(float);
    p->owned.push_back(std::move(buf));
    add("rope_freqs.weight", v, false);
  }
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = w.layers[static_cast<size_t>(il)];
    const std::string b = "blk." + std::to_string(il) + ".";
    add(b + "attn_norm.weight", L.attn_norm, false);
    if (fused) {
      TensorView qkv;
      if (!rejoin(L.wq, L.wk, &L.wv, b + "attn_qkv.weight", &qkv)) {
        return error("export: %sattn_q/k/v are not one fused matrix (phi3 needs attn_qkv)",
                     b.c_str());
      }
      add(b + "attn_qkv.weight", qkv, true);
      if (L.bq.data) return error("export: phi3 with q/k/v biases is unsupported");
    } else {
      add(b + "attn_q.weight", L.wq, true, permute ? c.n_head : 0);
      if (L.bq.data) add(b + "attn_q.bias", L.bq, false, permute ? c.n_head : 0);
      add(b + "attn_k.weight", L.wk, true, permute ? c.n_head_kv : 0);
      if (L.bk.data) add(b + "attn_k.bias", L.bk, false, permute ? c.n_head_kv : 0);
      add(b + "attn_v.weight", L.wv, true);
      if (L.bv.data) add(b + "attn_v.bias", L.bv, false);
    }
    if (L.q_norm.data) add(b + "attn_q_norm.weight", L.q_norm, false);
    if (L.k_norm.data) add(b + "attn_k_norm.weight", L.k_norm, false);
    add(b + "attn_output.weight", L.wo, true);
    add(b + "ffn_norm.weight", L.ffn_norm, false);
    if (fused) {
      TensorView gu;
      if (!rejoin(L.w_gate, L.w_up, nullptr, b + "ffn_up.weight", &gu)) {
        return error("export: %sffn_gate/up are not one fused matrix (phi3 needs it)",
                     b.c_str());
      }
      add(b + "ffn_up.weight", gu, true);
    } else {
      add(b + "ffn_gate.weight", L.w_gate, true);
      add(b + "ffn_up.weight", L.w_up, true);
    }
    add(b + "ffn_down.weight", L.w_down, true);
  }
  add("output_norm.weight", w.out_norm, false);
  // llama.cpp's phi3 requires output.weight; the others reuse token_embd when it is absent.
  if (!c.tied_embeddings || c.arch == "phi3") add("output.weight", w.output, true);
  for (const ExportTensor& t : p->tensors) {
    if (!t.src.data) return error("export: tensor '%s' has no data", t.name.c_str());
  }
  return Status();
}

}  // namespace

Expected<ExportPlan> plan_gguf_export(const Model& model) {
  ExportPlan p;
  SLM_TRY(plan_hparams(model, &p));
  SLM_TRY(plan_tokenizer(model, &p));
  if (!model.chat_template().empty()) {
    p.metadata.emplace_back("tokenizer.chat_template", gguf_string(model.chat_template()));
  }
  SLM_TRY(plan_tensors(model, &p));
  return p;
}

void export_rows_f32(const ExportTensor& t, int64_t r0, int64_t r1, float* out) {
  const TensorView& v = t.src;
  const int64_t cols = v.ne[0];
  if (t.permute_heads <= 0) {
    for (int64_t r = r0; r < r1; ++r) weight_row_to_f32(v, r, out + (r - r0) * cols);
    return;
  }
  // Within each head, output row 2i+j is source row j*hd/2 + i (HF halves -> adjacent pairs).
  auto src_index = [&](int64_t i, int64_t n) {
    const int64_t hd = n / t.permute_heads, half = hd / 2;
    const int64_t h = i / hd, k = i % hd;
    return h * hd + (k % 2) * half + k / 2;
  };
  if (v.rows() == 1) {
    // A q/k bias: the elements are what gets permuted.
    std::vector<float> row(static_cast<size_t>(cols));
    weight_row_to_f32(v, 0, row.data());
    for (int64_t i = 0; i < cols; ++i) out[i] = row[static_cast<size_t>(src_index(i, cols))];
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    weight_row_to_f32(v, src_index(r, v.rows()), out + (r - r0) * cols);
  }
}

}  // namespace slm
