// Byte-level BPE trainer. Words are counted in parallel (one hash map per thread), then merges
// are learned over the unique words: pair counts are updated incrementally from the words that
// contain the merged pair, and a lazy max-heap picks the next pair (count desc, then pair ids asc).
#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "core/utf8.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

namespace slm {
namespace {

using ordered_json = nlohmann::ordered_json;

// The presets whose regexes Hugging Face's Rust and JS tokenizers both accept as written.
const char* const k_presets[] = {"gpt2", "llama3", "qwen2", "starcoder", "gpt-4o"};

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
using WordMap = std::unordered_map<std::string, int64_t, SvHash, std::equal_to<>>;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t pair_left(uint64_t k) { return static_cast<int32_t>(k >> 32); }
int32_t pair_right(uint64_t k) { return static_cast<int32_t>(k & 0xffffffffu); }

struct HeapEntry {
  int64_t count;
  uint64_t key;
};
// std::priority_queue pops the largest: higher count first, then the smaller pair.
struct HeapLess {
  bool operator()(const HeapEntry& x, const HeapEntry& y) const {
    if (x.count != y.count) return x.count < y.count;
    return x.key > y.key;
  }
};

struct Word {
  std::vector<int32_t> sym;
  int64_t count = 0;
};

// Replaces every left-to-right occurrence of (a, b) in w by id, recording the pair count
// changes (times the word's count). For "aaaa" and (a, a) this yields [A, A]: each replaced
// occurrence removes its own pair and its neighbours' pairs and adds the pairs with the new id.
template <class Emit>
void merge_word(Word& w, int32_t a, int32_t b, int32_t id, Emit&& emit) {
  std::vector<int32_t>& s = w.sym;
  const int64_t c = w.count;
  size_t out = 0;
  for (size_t i = 0; i < s.size();) {
    if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
      emit(pair_key(a, b), -c);
      if (out > 0) {
        emit(pair_key(s[out - 1], a), -c);
        emit(pair_key(s[out - 1], id), c);
      }
      if (i + 2 < s.size()) {
        emit(pair_key(b, s[i + 2]), -c);
        emit(pair_key(id, s[i + 2]), c);
      }
      s[out++] = id;
      i += 2;
    } else {
      s[out++] = s[i++];
    }
  }
  s.resize(out);
}

std::string byte_level_text(const std::string& bytes) {
  std::string t;
  for (unsigned char ch : bytes) t += tok::byte_to_unicode(ch);
  return t;
}

ordered_json byte_level_piece(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
          {"use_regex", use_regex}};
}

}  // namespace

struct BpeTrainer::Impl {
  BpeTrainerOptions o;
  std::vector<tok::SplitStep> steps;
  std::unique_ptr<ThreadPool> pool;
  std::vector<WordMap> maps;  // one per pool thread
  int64_t input_bytes = 0, n_words = 0, n_repaired = 0;
  double count_seconds = 0;

  void count_part(std::string_view part, int tid, int64_t* words) {
    WordMap& m = maps[static_cast<size_t>(tid)];
    for (std::string_view piece : tok::pre_tokenize(part, steps)) {
      auto it = m.find(piece);
      if (it == m.end()) {
        m.emplace(std::string(piece), 1);
      } else {
        ++it->second;
      }
      ++*words;
    }
  }

  // Cuts text at line boundaries into parts of about `target` bytes.
  static void split_parts(std::string_view text, size_t target, std::vector<std::string_view>& parts) {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = std::min(text.size(), pos + target);
      if (end < text.size()) {
        const size_t nl = text.find('\n', end);
        end = nl == std::string_view::npos ? text.size() : nl + 1;
      }
      parts.push_back(text.substr(pos, end - pos));
      pos = end;
    }
  }

  // Counts the parts in parallel, one word map per thread.
  void count_parts(const std::vector<std::string_view>& parts) {
    std::vector<int64_t> words(static_cast<size_t>(pool->n_threads()), 0);
    pool->parallel_for(static_cast<int64_t>(parts.size()), [&](int64_t b, int64_t e, int tid) {
      for (int64_t i = b; i < e; ++i) {
        count_part(parts[static_cast<size_t>(i)], tid, &words[static_cast<size_t>(tid)]);
      }
    });
    for (int64_t w : words) n_words += w;
  }
};

BpeTrainer::BpeTrainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTrainer::~BpeTrainer() = default;

Expected<std::unique_ptr<BpeTrainer>> BpeTrainer::create(const BpeTrainerOptions& o) {
  const std::string pre = o.pretokenizer == "gpt-2" ? "gpt2" : o.pretokenizer;
  if (std::find(std::begin(k_presets), std::end(k_presets), pre) == std::end(k_presets)) {
    std::string names;
    for (const char* p : k_presets) names += std::string(names.empty() ? "" : ", ") + p;
    return error("pre-tokenizer '%s' is not offered for training (choose one of: %s)",
                 o.pretokenizer.c_str(), names.c_str());
  }
  std::unordered_set<std::string> seen;
  for (const std::string& s : o.special_tokens) {
    if (s.empty()) return error("special tokens: an empty token");
    if (!utf8_is_valid(s)) return error("special token '%s' is not valid UTF-8", s.c_str());
    if (!seen.insert(s).second) return error("special token '%s' is listed twice", s.c_str());
  }
  const int64_t min_vocab = 256 + static_cast<int64_t>(o.special_tokens.size());
  if (o.vocab_size < min_vocab || o.vocab_size > (int64_t{1} << 24)) {
    return error("vocab size %lld: must be at least %lld (256 bytes + %zu special tokens) and at "
                 "most 16777216", (long long)o.vocab_size, (long long)min_vocab,
                 o.special_tokens.size());
  }
  if (o.min_frequency < 1) return error("min frequency must be at least 1");
  auto impl = std::make_unique<Impl>();
  impl->o = o;
  impl->o.pretokenizer = pre;
  bool known = false;
  SLM_ASSIGN_OR_RETURN(impl->steps, tok::preset_steps(pre == "gpt2" ? "gpt-2" : pre, &known));
  if (!known) return error("pre-tokenizer '%s': no such preset", pre.c_str());
  impl->pool = std::make_unique<ThreadPool>(o.n_threads);
  impl->maps.resize(static_cast<size_t>(impl->pool->n_threads()));
  return std::unique_ptr<BpeTrainer>(new BpeTrainer(std::move(impl)));
}

int64_t BpeTrainer::input_bytes() const { return impl_->input_bytes; }

void BpeTrainer::add_text(std::string_view text) {
  add_documents(std::span<const std::string_view>(&text, 1));
}

void BpeTrainer::add_documents(std::span<const std::string_view> docs) {
  const auto t0 = std::chrono::steady_clock::now();
  Impl& m = *impl_;
  size_t total = 0;
  for (std::string_view d : docs) total += d.size();
  const size_t target = std::max<size_t>(total / static_cast<size_t>(m.pool->n_threads()) + 1, 1 << 16);
  std::deque<std::string> repaired;  // deque: parts point into its strings
  std::vector<std::string_view> parts;
  for (std::string_view text : docs) {
    m.input_bytes += static_cast<int64_t>(text.size());
    if (!utf8_is_valid(text)) {
      repaired.push_back(utf8_sanitize(text));
      text = repaired.back();
      ++m.n_repaired;
    }
    // Special tokens are never learned from: cut their occurrences out (earliest, longest first).
    size_t pos = 0;
    while (pos < text.size()) {
      size_t hit = std::string_view::npos, len = 0;
      for (const std::string& s : m.o.special_tokens) {
        const size_t h = text.find(s, pos);
        if (h != std::string_view::npos && (h < hit || (h == hit && s.size() > len))) {
          hit = h, len = s.size();
        }
      }
      if (hit == std::string_view::npos) break;
      Impl::split_parts(text.substr(pos, hit - pos), target, parts);
      pos = hit + len;
    }
    Impl::split_parts(text.substr(pos), target, parts);
  }
  m.count_parts(parts);
  m.count_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Expected<BpeTrainResult> BpeTrainer::train() {
  Impl& m = *impl_;
  const auto t0 = std::chrono::steady_clock::now();
  BpeTrainResult r;
  r.input_bytes = m.input_bytes;
  r.n_words = m.n_words;
  r.n_repaired = m.n_repaired;
  r.count_seconds = m.count_seconds;

  // Unique words in byte order, so nothing depends on hashing or thread count.
  WordMap all = std::move(m.maps[0]);
  for (size_t t = 1; t < m.maps.size(); ++t) {
    for (auto& [w, c] : m.maps[t]) all[w] += c;
    WordMap().swap(m.maps[t]);
  }
  std::vector<std::pair<std::string, int64_t>> sorted(all.begin(), all.end());
  WordMap().swap(all);
  std::sort(sorted.begin(), sorted.end());
  if (sorted.empty()) return error("no text to train on: the corpus is empty");
  r.n_unique_words = static_cast<int64_t>(sorted.size());

  std::vector<Word> words(sorted.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    words[i].count = sorted[i].second;
    words[i].sym.reserve(sorted[i].first.size());
    for (unsigned char ch : sorted[i].first) words[i].sym.push_back(ch);
  }
  std::vector<std::pair<std::string, int64_t>>().swap(sorted);

  // Initial pair counts and, per pair, the words that contain it (ascending, no repeats).
  std::unordered_map<uint64_t, int64_t> counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (size_t wi = 0; wi < words.size(); ++wi) {
    const auto& s = words[wi].sym;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = pair_key(s[i], s[i + 1]);
      counts[k] += words[wi].count;
      auto& list = where[k];
      if (list.empty() || list.back() != static_cast<int32_t>(wi)) list.push_back(static_cast<int32_t>(wi));
    }
  }
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapLess> heap;
  {
    std::vector<HeapEntry> init;
    init.reserve(counts.size());
    for (auto& [k, c] : counts) init.push_back({c, k});
    heap = decltype(heap)(HeapLess(), std::move(init));
  }

  // Symbols 0..255 are the bytes; learned ones follow. A merge whose text already exists (two
  // different splits of the same string) reuses that symbol, as the Hugging Face trainer does.
  std::vector<std::string> sym_bytes(256);
  std::unordered_map<std::string, int32_t> sym_id;
  for (int b = 0; b < 256; ++b) {
    sym_bytes[static_cast<size_t>(b)] = std::string(1, static_cast<char>(b));
    sym_id[sym_bytes[static_cast<size_t>(b)]] = b;
  }
  const int64_t n_special = static_cast<int64_t>(m.o.special_tokens.size());
  const int64_t target_syms = m.o.vocab_size - n_special;
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::unordered_map<uint64_t, int64_t> delta;
  BpeTrainProgress prog;
  prog.merges_target = target_syms - 256;
  while (static_cast<int64_t>(sym_bytes.size()) < target_syms && !heap.empty()) {
    const HeapEntry top = heap.top();
    heap.pop();
    const int64_t cur = counts[top.key];
    if (cur != top.count) {  // stale: its count fell since it was pushed
      if (cur > 0) heap.push({cur, top.key});
      continue;
    }
    if (top.count < m.o.min_frequency) break;
    const int32_t a = pair_left(top.key), b = pair_right(top.key);
    std::string text = sym_bytes[static_cast<size_t>(a)] + sym_bytes[static_cast<size_t>(b)];
    int32_t id;
    if (auto it = sym_id.find(text); it != sym_id.end()) {
      id = it->second;
    } else {
      id = static_cast<int32_t>(sym_bytes.size());
      sym_id.emplace(text, id);
      sym_bytes.push_back(std::move(text));
    }
    merges.emplace_back(a, b);

    std::vector<int32_t> list = std::move(where[top.key]);
    where.erase(top.key);
    delta.clear();
    for (int32_t wi : list) {
      merge_word(words[static_cast<size_t>(wi)], a, b, id, [&](uint64_t k, int64_t d) {
        delta[k] += d;
        if (d > 0) {
          auto& l = where[k];
          if (l.empty() || l.back() != wi) l.push_back(wi);
        }
      });
    }
    // Words are visited in ascending order, so every `where` list stays ascending.
    for (auto& [k, d] : delta) {
      if (d == 0) continue;
      int64_t& c = counts[k];
      c += d;
      if (d > 0 && c > 0) heap.push({c, k});
    }
    counts.erase(top.key);
    prog.merges_done = static_cast<int64_t>(merges.size());
    if (m.o.on_progress && (merges.size() % 256 == 0)) m.o.on_progress(prog);
  }
  if (m.o.on_progress) m.o.on_progress(prog);
  r.n_merges = static_cast<int64_t>(merges.size());

  // tokenizer.json: byte tokens, learned tokens, then the special tokens as added tokens.
  ordered_json vocab = ordered_json::object();
  std::vector<std::string> sym_text(sym_bytes.size());
  for (size_t i = 0; i < sym_bytes.size(); ++i) {
    sym_text[i] = byte_level_text(sym_bytes[i]);
    vocab[sym_text[i]] = static_cast<int64_t>(i);
  }
  ordered_json added = ordered_json::array();
  int64_t next_id = static_cast<int64_t>(sym_bytes.size());
  for (const std::string& s : m.o.special_tokens) {
    if (vocab.contains(s)) {
      return error("special token '%s' has the same text as a learned token", s.c_str());
    }
    vocab[s] = next_id;
    added.push_back({{"id", next_id}, {"content", s}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
    ++next_id;
  }
  r.vocab_size = next_id;
  ordered_json merge_list = ordered_json::array();
  for (auto [a, b] : merges) {
    merge_list.push_back(sym_text[static_cast<size_t>(a)] + " " + sym_text[static_cast<size_t>(b)]);
  }
  ordered_json pre;
  if (m.o.pretokenizer == "gpt2") {
    pre = byte_level_piece(true);
  } else {
    ordered_json seq = ordered_json::array();
    for (const tok::SplitStep& st : m.steps) {
      seq.push_back({{"type", "Split"},
                     {"pattern", {{"Regex", st.re->pattern()}}},
                     {"behavior", "Isolated"},
                     {"invert", false}});
    }
    seq.push_back(byte_level_piece(false));
    pre = {{"type", "Sequence"}, {"pretokenizers", seq}};
  }
  ordered_json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre},
      {"post_processor", byte_level_piece(true)},
      {"decoder", byte_level_piece(true)},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merge_list}}}};
  r.tokenizer_json = root.dump(1) + "\n";

  ordered_json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                         {"add_bos_token", false},
                         {"add_eos_token", false},
                         {"clean_up_tokenization_spaces", false},
                         {"model_max_length", 1000000000}};
  if (!m.o.special_tokens.empty()) {
    config["bos_token"] = m.o.special_tokens[0];
    config["eos_token"] = m.o.special_tokens[0];
  }
  r.tokenizer_config_json = config.dump(2) + "\n";
  r.merge_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace slm
