// `slm tokenizer train INPUTS... -o OUT`: learns a byte-level BPE vocabulary from a corpus and
// writes a Hugging Face tokenizer.json (+ tokenizer_config.json when OUT is a directory).
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>

#include "commands.h"
#include "core/mmap.h"
#include "data/corpus.h"
#include "tokenizer/bpe_trainer.h"

namespace slm::cli {

namespace {

struct TrainTokOptions {
  std::vector<std::string> inputs;
  std::string out;
  int64_t vocab_size = 8192;
  int64_t min_frequency = 2;
  std::string pretokenizer = "llama3";
  std::string special = "<|endoftext|>";
  std::string field = "text";
  int threads = 0;
  bool quiet = false;
};

double mb(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

std::vector<std::string> split_specials(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int run_train(const TrainTokOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool tty = !o.quiet && ::isatty(STDERR_FILENO) != 0;
  BpeTrainerOptions bo;
  bo.vocab_size = o.vocab_size;
  bo.min_frequency = o.min_frequency;
  bo.pretokenizer = o.pretokenizer;
  bo.special_tokens = split_specials(o.special);
  bo.n_threads = o.threads;
  if (tty) {
    bo.on_progress = [](const BpeTrainProgress& p) {
      std::fprintf(stderr, "\rlearning merges: %lld / %lld\x1b[K", (long long)p.merges_done,
                   (long long)p.merges_target);
    };
  }
  auto trainer = BpeTrainer::create(bo);
  if (!trainer.ok()) return fail(trainer.status());

  int64_t unsupported = 0;
  auto files = list_corpus_files(o.inputs, &unsupported);
  if (!files.ok()) return fail(files.status());
  if (files->empty()) return fail(error("no input files found"));
  uint64_t total = 0;
  for (const CorpusFile& f : *files) total += f.size;

  // Documents are batched so that many short ones are counted in one parallel pass.
  std::vector<std::string> batch;
  size_t batch_bytes = 0;
  CorpusStats st;
  auto flush = [&] {
    std::vector<std::string_view> views(batch.begin(), batch.end());
    (*trainer)->add_documents(views);
    batch.clear();
    batch_bytes = 0;
    if (tty) {
      std::fprintf(stderr, "\rcounting words: %.1f / %.1f MB\x1b[K", mb(st.bytes_read), mb(total));
    }
  };
  CorpusOptions co;
  co.field = o.field;
  co.max_part_bytes = uint64_t{8} << 20;
  auto warn = [&](const std::string& w) {
    if (!o.quiet) std::fprintf(stderr, "%sslm: warning: %s\n", tty ? "\r\x1b[K" : "", w.c_str());
  };
  Status s = corpus_for_each(
      *files, co,
      [&](const CorpusDoc& d) {
        batch.emplace_back(d.text);
        batch_bytes += d.text.size();
        if (batch_bytes >= (size_t{16} << 20) || batch.size() >= 8192) flush();
        return Status();
      },
      &st, warn);
  if (!s.ok()) return fail(s);
  flush();
  if (st.documents == 0) {
    if (tty) std::fputs("\r\x1b[K", stderr);
    return fail(error("the corpus is empty: no text in %lld files (%lld binary skipped, %lld "
                      "unreadable, %lld empty documents, %lld bad JSON lines)",
                      (long long)files->size(), (long long)st.files_binary,
                      (long long)st.files_failed, (long long)st.empty_documents,
                      (long long)st.bad_json_lines));
  }
  auto r = (*trainer)->train();
  if (tty) std::fputs("\r\x1b[K", stderr);
  if (!r.ok()) return fail(r.status());

  namespace fs = std::filesystem;
  std::string json_path = o.out;
  const bool to_file = o.out.size() > 5 && o.out.compare(o.out.size() - 5, 5, ".json") == 0;
  if (!to_file) {
    std::error_code ec;
    fs::create_directories(o.out, ec);
    if (ec) return fail(error("%s: cannot create directory: %s", o.out.c_str(), ec.message().c_str()));
    json_path = o.out + "/tokenizer.json";
    if (Status w = write_file_atomic(o.out + "/tokenizer_config.json", r->tokenizer_config_json); !w.ok()) {
      return fail(w);
    }
  }
  if (Status w = write_file_atomic(json_path, r->tokenizer_json); !w.ok()) return fail(w);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: vocabulary %lld (%lld merges, %zu special), from %.1f MB in %lld files: %lld "
              "documents, %lld words (%lld distinct)%s; counting %.1f s, merges %.1f s, total %.1f s\n",
              json_path.c_str(), (long long)r->vocab_size, (long long)r->n_merges,
              bo.special_tokens.size(), mb(static_cast<uint64_t>(r->input_bytes)),
              (long long)st.files_read, (long long)st.documents, (long long)r->n_words,
              (long long)r->n_unique_words,
              st.repaired_documents ? (", " + std::to_string(st.repaired_documents) +
                                       " documents with invalid UTF-8 repaired").c_str()
                                    : "",
              r->count_seconds, r->merge_seconds, secs);
  if (r->vocab_size < o.vocab_size) {
    std::fprintf(stderr, "slm: note: the corpus supports only %lld tokens (no pair left with "
                 "frequency >= %lld)\n", (long long)r->vocab_size, (long long)o.min_frequency);
  }
  if (st.files_binary + st.files_failed > 0) {
    std::fprintf(stderr, "slm: %lld files skipped (%lld binary, %lld unreadable)\n",
                 (long long)(st.files_binary + st.files_failed), (long long)st.files_binary,
                 (long long)st.files_failed);
  }
  return 0;
}

}  // namespace

void add_tokenizer(CLI::App& app) {
  CLI::App* tok = app.add_subcommand("tokenizer", "Tokenizer tools (train a byte-level BPE)");
  tok->require_subcommand(1);
  auto o = std::make_shared<TrainTokOptions>();
  CLI::App* sub = tok->add_subcommand(
      "train", "Learn a byte-level BPE tokenizer from text and write a Hugging Face tokenizer.json");
  sub->add_option("INPUTS", o->inputs,
                  "files, directories (searched for .txt .md .html .htm .jsonl .json) or glob "
                  "patterns")
      ->required();
  sub->add_option("-o,--out", o->out,
                  "output directory (tokenizer.json + tokenizer_config.json) or a .json file")
      ->required();
  sub->add_option("--vocab-size", o->vocab_size,
                  "vocabulary size including the 256 byte tokens and special tokens")
      ->capture_default_str();
  sub->add_option("--min-frequency", o->min_frequency, "never merge pairs seen fewer times")
      ->capture_default_str();
  sub->add_option("--pretokenizer", o->pretokenizer,
                  "split rules: gpt2, llama3, qwen2, starcoder, gpt-4o")
      ->capture_default_str();
  sub->add_option("--special", o->special,
                  "comma-separated special tokens; the first is BOS/EOS in tokenizer_config.json")
      ->capture_default_str();
  sub->add_option("--field", o->field, "JSON lines: the field holding the text")
      ->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "threads for word counting (default: all cores)");
  sub->add_flag("-q,--quiet", o->quiet, "no progress or warnings on stderr");
  sub->footer(
      "Example:\n  slm tokenizer train corpus/ -o my-tok --vocab-size 16000 "
      "--special '<|endoftext|>,<|im_start|>,<|im_end|>'\n"
      "The result loads in slm (slm tokenize my-tok) and in Hugging Face tokenizers.");
  sub->callback([o] { exit_code() = run_train(*o); });
}
SLM_REGISTER_COMMAND(add_tokenizer, 90);

}  // namespace slm::cli
