// SentencePiece-style BPE (Llama 2, Mistral, Phi-3, llama2.c): start from UTF-8 characters and
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring token.
#include <queue>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace slm::tok {
namespace {

struct Symbol {
  int64_t prev, next;
  size_t begin, len;  // bytes of the fragment; len 0 once merged into its left neighbour
};

struct Bigram {
  float score;
  int64_t left, right;
  size_t len;  // combined length when queued; stale entries no longer match
};

// Highest score first; on ties the leftmost pair (as llama.cpp's llm_tokenizer_spm).
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void TokenizerImpl::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<Symbol> syms;
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_step(text, i);
    const auto idx = static_cast<int64_t>(syms.size());
    syms.push_back({idx - 1, idx + 1, i, n});
    i += n;
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int64_t left, int64_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = syms[static_cast<size_t>(left)];
    const Symbol& r = syms[static_cast<size_t>(right)];
    const int32_t id = lookup(text.substr(l.begin, l.len + r.len));
    if (id < 0) return;
    const float score = scores.empty() ? 0.0f : scores[static_cast<size_t>(id)];
    queue.push({score, left, right, l.len + r.len});
  };
  for (size_t i = 1; i < syms.size(); ++i) try_add(static_cast<int64_t>(i) - 1, static_cast<int64_t>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = syms[static_cast<size_t>(b.left)];
    Symbol& r = syms[static_cast<size_t>(b.right)];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int64_t i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
    const Symbol& s = syms[static_cast<size_t>(i)];
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
