// The pair-merge loop shared by SentencePiece-style and rank-ordered BPE: split a word into
// UTF-8 symbols, then merge the best adjacent pair (leftmost on ties) until none applies.
#pragma once

#include <cstdint>
#include <queue>
#include <string_view>
#include <vector>

#include "tokenizer/unicode.h"

namespace slm::tok {

struct MergeSymbol {
  int64_t prev, next;
  size_t begin, len;  // bytes of the word; len 0 once merged into its left neighbour
};

// Merges symbols of `word` in place. pair_priority(left, right, &priority) returns false when
// the two adjacent pieces (string_views into word) do not merge, else sets the priority:
// higher merges first (SPM: token score; BPE: minus the merge rank). Afterwards the surviving
// symbols are linked through next from index 0 (next == -1 ends). Empty word: syms is empty.
template <class PairPriority>
void merge_symbols(std::string_view word, std::vector<MergeSymbol>& syms,
                   PairPriority&& pair_priority) {
  syms.clear();
  for (size_t i = 0; i < word.size();) {
    const size_t n = utf8_step(word, i);
    const auto idx = static_cast<int64_t>(syms.size());
    syms.push_back({idx - 1, idx + 1, i, n});
    i += n;
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Bigram {
    double priority;
    int64_t left, right;
    size_t len;  // combined length when queued; stale entries no longer match
  };
  struct Order {  // highest priority first; on ties the leftmost pair
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.priority < b.priority || (a.priority == b.priority && a.left > b.left);
    }
  };
  std::priority_queue<Bigram, std::vector<Bigram>, Order> queue;
  auto try_add = [&](int64_t left, int64_t right) {
    if (left < 0 || right < 0) return;
    const MergeSymbol& l = syms[static_cast<size_t>(left)];
    const MergeSymbol& r = syms[static_cast<size_t>(right)];
    double priority = 0;
    if (pair_priority(word.substr(l.begin, l.len), word.substr(r.begin, r.len), &priority)) {
      queue.push({priority, left, right, l.len + r.len});
    }
  };
  for (size_t i = 1; i < syms.size(); ++i)
    try_add(static_cast<int64_t>(i) - 1, static_cast<int64_t>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    MergeSymbol& l = syms[static_cast<size_t>(b.left)];
    MergeSymbol& r = syms[static_cast<size_t>(b.right)];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
}

}  // namespace slm::tok
