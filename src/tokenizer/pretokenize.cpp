// Pre-tokenization with PCRE2 and the per-family split presets. Each family's pattern list
// follows its tokenizer.json pre_tokenizer (Split / Digits / ByteLevel regex), applied in order.
#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>
#include <map>

#include "tokenizer/unicode.h"

namespace slm::tok {

const char* const k_gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Expected<std::shared_ptr<const Regex>> Regex::compile(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err,
                                   &err_off, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return error("pre-tokenizer regex '%s': %s at offset %llu", pattern.c_str(),
                 reinterpret_cast<const char*>(msg), (unsigned long long)err_off);
  }
  // JIT is an optimisation only: matching falls back to the interpreter if it is unavailable.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::shared_ptr<Regex> re(new Regex());
  re->pattern_ = pattern;
  re->code_ = code;
  return std::shared_ptr<const Regex>(std::move(re));
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  if (md == nullptr) return;
  const auto* subj = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t start = 0;
  while (start < subject.size()) {
    int rc = pcre2_match(code, subj, subject.size(), start, 0, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code, subj, subject.size(), start, PCRE2_NO_JIT, md, nullptr);
    }
    if (rc < 0) break;  // no match (or a resource limit): the rest is one gap
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e <= b) {
      // Empty matches carry no text; step over one character and keep scanning.
      start = b + utf8_step(subject, b);
      continue;
    }
    out.emplace_back(b, e);
    start = e;
  }
  pcre2_match_data_free(md);
}

std::vector<std::string_view> pre_tokenize(std::string_view text,
                                           const std::vector<SplitStep>& steps) {
  std::vector<std::string_view> pieces;
  if (!text.empty()) pieces.push_back(text);
  std::vector<std::pair<size_t, size_t>> matches;
  for (const SplitStep& step : steps) {
    std::vector<std::string_view> next;
    next.reserve(pieces.size() * 2);
    for (std::string_view piece : pieces) {
      matches.clear();
      step.re->find_all(piece, matches);
      size_t pos = 0;
      for (const auto& [b, e] : matches) {
        if (b > pos && step.keep_gaps) next.push_back(piece.substr(pos, b - pos));
        if (!step.drop_matches) next.push_back(piece.substr(b, e - b));
        pos = e;
      }
      if (pos < piece.size() && step.keep_gaps) next.push_back(piece.substr(pos));
    }
    pieces.swap(next);
  }
  return pieces;
}

namespace {

// Pattern fragments shared by several families.
const char* const k_llama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const k_qwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const k_bloom = R"( ?[^(\s|.,!?…。，、।۔،)]+)";
const char* const k_cjk = "[一-龥ࠀ-一가-퟿]+";

const std::map<std::string, std::vector<std::string>>& presets() {
  static const std::map<std::string, std::vector<std::string>> m = [] {
    std::map<std::string, std::vector<std::string>> p;
    // The pre-2024 llama.cpp default for BPE vocabularies without a pre type.
    p["default"] = {R"([\p{P}\$\+<=>\^~\|]+)", k_gpt2_pattern, R"(\p{N}+)", "[0-9][0-9][0-9]"};
    p["gpt-2"] = {k_gpt2_pattern};
    p["starcoder"] = {R"(\p{N})", k_gpt2_pattern};
    p["llama3"] = {k_llama3};
    p["qwen2"] = {k_qwen2};
    p["deepseek-llm"] = {
        "[\r\n]",
        "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-"
        "ὗὙὛὝὟ-\\x{1f7d}ᾀ-ᾴᾶ-ᾼ\\x{1fbe}ῂ-ῄῆ-ῌῐ-\\x{1fd3}ῖ-\\x{1fdb}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\\x{2126}ℨ\\x{212a}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-"
        "ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ\\x{10400}-\\x{1044f}𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
        "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
        "\\s+$",
        k_cjk,
        "\\p{N}+"};
    p["deepseek-coder"] = {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", k_cjk, R"(\p{N})"};
    p["deepseek3-llm"] = {
        R"(\p{N}{1,3})", "[一-龥぀-ゟ゠-ヿ]+",
        R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
    // Falcon's Digits runs after ByteLevel, on the byte-mapped text, where the digits are the
    // ASCII ones (it splits " 12" into " " and "12").
    p["falcon"] = {R"([\p{P}\$\+<=>\^~\|`]+)", k_gpt2_pattern, "[0-9]+", "[0-9][0-9][0-9]"};
    p["bloom"] = {k_bloom};
    p["viking"] = {k_bloom, R"(\p{N})"};
    p["tekken"] = {
        R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
    p["gpt-4o"] = {
        R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
    return p;
  }();
  return m;
}

// GGUF pre names that share another family's splitting.
const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> m = {
      {"gpt2", "gpt-2"},        {"mpt", "gpt-2"},          {"olmo", "gpt-2"},
      {"jais", "gpt-2"},        {"gpt-neox", "gpt-2"},     {"phi-2", "gpt-2"},
      {"roberta-bpe", "gpt-2"}, {"refact", "starcoder"},   {"command-r", "starcoder"},
      {"smollm", "starcoder"},  {"codeshell", "starcoder"}, {"exaone", "starcoder"},
      {"minerva-7b", "starcoder"}, {"llama-bpe", "llama3"}, {"llama-v3", "llama3"},
      {"dbrx", "llama3"},       {"smaug-bpe", "llama3"},   {"chatglm-bpe", "llama3"},
      {"falcon3", "llama3"},    {"pixtral", "llama3"},     {"stablelm2", "qwen2"},
      {"deepseek-r1-qwen", "qwen2"}, {"megrez", "qwen2"},  {"poro-chat", "bloom"},
      {"gpt3-finnish", "bloom"}, {"deepseek-v3", "deepseek3-llm"}};
  return m;
}

}  // namespace

Expected<std::vector<SplitStep>> preset_steps(const std::string& pre, bool* known) {
  std::string name = pre;
  if (auto a = aliases().find(name); a != aliases().end()) name = a->second;
  auto it = presets().find(name);
  *known = it != presets().end();
  if (!*known) it = presets().find("default");
  std::vector<SplitStep> steps;
  for (const std::string& pattern : it->second) {
    SLM_ASSIGN_OR_RETURN(auto re, Regex::compile(pattern));
    steps.push_back(SplitStep{std::move(re), true, false});
  }
  return steps;
}

}  // namespace slm::tok
