// Tokenized datasets on disk: what `slm data prepare` writes and `slm train` reads.
// A dataset is a directory of flat token shards plus one JSON manifest; readers map the shards.
//
// Layout (version 1):
//   DIR/dataset.json   {"format": "slm-dataset", "version": 1,
//                       "token_bytes": 2 | 4,            // uint16 when vocab_size <= 65536
//                       "vocab_size": N, "eos_id": id,   // eos_id ends every document (-1: none)
//                       "tokenizer": "tokenizer.json",   // a copy, relative to DIR
//                       "splits": {"train": {"shards": ["train-00000.bin", ...],
//                                            "tokens": N, "documents": N},
//                                  "val":   {...}},
//                       "stats": {...}}                  // free-form summary of the run
//   DIR/<split>-NNNNN.bin  little-endian token ids, documents back to back, each followed by
//                          eos_id when eos_id >= 0. No header: the manifest is the only metadata.
// The manifest is written last (temp file + rename), so a directory without one is incomplete.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "core/status.h"

namespace slm {

// One split ("train" or "val") of a dataset: its shards seen as one token sequence.
class TokenSplit {
 public:
  int64_t n_tokens() const { return n_tokens_; }
  int64_t n_documents() const { return n_documents_; }
  // Copies tokens [offset, offset + n) (may span shards) into out. Error if out of range.
  Status read(int64_t offset, int64_t n, int32_t* out) const;

 private:
  friend class TokenDataset;
  struct Shard {
    std::shared_ptr<MappedFile> file;
    int64_t first = 0;  // global index of its first token
    int64_t n = 0;
  };
  std::vector<Shard> shards_;
  int token_bytes_ = 2;
  int64_t vocab_size_ = 0;  // read() rejects ids at or above it
  int64_t n_tokens_ = 0;
  int64_t n_documents_ = 0;
};

class TokenDataset {
 public:
  // Validates the manifest (every field, shard sizes a multiple of token_bytes and summing to
  // the stated token count, ids < vocab_size checked lazily by read()).
  static Expected<TokenDataset> open(const std::string& dir);

  int64_t vocab_size() const { return vocab_size_; }
  int32_t eos_id() const { return eos_id_; }
  const std::string& dir() const { return dir_; }
  std::string tokenizer_path() const;  // DIR/<tokenizer>
  // Error naming the split if the dataset has none of that name.
  Expected<const TokenSplit*> split(const std::string& name) const;

 private:
  std::string dir_, tokenizer_file_;
  int64_t vocab_size_ = 0;
  int32_t eos_id_ = -1;
  std::vector<std::pair<std::string, TokenSplit>> splits_;
};

// Writes a dataset directory as documents arrive: each split fills <split>-NNNNN.bin.tmp up to
// shard_tokens tokens (documents may straddle shards), then flushes and renames it into place.
// finish() writes dataset.json last. Nothing is held in memory beyond one write buffer.
class TokenDatasetWriter {
 public:
  struct Options {
    std::string dir;                           // created if missing
    int64_t vocab_size = 0;                    // picks token_bytes (2 when <= 65536)
    int32_t eos_id = -1;                       // appended after every document when >= 0
    int64_t shard_tokens = int64_t{1} << 26;   // tokens per shard file
    std::string tokenizer_file = "tokenizer.json";  // name in the manifest (caller copies it)
  };
  // Removes a stale dataset.json first, so an interrupted run never looks complete.
  static Expected<std::unique_ptr<TokenDatasetWriter>> create(const Options& o);
  ~TokenDatasetWriter();
  TokenDatasetWriter(const TokenDatasetWriter&) = delete;
  TokenDatasetWriter& operator=(const TokenDatasetWriter&) = delete;

  // Declares a split so the manifest lists it even if it stays empty.
  Status add_split(const std::string& split);
  // Appends one document to split ("train", "val", ...); ids must be in [0, vocab_size).
  Status add_document(const std::string& split, std::span<const int32_t> ids);
  // Closes the open shards, deletes shards of an earlier run in DIR that this manifest does not
  // list, and writes dataset.json with stats_json (a JSON object's text) as "stats".
  Status finish(const std::string& stats_json);

  int64_t n_tokens(const std::string& split) const;
  int64_t n_documents(const std::string& split) const;
  int64_t n_shards() const;  // shard files written so far, all splits
  int token_bytes() const { return token_bytes_; }

 private:
  TokenDatasetWriter() = default;
  struct SplitState {
    std::string name;
    std::vector<std::string> shards;  // completed shard file names
    int64_t tokens = 0, documents = 0;
    std::FILE* file = nullptr;        // the open .tmp shard, or null
    int64_t in_file = 0;              // tokens in the open shard
  };
  SplitState& state(const std::string& split);
  Status put(SplitState& s, const uint8_t* bytes, int64_t n_tok);
  Status close_shard(SplitState& s);

  Options o_;
  int token_bytes_ = 2;
  bool finished_ = false;
  std::vector<std::unique_ptr<SplitState>> splits_;
};

}  // namespace slm
