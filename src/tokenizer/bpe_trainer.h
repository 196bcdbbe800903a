// Byte-level BPE training: pre-tokenize text with a family preset, count words, learn merges
// with incremental pair counts, and write a Hugging Face tokenizer.json (+ tokenizer_config.json).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace slm {

struct BpeTrainProgress {
  int64_t merges_done = 0;
  int64_t merges_target = 0;  // upper bound: vocab_size - 256 - specials
};

struct BpeTrainerOptions {
  // Final vocabulary size: 256 byte tokens + learned tokens + special tokens.
  int64_t vocab_size = 8192;
  // Pairs seen fewer times than this are never merged (training may stop early).
  int64_t min_frequency = 2;
  // Pre-tokenizer preset: "gpt2" (GPT-2 regex) or a family name known to
  // tok::preset_steps ("llama3", "qwen2", "starcoder", ...).
  std::string pretokenizer = "llama3";
  // Added as special tokens after the learned ones; the first is the end-of-text token.
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  int n_threads = 0;  // word counting; 0 = all hardware threads
  std::function<void(const BpeTrainProgress&)> on_progress;
};

struct BpeTrainResult {
  std::string tokenizer_json;         // Hugging Face tokenizer.json text
  std::string tokenizer_config_json;  // names bos/eos (the first special token)
  int64_t vocab_size = 0;             // may be below the target when the corpus runs out
  int64_t n_merges = 0;
  int64_t input_bytes = 0;
  int64_t n_words = 0;         // pre-tokenized pieces counted
  int64_t n_unique_words = 0;
  int64_t n_repaired = 0;      // add_text calls whose invalid UTF-8 became U+FFFD
  double count_seconds = 0, merge_seconds = 0;
};

class BpeTrainer {
 public:
  // Checks the options (vocab room for 256 bytes + specials, a known preset, distinct
  // non-empty special tokens).
  static Expected<std::unique_ptr<BpeTrainer>> create(const BpeTrainerOptions& o);
  ~BpeTrainer();
  BpeTrainer(const BpeTrainer&) = delete;
  BpeTrainer& operator=(const BpeTrainer&) = delete;

  // Counts the words of one piece of text (documents or chunks cut at line boundaries; feed as
  // much as you like, memory grows with distinct words only). Special-token strings in the text
  // are cut out. Invalid UTF-8 is repaired to U+FFFD first.
  void add_text(std::string_view text);
  // The same for many documents at once (better parallelism for short documents).
  void add_documents(std::span<const std::string_view> docs);
  int64_t input_bytes() const;

  // Learns the merges. Deterministic: the same counted words give a byte-identical result for
  // any thread count and input order within each add_text call's word multiset.
  Expected<BpeTrainResult> train();

 private:
  struct Impl;
  explicit BpeTrainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm
