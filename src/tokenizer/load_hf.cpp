// Builds a Tokenizer from a Hugging Face tokenizer.json (+ tokenizer_config.json): BPE
// (byte-level or SentencePiece-like with byte_fallback) and WordPiece, with the normalizer,
// pre_tokenizer and post_processor pieces those models use. Unsupported pieces are errors.
#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "tokenizer/tokenizer_impl.h"

namespace slm {
namespace {

using nlohmann::json;
using tok::TokenizerImpl;

constexpr int64_t k_max_vocab = int64_t{1} << 24;
constexpr int k_max_depth = 64;
const std::string k_marker = "\xe2\x96\x81";  // "▁"

std::string str_or(const json& j, const char* key, const std::string& dflt) {
  auto it = j.find(key);
  return (it != j.end() && it->is_string()) ? it->get<std::string>() : dflt;
}
bool bool_or(const json& j, const char* key, bool dflt) {
  auto it = j.find(key);
  return (it != j.end() && it->is_boolean()) ? it->get<bool>() : dflt;
}

// Escapes a literal for PCRE2.
std::string regex_quote(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}/-").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

Status add_step(TokenizerImpl& t, const std::string& pattern, bool keep_gaps, bool drop_matches) {
  SLM_ASSIGN_OR_RETURN(auto re, tok::Regex::compile(pattern));
  t.pre_steps.push_back(tok::SplitStep{std::move(re), keep_gaps, drop_matches});
  return Status();
}

Status apply_normalizer(TokenizerImpl& t, const json& n) {
  if (n.is_null()) return Status();
  if (!n.is_object()) return error("normalizer: not an object");
  const std::string type = str_or(n, "type", "");
  if (type == "Sequence") {
    auto it = n.find("normalizers");
    if (it == n.end() || !it->is_array()) return error("normalizer Sequence: no normalizers");
    for (const json& sub : *it) SLM_TRY(apply_normalizer(t, sub));
  } else if (type == "Prepend") {
    if (str_or(n, "prepend", "") != k_marker) return error("normalizer Prepend: only \"▁\"");
    t.text.prefix_space = true;
  } else if (type == "Replace") {
    const json& pat = n.value("pattern", json::object());
    if (str_or(pat, "String", "") != " " || str_or(n, "content", "") != k_marker) {
      return error("normalizer Replace: only ' ' -> '▁' is supported");
    }
    t.text.escape_spaces = true;
  } else if (type == "NFC") {
    t.text.nfc = true;
  } else if (type == "NFKC") {
    t.text.nfkc = true;
  } else if (type == "BertNormalizer") {
    t.wpm.clean_text = bool_or(n, "clean_text", true);
    t.wpm.handle_cjk = bool_or(n, "handle_chinese_chars", true);
    t.wpm.lowercase = bool_or(n, "lowercase", true);
    t.wpm.strip_accents = bool_or(n, "strip_accents", t.wpm.lowercase);
  } else if (type == "Lowercase" && t.kind() == TokenizerKind::wpm) {
    t.wpm.lowercase = true;
  } else if ((type == "NFD" || type == "StripAccents") && t.kind() == TokenizerKind::wpm) {
    t.wpm.strip_accents = true;
  } else {
    return error("normalizer '%s' is not supported", type.c_str());
  }
  return Status();
}

Status apply_pre_tokenizer(TokenizerImpl& t, const json& p) {
  if (p.is_null()) return Status();
  if (!p.is_object()) return error("pre_tokenizer: not an object");
  const std::string type = str_or(p, "type", "");
  if (type == "Sequence") {
    auto it = p.find("pretokenizers");
    if (it == p.end() || !it->is_array()) return error("pre_tokenizer Sequence: no pretokenizers");
    for (const json& sub : *it) SLM_TRY(apply_pre_tokenizer(t, sub));
  } else if (type == "ByteLevel") {
    t.byte_level = true;
    if (bool_or(p, "add_prefix_space", false)) t.text.byte_prefix_space = true;
    if (bool_or(p, "use_regex", true)) SLM_TRY(add_step(t, tok::k_gpt2_pattern, true, false));
  } else if (type == "Split") {
    const json& pat = p.value("pattern", json::object());
    std::string regex;
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      regex = pat["Regex"].get<std::string>();
    } else if (pat.contains("String") && pat["String"].is_string()) {
      regex = regex_quote(pat["String"].get<std::string>());
    } else {
      return error("pre_tokenizer Split: pattern needs Regex or String");
    }
    const std::string behavior = str_or(p, "behavior", "Isolated");
    const bool invert = bool_or(p, "invert", false);
    if (behavior == "Isolated") {
      SLM_TRY(add_step(t, regex, true, false));
    } else if (behavior == "Removed") {
      // invert: the pattern is the content to keep, the gaps are dropped.
      SLM_TRY(add_step(t, regex, !invert, invert ? false : true));
    } else {
      return error("pre_tokenizer Split: behavior '%s' is not supported", behavior.c_str());
    }
  } else if (type == "Digits") {
    SLM_TRY(add_step(t, bool_or(p, "individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)", true,
                     false));
  } else if (type == "Metaspace") {
    if (str_or(p, "replacement", k_marker) != k_marker) {
      return error("pre_tokenizer Metaspace: only replacement '▁' is supported");
    }
    t.text.escape_spaces = true;
    std::string scheme = str_or(p, "prepend_scheme", "");
    if (scheme.empty()) scheme = bool_or(p, "add_prefix_space", true) ? "always" : "never";
    t.text.prefix_space = scheme != "never";
    t.text.prefix_first_only = scheme == "first";
    if (bool_or(p, "split", true)) SLM_TRY(add_step(t, "▁[^▁]*|[^▁]+", true, false));
  } else if (type == "Whitespace") {
    SLM_TRY(add_step(t, R"(\w+|[^\w\s]+)", false, false));
  } else if (type == "WhitespaceSplit") {
    SLM_TRY(add_step(t, R"(\S+)", false, false));
  } else if (type == "Punctuation") {
    SLM_TRY(add_step(t, R"([\p{P}!-/:-@\[-`{-~])", true, false));
  } else if (type == "BertPreTokenizer" && t.kind() == TokenizerKind::wpm) {
    // WordPiece encoding always splits BERT-style.
  } else {
    return error("pre_tokenizer '%s' is not supported", type.c_str());
  }
  return Status();
}

// Looks up a special token named by a post-processor or config entry.
int32_t special_id(const TokenizerImpl& t, const json& j) {
  if (j.is_string()) return t.lookup(j.get<std::string>());
  if (j.is_object()) return t.lookup(str_or(j, "content", ""));
  return -1;
}

// Reads which special tokens the post-processor puts around a single sequence.
void apply_post_processor(const TokenizerImpl& t, const json& p, int32_t* bos, int32_t* eos,
                          bool* add_bos, bool* add_eos) {
  if (!p.is_object()) return;
  const std::string type = str_or(p, "type", "");
  if (type == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
    for (const json& sub : p["processors"]) apply_post_processor(t, sub, bos, eos, add_bos, add_eos);
  } else if (type == "TemplateProcessing" && p.contains("single") && p["single"].is_array()) {
    const json& single = p["single"];
    bool seen_seq = false;
    for (const json& item : single) {
      if (item.contains("Sequence")) {
        seen_seq = true;
      } else if (item.contains("SpecialToken") && item["SpecialToken"].is_object()) {
        const int32_t id = t.lookup(str_or(item["SpecialToken"], "id", ""));
        if (id < 0) continue;
        if (seen_seq) {
          *eos = id, *add_eos = true;
        } else {
          *bos = id, *add_bos = true;
        }
      }
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"}) {
      auto it = p.find(key);
      if (it == p.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) continue;
      const int32_t id = t.lookup((*it)[0].get<std::string>());
      if (id < 0) continue;
      if (std::string_view(key) == "cls") {
        *bos = id, *add_bos = true;
      } else {
        *eos = id, *add_eos = true;
      }
    }
  }
}

Expected<std::unique_ptr<Tokenizer>> load(std::string_view text, std::string_view config_text) {
  SLM_TRY(check_json_depth(text, k_max_depth));
  const json root = json::parse(text.begin(), text.end(), nullptr, false);
  if (root.is_discarded() || !root.is_object()) return error("not a JSON object");
  json config = json::object();
  if (!config_text.empty()) {
    SLM_TRY(check_json_depth(config_text, k_max_depth).with_context("tokenizer_config.json"));
    config = json::parse(config_text.begin(), config_text.end(), nullptr, false);
    if (config.is_discarded() || !config.is_object()) {
      return error("tokenizer_config.json: not a JSON object");
    }
  }
  auto mit = root.find("model");
  if (mit == root.end() || !mit->is_object()) return error("model: missing");
  const json& model = *mit;
  std::string type = str_or(model, "type", "");
  if (type.empty()) type = model.contains("merges") ? "BPE" : "WordPiece";
  auto t = std::make_unique<TokenizerImpl>();
  if (type == "WordPiece") {
    t->set_kind(TokenizerKind::wpm);
    t->wpm.initial_prefix.clear();
    t->wpm.continuation_prefix = str_or(model, "continuing_subword_prefix", "##");
    auto mc = model.find("max_input_chars_per_word");
    if (mc != model.end() && mc->is_number_integer()) t->wpm.max_chars_per_word = mc->get<int64_t>();
  } else if (type == "BPE") {
    t->set_kind(TokenizerKind::bpe);
    t->byte_fallback = bool_or(model, "byte_fallback", false);
    t->ignore_merges = bool_or(model, "ignore_merges", false);
    if (!str_or(model, "continuing_subword_prefix", "").empty() ||
        !str_or(model, "end_of_word_suffix", "").empty()) {
      return error("model: BPE subword prefixes/suffixes are not supported");
    }
  } else {
    return error("model.type '%s' is not supported", type.c_str());
  }

  // Vocabulary and added tokens; ids may be sparse.
  auto vit = model.find("vocab");
  if (vit == model.end() || !vit->is_object()) return error("model.vocab: missing");
  std::vector<std::pair<std::string, int64_t>> entries;
  int64_t max_id = -1;
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    if (!it.value().is_number_integer()) return error("model.vocab['%s']: id not an integer", it.key().c_str());
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= k_max_vocab) return error("model.vocab['%s']: id %lld out of range", it.key().c_str(), (long long)id);
    entries.emplace_back(it.key(), id);
    max_id = std::max(max_id, id);
  }
  struct Added {
    std::string content;
    int64_t id;
    bool special;
  };
  std::vector<Added> added;
  if (auto at = root.find("added_tokens"); at != root.end() && at->is_array()) {
    for (const json& a : *at) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer()) {
        return error("added_tokens: entry without an integer id");
      }
      const int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id >= k_max_vocab) return error("added_tokens: id %lld out of range", (long long)id);
      added.push_back({str_or(a, "content", ""), id, bool_or(a, "special", false)});
      max_id = std::max(max_id, id);
    }
  }
  if (max_id < 0) return error("model.vocab: empty");
  auto& tokens = t->tokens();
  auto& types = t->types();
  tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  types.assign(tokens.size(), TokenType::unused);
  for (auto& [text_, id] : entries) {
    tokens[static_cast<size_t>(id)] = text_;
    types[static_cast<size_t>(id)] = TokenType::normal;
  }
  for (const Added& a : added) {
    tokens[static_cast<size_t>(a.id)] = a.content;
    types[static_cast<size_t>(a.id)] = a.special ? TokenType::control : TokenType::user_defined;
  }
  // A first finalize builds the text -> id map the rest of the loading needs.
  SLM_TRY(t->finalize());

  if (type == "BPE") {
    auto mg = model.find("merges");
    if (mg == model.end() || !mg->is_array()) return error("model.merges: missing");
    t->merge_rank.reserve(mg->size());
    int32_t rank = 0;
    for (const json& m : *mg) {
      std::string a, b;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) return error("model.merges[%d]: '%s' is not 'a b'", rank, s.c_str());
        a = s.substr(0, sp), b = s.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        a = m[0].get<std::string>(), b = m[1].get<std::string>();
      } else {
        return error("model.merges[%d]: neither 'a b' nor [a, b]", rank);
      }
      t->merge_rank.emplace(TokenizerImpl::merge_key(a, b), rank++);
    }
  }
  if (auto u = model.find("unk_token"); u != model.end() && u->is_string()) {
    t->unk_id = t->lookup(u->get<std::string>());
  }
  SLM_TRY(apply_normalizer(*t, root.value("normalizer", json())).with_context("normalizer"));
  SLM_TRY(apply_pre_tokenizer(*t, root.value("pre_tokenizer", json())).with_context("pre_tokenizer"));
  if (const json& dec = root.value("decoder", json()); dec.is_object()) {
    if (str_or(dec, "type", "") == "ByteLevel") t->byte_level = true;
  }
  if (t->kind() == TokenizerKind::bpe && !t->byte_level &&
      (t->byte_fallback || t->text.escape_spaces)) {
    t->set_kind(TokenizerKind::spm);  // SentencePiece-style vocabulary, merged by rank
  }
  t->set_pre(t->kind() == TokenizerKind::wpm ? "bert" : t->byte_level ? "hf-byte-level" : "hf");
  t->set_strip_leading_space(t->kind() == TokenizerKind::wpm ||
                             (t->kind() == TokenizerKind::spm && t->text.prefix_space));

  int32_t bos = -1, eos = -1;
  bool add_bos = false, add_eos = false;
  apply_post_processor(*t, root.value("post_processor", json()), &bos, &eos, &add_bos, &add_eos);
  if (t->kind() == TokenizerKind::wpm) {
    t->cls_id = bos, t->sep_id = eos;
    t->pad_id = t->lookup("[PAD]"), t->mask_id = t->lookup("[MASK]");
  }
  if (config.contains("bos_token")) {
    const int32_t id = special_id(*t, config["bos_token"]);
    if (id >= 0) bos = id;
  }
  if (config.contains("eos_token")) {
    const int32_t id = special_id(*t, config["eos_token"]);
    if (id >= 0) eos = id;
  }
  add_bos = bool_or(config, "add_bos_token", add_bos);
  add_eos = bool_or(config, "add_eos_token", add_eos);
  t->set_special(bos, eos, -1);
  t->set_add(add_bos, add_eos);
  SLM_TRY(t->finalize());
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_hf_json(std::string_view tokenizer_json,
                                                             std::string_view tokenizer_config_json) {
  auto r = load(tokenizer_json, tokenizer_config_json);
  if (!r.ok()) return r.status().with_context("tokenizer.json");
  return r;
}

}  // namespace slm
