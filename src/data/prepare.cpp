// Dataset preparation: documents stream from the corpus walker, are de-duplicated and assigned
// to a split by hash on the reading thread, tokenized in parallel batches, and written in input
// order by TokenDatasetWriter (so the result is the same for any thread count).
#include "data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "app/model_files.h"
#include "core/mmap.h"
#include "core/thread_pool.h"
#include "data/shards.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

namespace fs = std::filesystem;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.lo ^ (h.hi * 31)); }
};

// The tokenizer to encode with, plus the files to copy beside the shards.
struct LoadedTokenizer {
  std::unique_ptr<Tokenizer> tok;
  std::string json_path, config_path;  // tokenizer.json and tokenizer_config.json sources
  std::string gguf_path;               // or a GGUF holding the vocabulary
};

Expected<LoadedTokenizer> load_tokenizer(const std::string& path) {
  LoadedTokenizer lt;
  std::error_code ec;
  if (fs::is_regular_file(path, ec) && fs::path(path).extension() == ".json") {
    SLM_ASSIGN_OR_RETURN(std::string text, read_file(path, uint64_t{512} << 20));
    const std::string config = (fs::path(path).parent_path() / "tokenizer_config.json").string();
    std::string config_text;
    if (fs::is_regular_file(config, ec)) {
      SLM_ASSIGN_OR_RETURN(config_text, read_file(config, uint64_t{64} << 20));
      lt.config_path = config;
    }
    auto tok = Tokenizer::from_hf_json(text, config_text);
    if (!tok.ok()) return tok.status().with_context(path);
    lt.tok = std::move(tok).value();
    lt.json_path = path;
    return lt;
  }
  auto meta = load_model_meta(path, "");
  if (!meta.ok()) return meta.status();
  if (!meta->tokenizer) return error("%s: has no tokenizer", path.c_str());
  lt.tok = std::move(meta->tokenizer);
  if (meta->format == ModelFormat::hf_dir) {
    lt.json_path = path + "/tokenizer.json";
    if (fs::is_regular_file(path + "/tokenizer_config.json", ec)) {
      lt.config_path = path + "/tokenizer_config.json";
    }
  } else if (meta->format == ModelFormat::gguf) {
    lt.gguf_path = fs::absolute(path, ec).string();
  } else {
    return error("%s: llama2.c tokenizers cannot be used for datasets (use a tokenizer.json)",
                 path.c_str());
  }
  return lt;
}

// Copies the tokenizer into the dataset directory; returns its name for the manifest.
Expected<std::string> copy_tokenizer(const LoadedTokenizer& lt, const std::string& dir) {
  if (!lt.gguf_path.empty()) {
    // A GGUF may be a whole model: link to it rather than copy gigabytes.
    const std::string link = dir + "/tokenizer.gguf";
    ::unlink(link.c_str());
    if (::symlink(lt.gguf_path.c_str(), link.c_str()) != 0) {
      return error("%s: cannot link the tokenizer GGUF: %s", link.c_str(), std::strerror(errno));
    }
    return std::string("tokenizer.gguf");
  }
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(lt.json_path, uint64_t{512} << 20));
  SLM_TRY(write_file_atomic(dir + "/tokenizer.json", text));
  if (!lt.config_path.empty()) {
    SLM_ASSIGN_OR_RETURN(std::string config, read_file(lt.config_path, uint64_t{64} << 20));
    SLM_TRY(write_file_atomic(dir + "/tokenizer_config.json", config));
  }
  return std::string("tokenizer.json");
}

struct PendingDoc {
  std::string text;
  bool val = false;
  std::vector<int32_t> ids;
};

}  // namespace

Hash128 hash128(std::string_view s) {
  const uint64_t c1 = 0x87c37b91114253d5ull, c2 = 0x4cf5ad432745937full;
  const size_t n = s.size();
  uint64_t h1 = 0x9e3779b97f4a7c15ull, h2 = 0x6a09e667f3bcc909ull;
  const char* p = s.data();
  size_t i = 0;
  auto mix = [&](uint64_t k1, uint64_t k2) {
    k1 *= c1, k1 = rotl(k1, 31), k1 *= c2, h1 ^= k1;
    h1 = rotl(h1, 27), h1 += h2, h1 = h1 * 5 + 0x52dce729;
    k2 *= c2, k2 = rotl(k2, 33), k2 *= c1, h2 ^= k2;
    h2 = rotl(h2, 31), h2 += h1, h2 = h2 * 5 + 0x38495ab5;
  };
  for (; i + 16 <= n; i += 16) {
    uint64_t k1, k2;
    std::memcpy(&k1, p + i, 8);
    std::memcpy(&k2, p + i + 8, 8);
    mix(k1, k2);
  }
  if (i < n) {  // zero-padded tail; the length is mixed in below, so padding cannot collide
    char tail[16] = {};
    std::memcpy(tail, p + i, n - i);
    uint64_t k1, k2;
    std::memcpy(&k1, tail, 8);
    std::memcpy(&k2, tail + 8, 8);
    mix(k1, k2);
  }
  h1 ^= n, h2 ^= n;
  h1 += h2, h2 += h1;
  h1 = fmix64(h1), h2 = fmix64(h2);
  h1 += h2, h2 += h1;
  return {h1, h2};
}

bool in_val_split(const Hash128& h, uint64_t seed, double val_fraction) {
  if (val_fraction <= 0) return false;
  const uint64_t x = fmix64(h.hi ^ fmix64(seed + 0x9e3779b97f4a7c15ull));
  const double u = static_cast<double>(x >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  return u < val_fraction;
}

Expected<PrepareSummary> prepare_dataset(const PrepareOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) {
    return error("validation fraction %g: must be in [0, 1)", o.val_fraction);
  }
  if (o.shard_tokens <= 0) return error("shard size must be a positive number of tokens");
  if (o.inputs.empty()) return error("no inputs given");
  PrepareSummary sum;
  SLM_ASSIGN_OR_RETURN(std::vector<CorpusFile> files,
                       list_corpus_files(o.inputs, &sum.files_unsupported));
  if (files.empty()) {
    return error("no input files found (directories are searched for .txt .md .html .htm "
                 ".jsonl .json files)");
  }
  sum.files_listed = static_cast<int64_t>(files.size());
  SLM_ASSIGN_OR_RETURN(LoadedTokenizer lt, load_tokenizer(o.tokenizer));
  const Tokenizer& tok = *lt.tok;
  sum.vocab_size = tok.vocab_size();
  sum.eos_id = tok.eos_id() >= 0 ? tok.eos_id() : tok.eot_id();
  if (sum.eos_id < 0 && o.on_warning) {
    o.on_warning("the tokenizer has no end-of-text token: documents are not separated");
  }

  // The old manifest goes first, so the directory never pairs it with new files.
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return error("%s: cannot create directory: %s", o.out_dir.c_str(), ec.message().c_str());
  const std::string manifest = o.out_dir + "/dataset.json";
  if (::unlink(manifest.c_str()) != 0 && errno != ENOENT) {
    return error("%s: cannot remove the old manifest: %s", manifest.c_str(), std::strerror(errno));
  }
  TokenDatasetWriter::Options wo;
  wo.dir = o.out_dir;
  wo.vocab_size = sum.vocab_size;
  wo.eos_id = sum.eos_id;
  wo.shard_tokens = o.shard_tokens;
  SLM_ASSIGN_OR_RETURN(wo.tokenizer_file, copy_tokenizer(lt, o.out_dir));
  SLM_ASSIGN_OR_RETURN(auto writer, TokenDatasetWriter::create(wo));
  SLM_TRY(writer->add_split("train"));
  SLM_TRY(writer->add_split("val"));

  ThreadPool pool(o.n_threads);
  std::unordered_set<Hash128, Hash128Hasher> seen;
  std::vector<PendingDoc> batch;
  size_t batch_bytes = 0;
  // Documents are encoded in parallel, one per task; a batch must hold several of the largest
  // (16 MB text parts) to keep every thread busy.
  const size_t k_batch_bytes = size_t{16 << 20} * static_cast<size_t>(std::max(2, pool.n_threads()));
  const size_t k_batch_docs = 4096;
  PrepareProgress prog;
  for (const CorpusFile& f : files) prog.bytes_total += f.size;

  auto flush = [&]() -> Status {
    pool.parallel_for(static_cast<int64_t>(batch.size()), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        PendingDoc& d = batch[static_cast<size_t>(i)];
        d.ids = tok.encode(d.text, false, false);
      }
    });
    for (PendingDoc& d : batch) {
      SLM_TRY(writer->add_document(d.val ? "val" : "train", d.ids));
      prog.tokens += static_cast<int64_t>(d.ids.size()) + (sum.eos_id >= 0 ? 1 : 0);
    }
    batch.clear();
    batch_bytes = 0;
    return Status();
  };

  auto on_doc = [&](const CorpusDoc& d) -> Status {
    const Hash128 h = hash128(d.text);
    if (o.dedup && !seen.insert(h).second) {
      ++sum.duplicates;
      return Status();
    }
    PendingDoc pd;
    pd.text.assign(d.text);
    pd.val = in_val_split(h, o.seed, o.val_fraction);
    batch_bytes += pd.text.size();
    batch.push_back(std::move(pd));
    ++prog.documents;
    if (batch_bytes >= k_batch_bytes || batch.size() >= k_batch_docs) {
      SLM_TRY(flush());
      prog.bytes_read = sum.corpus.bytes_read;
      if (o.on_progress) o.on_progress(prog);
    }
    return Status();
  };
  CorpusOptions co;
  co.field = o.field;
  SLM_TRY(corpus_for_each(files, co, on_doc, &sum.corpus, o.on_warning));
  SLM_TRY(flush());
  prog.bytes_read = sum.corpus.bytes_read;
  if (o.on_progress) o.on_progress(prog);

  sum.documents_train = writer->n_documents("train");
  sum.documents_val = writer->n_documents("val");
  if (sum.documents_train + sum.documents_val == 0) {
    const CorpusStats& c = sum.corpus;
    return error("the corpus is empty: no documents left (%lld files read, %lld binary skipped, "
                 "%lld unreadable, %lld empty documents, %lld bad JSON lines, %lld duplicates)",
                 (long long)c.files_read, (long long)c.files_binary, (long long)c.files_failed,
                 (long long)c.empty_documents, (long long)c.bad_json_lines,
                 (long long)sum.duplicates);
  }
  if (o.val_fraction > 0 && sum.documents_val == 0 && o.on_warning) {
    o.on_warning("the validation split is empty: " + std::to_string(sum.documents_train) +
                 " documents in all (raise --val-fraction, or use smaller documents)");
  }
  sum.tokens_train = writer->n_tokens("train");
  sum.tokens_val = writer->n_tokens("val");
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const CorpusStats& c = sum.corpus;
  nlohmann::json stats = {
      {"files_read", c.files_read},           {"files_binary_skipped", c.files_binary},
      {"files_failed", c.files_failed},       {"files_unsupported", sum.files_unsupported},
      {"bytes_read", c.bytes_read},           {"documents_read", c.documents},
      {"documents_empty", c.empty_documents}, {"documents_repaired_utf8", c.repaired_documents},
      {"json_lines_bad", c.bad_json_lines},   {"duplicates_removed", sum.duplicates},
      {"val_fraction", o.val_fraction},       {"seed", o.seed},
      {"shard_tokens", o.shard_tokens}};
  SLM_TRY(writer->finish(stats.dump()));
  sum.shards = writer->n_shards();
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace slm
