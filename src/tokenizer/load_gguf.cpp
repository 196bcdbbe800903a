// Builds a Tokenizer from GGUF metadata (tokenizer.ggml.*): model llama (SPM), gpt2 (byte-level
// BPE with the tokenizer.ggml.pre splitting) or bert (WordPiece).
#include <cstdio>

#include "formats/gguf.h"
#include "tokenizer/tokenizer_impl.h"

namespace slm {

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& gguf) {
  using tok::TokenizerImpl;
  auto t = std::make_unique<TokenizerImpl>();
  const std::string where = gguf.path().empty() ? std::string("gguf") : gguf.path();
  auto fail = [&](const Status& s) { return s.with_context(where); };

  auto model = gguf.get_string("tokenizer.ggml.model");
  if (!model.ok()) return fail(model.status());
  auto tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) return fail(tokens.status());
  const size_t n = tokens->size();
  t->tokens() = std::move(*tokens);

  if (gguf.has("tokenizer.ggml.scores")) {
    auto scores = gguf.get_float_array("tokenizer.ggml.scores");
    if (!scores.ok()) return fail(scores.status());
    if (scores->size() != n) {
      return fail(error("tokenizer.ggml.scores: %zu entries for %zu tokens", scores->size(), n));
    }
    t->scores.assign(scores->begin(), scores->end());
  }
  t->types().assign(n, TokenType::normal);
  if (gguf.has("tokenizer.ggml.token_type")) {
    auto types = gguf.get_int_array("tokenizer.ggml.token_type");
    if (!types.ok()) return fail(types.status());
    if (types->size() != n) {
      return fail(error("tokenizer.ggml.token_type: %zu entries for %zu tokens", types->size(), n));
    }
    for (size_t i = 0; i < n; ++i) {
      const int64_t v = (*types)[i];
      // Undefined (0) and out-of-range values are treated as normal tokens.
      t->types()[i] = (v >= 1 && v <= 6) ? static_cast<TokenType>(v) : TokenType::normal;
    }
  }

  auto get_id = [&](const char* key, int64_t dflt, int32_t* out) -> Status {
    auto v = gguf.get_int_or(key, dflt);
    if (!v.ok()) return v.status();
    *out = (*v >= 0 && *v < static_cast<int64_t>(n)) ? static_cast<int32_t>(*v) : -1;
    return Status();
  };
  auto get_bool = [&](const char* key, bool dflt, bool* out) -> Status {
    auto v = gguf.get_bool_or(key, dflt);
    if (!v.ok()) return v.status();
    *out = *v;
    return Status();
  };

  int32_t bos = -1, eos = -1, eot = -1;
  bool add_bos = false, add_eos = false;
  if (*model == "llama") {
    t->set_kind(TokenizerKind::spm);
    t->merge_by_score = true;
    bool space_prefix = true;
    Status s = get_bool("tokenizer.ggml.add_space_prefix", true, &space_prefix);
    if (!s.ok()) return fail(s);
    t->text.prefix_space = space_prefix;
    t->text.escape_spaces = true;
    t->set_strip_leading_space(space_prefix);
    if (!(s = get_id("tokenizer.ggml.bos_token_id", 1, &bos)).ok()) return fail(s);
    if (!(s = get_id("tokenizer.ggml.eos_token_id", 2, &eos)).ok()) return fail(s);
    if (!(s = get_id("tokenizer.ggml.unknown_token_id", 0, &t->unk_id)).ok()) return fail(s);
    if (!(s = get_bool("tokenizer.ggml.add_bos_token", true, &add_bos)).ok()) return fail(s);
  } else if (*model == "gpt2") {
    t->set_kind(TokenizerKind::bpe);
    t->byte_level = true;
    auto pre = gguf.get_string_or("tokenizer.ggml.pre", "default");
    if (!pre.ok()) return fail(pre.status());
    bool known = true;
    auto steps = tok::preset_steps(*pre, &known);
    if (!steps.ok()) return fail(steps.status());
    if (!known) {
      std::fprintf(stderr, "slm: %s: unknown tokenizer.ggml.pre '%s', using 'default' splitting\n",
                   where.c_str(), pre->c_str());
    }
    t->pre_steps = std::move(*steps);
    t->set_pre(*pre);
    // Families whose tokenizer.json sets ignore_merges.
    t->ignore_merges = *pre == "llama3" || *pre == "llama-bpe" || *pre == "llama-v3" ||
                       *pre == "tekken" || *pre == "falcon3" || *pre == "pixtral";
    auto merges = gguf.get_string_array("tokenizer.ggml.merges");
    if (!merges.ok()) return fail(merges.status());
    t->merge_rank.reserve(merges->size());
    for (size_t r = 0; r < merges->size(); ++r) {
      const std::string& m = (*merges)[r];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) {
        return fail(error("tokenizer.ggml.merges[%zu]: '%s' is not 'left right'", r, m.c_str()));
      }
      t->merge_rank.emplace(TokenizerImpl::merge_key(std::string_view(m).substr(0, sp),
                                                     std::string_view(m).substr(sp + 1)),
                            static_cast<int32_t>(r));
    }
    Status s;
    if (!(s = get_id("tokenizer.ggml.bos_token_id", -1, &bos)).ok()) return fail(s);
    if (!(s = get_id("tokenizer.ggml.eos_token_id", -1, &eos)).ok()) return fail(s);
    if (!(s = get_id("tokenizer.ggml.unknown_token_id", -1, &t->unk_id)).ok()) return fail(s);
    if (!(s = get_bool("tokenizer.ggml.add_bos_token", t->ignore_merges, &add_bos)).ok()) {
      return fail(s);
    }
  } else if (*model == "bert") {
    t->set_kind(TokenizerKind::wpm);
    t->wpm.initial_prefix = "\xe2\x96\x81";  // GGUF spells word-initial pieces "▁x"
    t->wpm.continuation_prefix.clear();
    t->set_strip_leading_space(true);
    Status s;
    if (!(s = get_id("tokenizer.ggml.unknown_token_id", 100, &t->unk_id)).ok()) return fail(s);
    if (!(s = get_id("tokenizer.ggml.seperator_token_id", 102, &t->sep_id)).ok()) return fail(s);
    if (!(s = get_id("tokenizer.ggml.padding_token_id", 0, &t->pad_id)).ok()) return fail(s);
    if (!(s = get_id("tokenizer.ggml.cls_token_id", 101, &t->cls_id)).ok()) return fail(s);
    if (!(s = get_id("tokenizer.ggml.mask_token_id", 103, &t->mask_id)).ok()) return fail(s);
    bos = t->cls_id;
    eos = t->sep_id;
    add_bos = add_eos = true;  // [CLS] ... [SEP]
  } else {
    return fail(error("tokenizer.ggml.model: unsupported tokenizer model '%s'", model->c_str()));
  }
  if (*model != "bert") {
    Status s = get_bool("tokenizer.ggml.add_eos_token", false, &add_eos);
    if (!s.ok()) return fail(s);
  }
  Status s = get_id("tokenizer.ggml.eot_token_id", -1, &eot);
  if (!s.ok()) return fail(s);
  if (*model != "bert") {
    if (!(s = get_id("tokenizer.ggml.padding_token_id", -1, &t->pad_id)).ok()) return fail(s);
  }
  t->set_special(bos, eos, eot);
  t->set_add(add_bos, add_eos);
  if (t->pre_type().empty()) {
    auto pre = gguf.get_string_or("tokenizer.ggml.pre", "default");
    if (pre.ok()) t->set_pre(*pre);
  }
  SLM_TRY(t->finalize().with_context(where));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace slm
