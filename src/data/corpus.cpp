// Corpus walking: input expansion (files, directories, globs) and streaming document reads.
// Text is read in bounded parts and JSON lines one at a time, so memory stays flat whatever the
// corpus size.
#include "data/corpus.h"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/mmap.h"
#include "core/utf8.h"
#include "data/text_extract.h"

namespace slm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

std::string lower_ext(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// Adds one regular file or walks one directory.
Status add_path(const std::string& p, std::vector<CorpusFile>& out, std::set<std::string>& seen,
                int64_t* skipped) {
  std::error_code ec;
  auto add_file = [&](const fs::path& f) {
    const std::string key = fs::weakly_canonical(f, ec).string();
    if (!seen.insert(ec ? f.string() : key).second) return;
    CorpusFile cf;
    cf.path = f.string();
    bool known = false;
    cf.format = corpus_format_for(cf.path, &known);
    cf.size = fs::file_size(f, ec);
    if (ec) cf.size = 0;
    out.push_back(std::move(cf));
  };
  if (fs::is_directory(p, ec)) {
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec);
    if (ec) return error("%s: cannot list: %s", p.c_str(), ec.message().c_str());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) return error("%s: cannot list: %s", p.c_str(), ec.message().c_str());
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec)) continue;
      bool known = false;
      corpus_format_for(it->path().string(), &known);
      if (!known) {
        if (skipped) ++*skipped;
        continue;
      }
      found.push_back(it->path());
    }
    std::sort(found.begin(), found.end());
    for (const auto& f : found) add_file(f);
    return Status();
  }
  if (fs::is_regular_file(p, ec)) {
    add_file(p);
    return Status();
  }
  return error("%s: not a regular file or directory", p.c_str());
}

// Emits one document after repair; empty ones are only counted.
Status emit(std::string& text, const CorpusFile& f, int64_t index,
            const std::function<Status(const CorpusDoc&)>& fn, CorpusStats* st) {
  if (repair_text(text)) ++st->repaired_documents;
  if (std::all_of(text.begin(), text.end(), [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
      })) {
    ++st->empty_documents;
    return Status();
  }
  ++st->documents;
  CorpusDoc d;
  d.text = text;
  d.file = &f;
  d.index = index;
  return fn(d);
}

// The field's text from one JSON value, or false.
bool field_text(const json& j, const std::string& field, std::string* out) {
  if (!j.is_object()) return false;
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

}  // namespace

const char* corpus_format_name(CorpusFormat f) {
  switch (f) {
    case CorpusFormat::text: return "text";
    case CorpusFormat::markdown: return "markdown";
    case CorpusFormat::html: return "html";
    case CorpusFormat::jsonl: return "jsonl";
  }
  return "?";
}

CorpusFormat corpus_format_for(const std::string& path, bool* known) {
  const std::string ext = lower_ext(path);
  *known = true;
  if (ext == ".txt" || ext == ".text") return CorpusFormat::text;
  if (ext == ".md" || ext == ".markdown") return CorpusFormat::markdown;
  if (ext == ".html" || ext == ".htm" || ext == ".xhtml") return CorpusFormat::html;
  if (ext == ".jsonl" || ext == ".ndjson" || ext == ".json") return CorpusFormat::jsonl;
  *known = false;
  return CorpusFormat::text;
}

Expected<std::vector<CorpusFile>> list_corpus_files(const std::vector<std::string>& inputs,
                                                    int64_t* skipped) {
  std::vector<CorpusFile> out;
  std::set<std::string> seen;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::exists(in, ec)) {
      SLM_TRY(add_path(in, out, seen, skipped));
      continue;
    }
    if (in.find_first_of("*?[") == std::string::npos) {
      return error("%s: no such file or directory", in.c_str());
    }
    glob_t g{};
    const int rc = ::glob(in.c_str(), GLOB_NOSORT, nullptr, &g);
    std::vector<std::string> matches;
    if (rc == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) matches.emplace_back(g.gl_pathv[i]);
    }
    globfree(&g);
    if (matches.empty()) return error("%s: the pattern matches no files", in.c_str());
    std::sort(matches.begin(), matches.end());
    for (const std::string& m : matches) SLM_TRY(add_path(m, out, seen, skipped));
  }
  return out;
}

Status corpus_for_each(const std::vector<CorpusFile>& files, const CorpusOptions& o,
                       const std::function<Status(const CorpusDoc&)>& fn, CorpusStats* st,
                       const std::function<void(const std::string&)>& warn) {
  auto skip = [&](const CorpusFile& f, const std::string& why) {
    ++st->files_failed;
    if (warn) warn(f.path + ": skipped: " + why);
  };
  const size_t part = static_cast<size_t>(std::max<uint64_t>(o.max_part_bytes, 4096));
  std::string buf, text;
  for (const CorpusFile& f : files) {
    FilePtr fp(std::fopen(f.path.c_str(), "rb"));
    if (!fp) {
      skip(f, std::strerror(errno));
      continue;
    }
    // Binary sniffing on the first block, before any document of the file is emitted.
    buf.resize(1 << 16);
    buf.resize(std::fread(buf.data(), 1, buf.size(), fp.get()));
    if (looks_binary(buf)) {
      ++st->files_binary;
      if (warn) warn(f.path + ": skipped: binary data (NUL bytes)");
      continue;
    }
    ++st->files_read;
    st->bytes_read += buf.size();
    auto read_more = [&](size_t n) {
      const size_t old = buf.size();
      buf.resize(old + n);
      const size_t got = std::fread(buf.data() + old, 1, n, fp.get());
      buf.resize(old + got);
      st->bytes_read += got;
      return got;
    };

    if (f.format == CorpusFormat::html) {
      while (buf.size() <= o.max_whole_bytes && read_more(1 << 20) > 0) {}
      if (buf.size() > o.max_whole_bytes) {
        skip(f, "larger than the " + std::to_string(o.max_whole_bytes >> 20) + " MB HTML limit");
        continue;
      }
      text = html_to_text(buf);
      SLM_TRY(emit(text, f, 0, fn, st));
      continue;
    }

    if (f.format == CorpusFormat::jsonl) {
      const size_t first = buf.find_first_not_of(" \t\r\n\xef\xbb\xbf");
      if (first != std::string::npos && buf[first] == '[' && lower_ext(f.path) == ".json") {
        // A .json file holding one array of records.
        while (buf.size() <= o.max_whole_bytes && read_more(1 << 20) > 0) {}
        if (buf.size() > o.max_whole_bytes) {
          skip(f, "JSON array larger than the " + std::to_string(o.max_whole_bytes >> 20) +
                      " MB limit (use JSON lines)");
          continue;
        }
        const json arr = json_nesting_depth(buf) <= 64 ? json::parse(buf, nullptr, false) : json();
        if (!arr.is_array()) {
          skip(f, "not a valid JSON array");
          continue;
        }
        int64_t idx = 0;
        for (const json& rec : arr) {
          if (!field_text(rec, o.field, &text)) {
            ++st->bad_json_lines;
            continue;
          }
          SLM_TRY(emit(text, f, idx++, fn, st));
        }
        continue;
      }
      // JSON lines: one record per line, read as the buffer fills.
      int64_t idx = 0;
      size_t pos = 0;
      bool eof = false;
      while (true) {
        size_t nl = buf.find('\n', pos);
        if (nl == std::string::npos && !eof) {
          buf.erase(0, pos);
          pos = 0;
          if (buf.size() > o.max_whole_bytes) break;  // reported below
          if (read_more(1 << 20) == 0) eof = true;
          continue;
        }
        const size_t end = nl == std::string::npos ? buf.size() : nl;
        std::string_view line(buf.data() + pos, end - pos);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
        if (line.find_first_not_of(" \t\xef\xbb\xbf") != std::string_view::npos) {
          const json rec = json_nesting_depth(line) <= 64 ? json::parse(line, nullptr, false) : json();
          if (rec.is_discarded() || !field_text(rec, o.field, &text)) {
            ++st->bad_json_lines;
          } else {
            SLM_TRY(emit(text, f, idx++, fn, st));
          }
        }
        if (nl == std::string::npos) break;
        pos = nl + 1;
      }
      if (!eof && buf.size() > o.max_whole_bytes) {
        skip(f, "a JSON line longer than " + std::to_string(o.max_whole_bytes >> 20) + " MB");
      }
      continue;
    }

    // Text and Markdown: the whole file is one document unless it is larger than a part, then
    // it is cut after the last line break within each part.
    int64_t idx = 0;
    bool eof = false, binary = false;
    while (!eof || !buf.empty()) {
      while (!eof && buf.size() < part) {
        if (read_more(std::min<size_t>(1 << 20, part - buf.size())) == 0) eof = true;
      }
      if (buf.empty()) break;
      size_t cut = buf.size();
      if (!eof || buf.size() > part) {
        const size_t limit = std::min(buf.size(), part);
        const size_t nl = buf.rfind('\n', limit - 1);
        cut = nl == std::string::npos ? utf8_stable_prefix(std::string_view(buf).substr(0, limit))
                                      : nl + 1;
        if (cut == 0) cut = limit;
      }
      text.assign(buf, 0, cut);
      buf.erase(0, cut);
      if (std::memchr(text.data(), 0, text.size()) != nullptr) {
        binary = true;
        break;
      }
      SLM_TRY(emit(text, f, idx++, fn, st));
    }
    if (binary) {
      ++st->files_binary;
      if (warn) warn(f.path + ": stopped: binary data (NUL bytes) after the first block");
    }
    if (std::ferror(fp.get())) skip(f, "read error");
  }
  return Status();
}

}  // namespace slm
