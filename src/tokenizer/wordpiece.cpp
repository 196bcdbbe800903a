// WordPiece (BERT, bge): BERT normalization and pre-tokenization (clean text, pad CJK, strip
// accents, lowercase, split on whitespace and punctuation), then greedy longest-match-first.
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace slm::tok {

void TokenizerImpl::encode_wpm(std::string_view text, std::vector<int32_t>& out) const {
  // Normalize into code points; 0 marks a word boundary (whitespace), punctuation and CJK
  // characters become words of their own.
  std::vector<std::vector<uint32_t>> words(1);
  std::vector<uint32_t> decomposed;
  auto boundary = [&] {
    if (!words.back().empty()) words.emplace_back();
  };
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = utf8_next(text, i);
    if (wpm.clean_text) {
      if (cp == 0 || cp == k_replacement_char || is_bert_control(cp)) continue;
    }
    if (is_bert_whitespace(cp)) {
      boundary();
      continue;
    }
    if (wpm.handle_cjk && is_cjk(cp)) {
      boundary();
      words.back().push_back(cp);
      boundary();
      continue;
    }
    decomposed.clear();
    if (wpm.strip_accents) {
      append_stripped_accents(decomposed, cp);
    } else {
      decomposed.push_back(cp);
    }
    for (uint32_t c : decomposed) {
      if (wpm.lowercase) c = to_lower(c);
      if (is_bert_punctuation(c)) {
        boundary();
        words.back().push_back(c);
        boundary();
      } else {
        words.back().push_back(c);
      }
    }
  }

  std::string candidate;
  std::vector<size_t> offsets;  // byte offset of each character in the word's UTF-8
  std::string utf8;
  for (const auto& word : words) {
    if (word.empty()) continue;
    if (static_cast<int64_t>(word.size()) > wpm.max_chars_per_word) {
      if (unk_id >= 0) out.push_back(unk_id);
      continue;
    }
    utf8.clear();
    offsets.clear();
    for (uint32_t c : word) {
      offsets.push_back(utf8.size());
      utf8_append(utf8, c);
    }
    offsets.push_back(utf8.size());
    const size_t before = out.size();
    const size_t n = word.size();
    bool ok = true;
    for (size_t start = 0; start < n && ok;) {
      size_t end = n;
      int32_t found = -1;
      for (; end > start; --end) {
        candidate = start == 0 ? wpm.initial_prefix : wpm.continuation_prefix;
        candidate.append(utf8, offsets[start], offsets[end] - offsets[start]);
        found = lookup(candidate);
        if (found >= 0) break;
      }
      if (found < 0) {
        ok = false;
      } else {
        out.push_back(found);
        start = end;
      }
    }
    if (!ok) {
      out.resize(before);
      if (unk_id >= 0) out.push_back(unk_id);
    }
  }
}

}  // namespace slm::tok
