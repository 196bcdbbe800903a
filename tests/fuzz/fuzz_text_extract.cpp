// Fuzzes corpus text handling: HTML to text, entity decoding, the corpus walker on a file of each
// format, and the dataset manifest reader. First byte picks the target; the rest is the input.
// Invariants: extracted documents are non-empty valid UTF-8; nothing crashes or over-reads.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/shards.h"
#include "core/utf8.h"
#include "data/text_extract.h"

namespace {

const std::string& temp_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/fuzz_text_extract.XXXXXX";
    const char* d = mkdtemp(tmpl);
    return std::string(d ? d : "/tmp");
  }();
  return dir;
}

void write(const std::string& path, const uint8_t* p, size_t n) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return;
  std::fwrite(p, 1, n, f);
  std::fclose(f);
}

void check_text(std::string_view s) {
  if (!slm::utf8_is_valid(s)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int mode = data[0] % 4;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode == 0) {
    std::string text = slm::html_to_text(in);
    slm::repair_text(text);
    check_text(text);
  } else if (mode == 1) {
    std::string out;
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i] != '&') continue;
      size_t j = i;
      if (slm::decode_html_entity(in, j, out) && (j <= i || j > in.size())) __builtin_trap();
    }
    check_text(out);
  } else if (mode == 2) {
    const char* exts[] = {".txt", ".md", ".html", ".jsonl"};
    const std::string path = temp_dir() + "/doc" + exts[(data[0] >> 2) % 4];
    write(path, data + 1, size - 1);
    slm::CorpusFile f;
    bool known = false;
    f.path = path;
    f.format = slm::corpus_format_for(path, &known);
    slm::CorpusOptions o;
    o.max_part_bytes = 4096;
    o.field = "text";
    slm::CorpusStats st;
    (void)slm::corpus_for_each({f}, o, [](const slm::CorpusDoc& d) {
      if (d.text.empty()) __builtin_trap();
      check_text(d.text);
      return slm::Status();
    }, &st);
  } else {
    // A manifest next to two small shards.
    const std::string dir = temp_dir();
    const uint8_t shard[] = {1, 0, 2, 0, 3, 0, 0xff, 0xff};
    write(dir + "/train-00000.bin", shard, sizeof(shard));
    write(dir + "/val-00000.bin", shard, 3);
    write(dir + "/dataset.json", data + 1, size - 1);
    auto ds = slm::TokenDataset::open(dir);
    if (ds.ok()) {
      for (const char* name : {"train", "val"}) {
        auto s = ds->split(name);
        if (!s.ok()) continue;
        std::vector<int32_t> buf(static_cast<size_t>(std::min<int64_t>((*s)->n_tokens(), 64)));
        (void)(*s)->read(0, static_cast<int64_t>(buf.size()), buf.data());
        (void)(*s)->read((*s)->n_tokens() - 1, 2, buf.data());
      }
    }
  }
  return 0;
}
