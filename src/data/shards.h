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
#include <memory>
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

}  // namespace slm
