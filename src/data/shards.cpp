// Token datasets on disk: the manifest reader (every field validated, shards mapped) and the
// streaming writer that `slm data prepare` uses (temp shard + rename, manifest last).
#include "data/shards.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/reader.h"

namespace slm {
namespace {

using nlohmann::json;

constexpr int k_max_depth = 32;
constexpr uint64_t k_max_manifest_bytes = uint64_t{64} << 20;
constexpr int64_t k_max_vocab = int64_t{1} << 31;
constexpr size_t k_max_shards = size_t{1} << 20;

// Reads an integer field in [lo, hi]; `where` names the field in the error.
Status get_int(const json& obj, const char* key, int64_t lo, int64_t hi, const std::string& where,
               int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return error("%s.%s: missing", where.c_str(), key);
  if (!it->is_number_integer()) return error("%s.%s: not an integer", where.c_str(), key);
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return error("%s.%s: out of range", where.c_str(), key);
  }
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) {
    return error("%s.%s: %lld is outside [%lld, %lld]", where.c_str(), key, (long long)v,
                 (long long)lo, (long long)hi);
  }
  *out = v;
  return Status();
}

// A shard or split name: one path component of safe characters, so a manifest can never point
// outside its directory.
bool is_plain_name(const std::string& s) {
  if (s.empty() || s.size() > 255 || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// A relative path without ".." components (the tokenizer copy may sit in a subfolder).
bool is_relative_inside(const std::string& s) {
  if (s.empty() || s.size() > 4096 || s[0] == '/' || s.find('\0') != std::string::npos) {
    return false;
  }
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find('/', pos);
    if (end == std::string::npos) end = s.size();
    const std::string_view part(s.data() + pos, end - pos);
    if (part == "..") return false;
    pos = end + 1;
  }
  return true;
}

uint32_t load_id(const uint8_t* p, int token_bytes) {
  if (token_bytes == 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return error("%s: cannot open directory: %s", dir.c_str(), std::strerror(errno));
  ::fsync(fd);  // best effort: some file systems refuse fsync on directories
  ::close(fd);
  return Status();
}

std::string shard_name(const std::string& split, size_t index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "-%05zu.bin", index);
  return split + buf;
}

}  // namespace

// ---- reading ----

Status TokenSplit::read(int64_t offset, int64_t n, int32_t* out) const {
  if (offset < 0 || n < 0 || offset > n_tokens_ || n > n_tokens_ - offset) {
    return error("token range [%lld, +%lld) is outside the split's %lld tokens", (long long)offset,
                 (long long)n, (long long)n_tokens_);
  }
  if (n == 0) return Status();
  if (out == nullptr) return error("read: null output buffer");
  // The last shard whose first token is <= offset (empty shards are skipped by the loop).
  auto it = std::upper_bound(shards_.begin(), shards_.end(), offset,
                             [](int64_t v, const Shard& s) { return v < s.first; });
  size_t si = static_cast<size_t>(it - shards_.begin()) - 1;
  int64_t done = 0;
  while (done < n) {
    const Shard& s = shards_[si];
    const int64_t local = offset + done - s.first;
    const int64_t take = std::min(n - done, s.n - local);
    const uint8_t* p = s.file->data() + static_cast<uint64_t>(local) * token_bytes_;
    for (int64_t i = 0; i < take; ++i) {
      const uint32_t id = load_id(p + i * token_bytes_, token_bytes_);
      if (static_cast<int64_t>(id) >= vocab_size_) {
        return error("%s: token %lld is id %u, not below vocab_size %lld", s.file->path().c_str(),
                     (long long)(local + i), id, (long long)vocab_size_);
      }
      out[done + i] = static_cast<int32_t>(id);
    }
    done += take;
    ++si;
  }
  return Status();
}

Expected<TokenDataset> TokenDataset::open(const std::string& dir) {
  const std::string path = dir + "/dataset.json";
  auto text = read_file(path, k_max_manifest_bytes);
  if (!text.ok()) {
    return error("%s (no manifest: not a dataset directory, or `slm data prepare` did not finish)",
                 text.message().c_str());
  }
  auto fail = [&](const Status& s) { return s.with_context(path); };
  if (Status s = check_json_depth(*text, k_max_depth); !s.ok()) return fail(s);
  const json root = json::parse(text->begin(), text->end(), nullptr, false);
  if (root.is_discarded() || !root.is_object()) return fail(error("not a JSON object"));
  if (root.value("format", json()) != json("slm-dataset")) {
    return fail(error("format: expected \"slm-dataset\""));
  }
  int64_t version = 0, token_bytes = 0, vocab = 0, eos = 0;
  if (Status s = get_int(root, "version", 1, 1, "manifest", &version); !s.ok()) return fail(s);
  if (Status s = get_int(root, "token_bytes", 2, 4, "manifest", &token_bytes); !s.ok()) {
    return fail(s);
  }
  if (token_bytes == 3) return fail(error("manifest.token_bytes: must be 2 or 4, not 3"));
  const int64_t max_vocab = token_bytes == 2 ? 65536 : k_max_vocab;
  if (Status s = get_int(root, "vocab_size", 1, max_vocab, "manifest", &vocab); !s.ok()) {
    return fail(s);
  }
  if (Status s = get_int(root, "eos_id", -1, vocab - 1, "manifest", &eos); !s.ok()) return fail(s);
  auto tk = root.find("tokenizer");
  if (tk == root.end() || !tk->is_string() || !is_relative_inside(tk->get<std::string>())) {
    return fail(error("manifest.tokenizer: missing or not a relative path inside the dataset"));
  }
  auto sp = root.find("splits");
  if (sp == root.end() || !sp->is_object() || sp->empty()) {
    return fail(error("manifest.splits: missing or empty"));
  }

  TokenDataset ds;
  ds.dir_ = dir;
  ds.tokenizer_file_ = tk->get<std::string>();
  ds.vocab_size_ = vocab;
  ds.eos_id_ = static_cast<int32_t>(eos);
  for (auto it = sp->begin(); it != sp->end(); ++it) {
    const std::string where = "splits." + it.key();
    if (!is_plain_name(it.key())) return fail(error("%s: bad split name", where.c_str()));
    const json& sj = it.value();
    if (!sj.is_object()) return fail(error("%s: not an object", where.c_str()));
    TokenSplit split;
    split.token_bytes_ = static_cast<int>(token_bytes);
    split.vocab_size_ = vocab;
    int64_t tokens = 0, docs = 0;
    if (Status s = get_int(sj, "tokens", 0, INT64_MAX, where, &tokens); !s.ok()) return fail(s);
    if (Status s = get_int(sj, "documents", 0, INT64_MAX, where, &docs); !s.ok()) return fail(s);
    auto sh = sj.find("shards");
    if (sh == sj.end() || !sh->is_array()) return fail(error("%s.shards: missing", where.c_str()));
    if (sh->size() > k_max_shards) return fail(error("%s.shards: too many", where.c_str()));
    uint64_t total = 0;
    for (size_t i = 0; i < sh->size(); ++i) {
      const json& name = (*sh)[i];
      if (!name.is_string() || !is_plain_name(name.get<std::string>())) {
        return fail(error("%s.shards[%zu]: not a plain file name", where.c_str(), i));
      }
      auto file = MappedFile::open(dir + "/" + name.get<std::string>());
      if (!file.ok()) return fail(error("%s.shards[%zu]: %s", where.c_str(), i, file.message().c_str()));
      const uint64_t bytes = (*file)->size();
      if (bytes % static_cast<uint64_t>(token_bytes) != 0) {
        return fail(error("%s.shards[%zu] (%s): %llu bytes is not a multiple of token_bytes %lld",
                          where.c_str(), i, name.get<std::string>().c_str(),
                          (unsigned long long)bytes, (long long)token_bytes));
      }
      TokenSplit::Shard shard;
      shard.file = std::move(*file);
      shard.first = static_cast<int64_t>(total);
      shard.n = static_cast<int64_t>(bytes / static_cast<uint64_t>(token_bytes));
      if (!checked_add(total, static_cast<uint64_t>(shard.n), &total) ||
          total > static_cast<uint64_t>(INT64_MAX)) {
        return fail(error("%s: token count overflows", where.c_str()));
      }
      if (shard.n > 0) split.shards_.push_back(std::move(shard));
    }
    if (total != static_cast<uint64_t>(tokens)) {
      return fail(error("%s: shards hold %llu tokens but tokens says %lld", where.c_str(),
                        (unsigned long long)total, (long long)tokens));
    }
    if (docs > tokens) {
      return fail(error("%s: %lld documents cannot fit in %lld tokens", where.c_str(),
                        (long long)docs, (long long)tokens));
    }
    split.n_tokens_ = tokens;
    split.n_documents_ = docs;
    ds.splits_.emplace_back(it.key(), std::move(split));
  }
  return ds;
}

std::string TokenDataset::tokenizer_path() const { return dir_ + "/" + tokenizer_file_; }

Expected<const TokenSplit*> TokenDataset::split(const std::string& name) const {
  for (const auto& [n, s] : splits_) {
    if (n == name) return &s;
  }
  std::string have;
  for (const auto& [n, s] : splits_) have += (have.empty() ? "" : ", ") + n;
  return error("%s: no split '%s' (has: %s)", dir_.c_str(), name.c_str(), have.c_str());
}

// ---- writing ----

Expected<std::unique_ptr<TokenDatasetWriter>> TokenDatasetWriter::create(const Options& o) {
  if (o.vocab_size <= 0 || o.vocab_size > k_max_vocab) {
    return error("dataset writer: vocab_size %lld out of range", (long long)o.vocab_size);
  }
  if (o.eos_id < -1 || o.eos_id >= o.vocab_size) {
    return error("dataset writer: eos_id %d is not below vocab_size", o.eos_id);
  }
  if (o.shard_tokens <= 0) return error("dataset writer: shard_tokens must be positive");
  if (!is_relative_inside(o.tokenizer_file)) {
    return error("dataset writer: tokenizer file '%s' is not a relative path",
                 o.tokenizer_file.c_str());
  }
  std::error_code ec;
  std::filesystem::create_directories(o.dir, ec);
  if (ec) return error("%s: cannot create directory: %s", o.dir.c_str(), ec.message().c_str());
  if (!std::filesystem::is_directory(o.dir, ec)) {
    return error("%s: not a directory", o.dir.c_str());
  }
  const std::string manifest = o.dir + "/dataset.json";
  if (::unlink(manifest.c_str()) != 0 && errno != ENOENT) {
    return error("%s: cannot remove the old manifest: %s", manifest.c_str(), std::strerror(errno));
  }
  std::unique_ptr<TokenDatasetWriter> w(new TokenDatasetWriter());
  w->o_ = o;
  w->token_bytes_ = o.vocab_size <= 65536 ? 2 : 4;
  return w;
}

TokenDatasetWriter::~TokenDatasetWriter() {
  // An abandoned run leaves no half-written shard behind under a final name.
  for (auto& s : splits_) {
    if (s->file == nullptr) continue;
    std::fclose(s->file);
    const std::string tmp = o_.dir + "/" + shard_name(s->name, s->shards.size()) + ".tmp";
    ::unlink(tmp.c_str());
  }
}

TokenDatasetWriter::SplitState& TokenDatasetWriter::state(const std::string& split) {
  for (auto& s : splits_) {
    if (s->name == split) return *s;
  }
  splits_.push_back(std::make_unique<SplitState>());
  splits_.back()->name = split;
  return *splits_.back();
}

Status TokenDatasetWriter::add_split(const std::string& split) {
  if (!is_plain_name(split)) return error("dataset writer: bad split name '%s'", split.c_str());
  (void)state(split);
  return Status();
}

Status TokenDatasetWriter::put(SplitState& s, const uint8_t* bytes, int64_t n_tok) {
  while (n_tok > 0) {
    if (s.file == nullptr) {
      const std::string tmp = o_.dir + "/" + shard_name(s.name, s.shards.size()) + ".tmp";
      s.file = std::fopen(tmp.c_str(), "wb");
      if (s.file == nullptr) return error("%s: cannot create: %s", tmp.c_str(), std::strerror(errno));
      s.in_file = 0;
    }
    const int64_t take = std::min(n_tok, o_.shard_tokens - s.in_file);
    const size_t nbytes = static_cast<size_t>(take) * static_cast<size_t>(token_bytes_);
    if (std::fwrite(bytes, 1, nbytes, s.file) != nbytes) {
      return error("%s: write failed: %s", shard_name(s.name, s.shards.size()).c_str(),
                   std::strerror(errno));
    }
    bytes += nbytes;
    n_tok -= take;
    s.in_file += take;
    if (s.in_file == o_.shard_tokens) SLM_TRY(close_shard(s));
  }
  return Status();
}

Status TokenDatasetWriter::close_shard(SplitState& s) {
  if (s.file == nullptr) return Status();
  const std::string name = shard_name(s.name, s.shards.size());
  const std::string final_path = o_.dir + "/" + name, tmp = final_path + ".tmp";
  std::FILE* f = s.file;
  s.file = nullptr;
  const bool ok = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  const int e = errno;
  if (std::fclose(f) != 0 || !ok) {
    return error("%s: flush failed: %s", tmp.c_str(), std::strerror(ok ? errno : e));
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return error("%s: rename failed: %s", final_path.c_str(), std::strerror(errno));
  }
  s.shards.push_back(name);
  s.in_file = 0;
  return Status();
}

Status TokenDatasetWriter::add_document(const std::string& split, std::span<const int32_t> ids) {
  if (finished_) return error("dataset writer: add_document after finish");
  if (!is_plain_name(split)) return error("dataset writer: bad split name '%s'", split.c_str());
  SplitState& s = state(split);
  // Converted in blocks so a long document never needs a second full-size copy.
  uint8_t buf[8192];
  const int64_t per_block = static_cast<int64_t>(sizeof(buf)) / token_bytes_;
  const int64_t total = static_cast<int64_t>(ids.size()) + (o_.eos_id >= 0 ? 1 : 0);
  for (int64_t i = 0; i < total; i += per_block) {
    const int64_t n = std::min(per_block, total - i);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t j = i + k;
      const int32_t id = j < static_cast<int64_t>(ids.size()) ? ids[static_cast<size_t>(j)] : o_.eos_id;
      if (id < 0 || id >= o_.vocab_size) {
        return error("dataset writer: token id %d is outside [0, %lld)", id,
                     (long long)o_.vocab_size);
      }
      if (token_bytes_ == 2) {
        const uint16_t v = static_cast<uint16_t>(id);
        std::memcpy(buf + k * 2, &v, 2);
      } else {
        const uint32_t v = static_cast<uint32_t>(id);
        std::memcpy(buf + k * 4, &v, 4);
      }
    }
    SLM_TRY(put(s, buf, n));
  }
  s.tokens += total;
  s.documents += 1;
  return Status();
}

Status TokenDatasetWriter::finish(const std::string& stats_json) {
  if (finished_) return error("dataset writer: finish called twice");
  json stats = json::object();
  if (!stats_json.empty()) {
    stats = json::parse(stats_json, nullptr, false);
    if (stats.is_discarded() || !stats.is_object()) {
      return error("dataset writer: stats is not a JSON object");
    }
  }
  for (auto& s : splits_) SLM_TRY(close_shard(*s));
  finished_ = true;

  // Shards of an earlier run into the same directory would otherwise linger unlisted.
  std::set<std::string> listed;
  for (auto& s : splits_) listed.insert(s->shards.begin(), s->shards.end());
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(o_.dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool shard_like = name.size() > 10 &&
                            (name.ends_with(".bin") || name.ends_with(".bin.tmp")) &&
                            name.find('-') != std::string::npos;
    if (shard_like && listed.count(name) == 0) {
      const size_t dash = name.rfind('-');
      const std::string digits = name.substr(dash + 1, 5);
      if (digits.size() == 5 && std::all_of(digits.begin(), digits.end(), ::isdigit)) {
        std::filesystem::remove(entry.path(), ec);
      }
    }
  }

  json splits = json::object();
  for (auto& s : splits_) {
    splits[s->name] = {{"shards", s->shards}, {"tokens", s->tokens}, {"documents", s->documents}};
  }
  json root = {{"format", "slm-dataset"},
               {"version", 1},
               {"token_bytes", token_bytes_},
               {"vocab_size", o_.vocab_size},
               {"eos_id", o_.eos_id},
               {"tokenizer", o_.tokenizer_file},
               {"splits", splits},
               {"stats", stats}};
  SLM_TRY(write_file_atomic(o_.dir + "/dataset.json", root.dump(2) + "\n"));
  return fsync_dir(o_.dir);
}

int64_t TokenDatasetWriter::n_tokens(const std::string& split) const {
  for (auto& s : splits_) {
    if (s->name == split) return s->tokens;
  }
  return 0;
}

int64_t TokenDatasetWriter::n_documents(const std::string& split) const {
  for (auto& s : splits_) {
    if (s->name == split) return s->documents;
  }
  return 0;
}

int64_t TokenDatasetWriter::n_shards() const {
  int64_t n = 0;
  for (auto& s : splits_) n += static_cast<int64_t>(s->shards.size()) + (s->file ? 1 : 0);
  return n;
}

}  // namespace slm
