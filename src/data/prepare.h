// `slm data prepare`: corpus files to a tokenized dataset (data/shards.h layout) with exact
// duplicate removal, a stable hash-based train/validation split, and streaming shard writes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/corpus.h"

namespace slm {

struct PrepareProgress {
  uint64_t bytes_read = 0, bytes_total = 0;  // over all listed files
  int64_t documents = 0, tokens = 0;
};

struct PrepareOptions {
  std::vector<std::string> inputs;  // files, directories, glob patterns
  std::string tokenizer;            // tokenizer.json, a model directory, or a GGUF
  std::string out_dir;
  double val_fraction = 0.01;       // share of documents in "val", chosen by document hash
  int64_t shard_tokens = int64_t{1} << 25;
  std::string field = "text";       // JSON lines field
  uint64_t seed = 0;                // changes which documents land in "val"
  bool dedup = true;
  int n_threads = 0;                // tokenization; 0 = all hardware threads
  std::function<void(const PrepareProgress&)> on_progress;
  std::function<void(const std::string&)> on_warning;
};

struct PrepareSummary {
  CorpusStats corpus;
  int64_t files_listed = 0;
  int64_t files_unsupported = 0;  // skipped in directory walks (unknown extension)
  int64_t duplicates = 0;
  int64_t documents_train = 0, documents_val = 0;
  int64_t tokens_train = 0, tokens_val = 0;  // including the end-of-document tokens
  int64_t shards = 0;
  int64_t vocab_size = 0;
  int32_t eos_id = -1;
  double seconds = 0;
};

Expected<PrepareSummary> prepare_dataset(const PrepareOptions& o);

// 128-bit hash of a document's text (MurmurHash3 x64-128 construction): exact duplicates are
// found by comparing hashes, so memory is 16 bytes per document, not its text.
struct Hash128 {
  uint64_t lo = 0, hi = 0;
  bool operator==(const Hash128&) const = default;
};
Hash128 hash128(std::string_view s);
// True when the document with this hash belongs to the validation split: a fixed function of
// the hash and seed, so the split does not depend on input order.
bool in_val_split(const Hash128& h, uint64_t seed, double val_fraction);

}  // namespace slm
