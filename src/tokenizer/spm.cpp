// SentencePiece-style BPE (Llama 2, Mistral, Phi-3, llama2.c): start from UTF-8 characters and
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring token.
#include "tokenizer/merge.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace slm::tok {

void TokenizerImpl::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<MergeSymbol> syms;
  merge_symbols(text, syms, [&](std::string_view l, std::string_view r, double* priority) {
    // The pair merges if its concatenation is a token; l and r are adjacent in text.
    const int32_t id = lookup(std::string_view(l.data(), l.size() + r.size()));
    if (id < 0) return false;
    *priority = scores.empty() ? 0.0 : scores[static_cast<size_t>(id)];
    return true;
  });
  if (syms.empty()) return;

  for (int64_t i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
    const MergeSymbol& s = syms[static_cast<size_t>(i)];
    const std::string_view piece = text.substr(s.begin, s.len);
    const int32_t id = lookup(piece);
    if (id >= 0) {
      out.push_back(id);
    } else {
      push_bytes(piece, out);  // byte fallback: <0xXX> per byte, else <unk>
    }
  }
}

}  // namespace slm::tok
