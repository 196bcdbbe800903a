// Rank-ordered BPE (GPT-2 byte-level families, and tokenizer.json BPE models): split the text
// into pre-tokens, then merge the adjacent pair with the lowest merge rank until none applies.
#include "tokenizer/merge.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace slm::tok {

void TokenizerImpl::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<MergeSymbol> syms;
  std::string word;
  std::string key;
  for (std::string_view piece : pre_tokenize(text, pre_steps)) {
    word.clear();
    if (byte_level) {
      for (char c : piece) word += byte_to_unicode(static_cast<uint8_t>(c));
    } else {
      word.assign(piece);
    }
    if (ignore_merges) {
      const int32_t id = lookup(word);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    const std::string_view w(word);
    merge_symbols(w, syms, [&](std::string_view l, std::string_view r, double* priority) {
      key.assign(l);
      key += '\xff';
      key.append(r);
      auto it = merge_rank.find(key);
      if (it == merge_rank.end()) return false;
      *priority = -static_cast<double>(it->second);  // lowest rank merges first
      return true;
    });
    if (syms.empty()) continue;

    for (int64_t i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
      const MergeSymbol& s = syms[static_cast<size_t>(i)];
      const std::string_view sym = w.substr(s.begin, s.len);
      const int32_t id = lookup(sym);
      if (id >= 0) {
        out.push_back(id);
      } else if (byte_fallback) {
        push_bytes(sym, out);
      } else if (byte_level) {
        // A mapped byte missing from the vocabulary: each character on its own, else <unk>.
        for (size_t k = 0; k < sym.size();) {
          const size_t n = utf8_step(sym, k);
          const int32_t cid = lookup(sym.substr(k, n));
          if (cid >= 0) {
            out.push_back(cid);
          } else if (unk_id >= 0) {
            out.push_back(unk_id);
          }
          k += n;
        }
      } else if (unk_id >= 0) {
        out.push_back(unk_id);
      }
    }
  }
}

}  // namespace slm::tok
