// Rank-ordered BPE (GPT-2 byte-level families, and tokenizer.json BPE models): split the text
// into pre-tokens, then merge the adjacent pair with the lowest merge rank until none applies.
#include <queue>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace slm::tok {
namespace {

struct Symbol {
  int64_t prev, next;
  size_t begin, len;  // bytes of the word; len 0 once merged into its left neighbour
};

struct Bigram {
  int32_t rank;
  int64_t left, right;
  size_t len;
};

// Lowest rank first; on ties the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void TokenizerImpl::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<Symbol> syms;
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
    syms.clear();
    for (size_t i = 0; i < word.size();) {
      const size_t n = utf8_step(word, i);
      const auto idx = static_cast<int64_t>(syms.size());
      syms.push_back({idx - 1, idx + 1, i, n});
      i += n;
    }
    if (syms.empty()) continue;
    syms.back().next = -1;

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    const std::string_view w(word);
    auto try_add = [&](int64_t left, int64_t right) {
      if (left < 0 || right < 0) return;
      const Symbol& l = syms[static_cast<size_t>(left)];
      const Symbol& r = syms[static_cast<size_t>(right)];
      key.assign(w.substr(l.begin, l.len));
      key += '\xff';
      key.append(w.substr(r.begin, r.len));
      auto it = merge_rank.find(key);
      if (it == merge_rank.end()) return;
      queue.push({it->second, left, right, l.len + r.len});
    };
    for (size_t i = 1; i < syms.size(); ++i) {
      try_add(static_cast<int64_t>(i) - 1, static_cast<int64_t>(i));
    }
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
