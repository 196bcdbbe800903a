// Corpus input: files, directories (recursive) and glob patterns expanded into a file list, and
// a streaming walk that yields documents (a text/Markdown/HTML file, or one JSON line).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace slm {

enum class CorpusFormat { text, markdown, html, jsonl };
const char* corpus_format_name(CorpusFormat f);
// By extension: .txt/.text -> text, .md/.markdown -> markdown, .html/.htm/.xhtml -> html,
// .jsonl/.ndjson/.json -> jsonl; anything else -> text (only for files named explicitly).
CorpusFormat corpus_format_for(const std::string& path, bool* known);

struct CorpusFile {
  std::string path;
  CorpusFormat format = CorpusFormat::text;
  uint64_t size = 0;
};

// Expands inputs: a file is taken as is; a directory is walked recursively (sorted, hidden
// entries skipped, only known extensions); anything else is a glob pattern (glob(3): * ? [..]).
// A file reached twice is listed once. Errors: an input that matches nothing.
// *skipped counts directory entries left out for an unknown extension.
Expected<std::vector<CorpusFile>> list_corpus_files(const std::vector<std::string>& inputs,
                                                    int64_t* skipped);

struct CorpusOptions {
  std::string field = "text";                 // JSON lines: the string field holding the text
  uint64_t max_part_bytes = uint64_t{16} << 20;  // text files larger than this are cut at lines
  uint64_t max_whole_bytes = uint64_t{256} << 20;  // HTML / JSON-array files: whole-file cap
};

struct CorpusStats {
  int64_t files_read = 0;
  int64_t files_binary = 0;      // skipped: NUL bytes
  int64_t files_failed = 0;      // skipped: unreadable or too large (see warnings)
  int64_t documents = 0;         // handed to the callback
  int64_t empty_documents = 0;   // nothing left after extraction
  int64_t repaired_documents = 0;  // invalid UTF-8 replaced by U+FFFD
  int64_t bad_json_lines = 0;    // not JSON, or no string field
  uint64_t bytes_read = 0;
};

struct CorpusDoc {
  std::string_view text;  // valid UTF-8, non-empty
  const CorpusFile* file = nullptr;
  int64_t index = 0;      // document number within its file (JSON line, or text part)
};

// Reads the files in order and calls fn for every document; fn's error stops the walk.
// Unreadable files are counted and reported through warn (may be null), never fatal.
Status corpus_for_each(const std::vector<CorpusFile>& files, const CorpusOptions& o,
                       const std::function<Status(const CorpusDoc&)>& fn, CorpusStats* stats,
                       const std::function<void(const std::string&)>& warn = nullptr);

}  // namespace slm
