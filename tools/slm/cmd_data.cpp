// `slm data prepare INPUTS... --tokenizer T -o DIR`: corpus files to a tokenized dataset
// (train/val shards + dataset.json) with duplicate removal and a summary.
#include <unistd.h>

#include <memory>

#include "commands.h"
#include "data/prepare.h"

namespace slm::cli {

namespace {

struct PrepareCliOptions {
  PrepareOptions p;
  bool no_dedup = false;
  bool quiet = false;
};

double mb(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

int run_prepare(PrepareCliOptions& o) {
  const bool tty = !o.quiet && ::isatty(STDERR_FILENO) != 0;
  o.p.dedup = !o.no_dedup;
  if (tty) {
    o.p.on_progress = [](const PrepareProgress& p) {
      std::fprintf(stderr, "\r%.1f / %.1f MB read, %lld documents, %lld tokens\x1b[K",
                   mb(p.bytes_read), mb(p.bytes_total), (long long)p.documents,
                   (long long)p.tokens);
    };
  }
  o.p.on_warning = [&o, tty](const std::string& w) {
    if (!o.quiet) std::fprintf(stderr, "%sslm: warning: %s\n", tty ? "\r\x1b[K" : "", w.c_str());
  };
  auto r = prepare_dataset(o.p);
  if (tty) std::fputs("\r\x1b[K", stderr);
  if (!r.ok()) return fail(r.status());
  const CorpusStats& c = r->corpus;
  std::printf("%s: %lld files read (%.1f MB), %lld skipped (%lld binary, %lld unreadable)\n",
              o.p.out_dir.c_str(), (long long)c.files_read, mb(c.bytes_read),
              (long long)(c.files_binary + c.files_failed), (long long)c.files_binary,
              (long long)c.files_failed);
  std::printf("documents: %lld kept (train %lld, val %lld), %lld duplicates removed, %lld empty, "
              "%lld bad JSON lines, %lld with invalid UTF-8 repaired\n",
              (long long)(r->documents_train + r->documents_val), (long long)r->documents_train,
              (long long)r->documents_val, (long long)r->duplicates,
              (long long)c.empty_documents, (long long)c.bad_json_lines,
              (long long)c.repaired_documents);
  std::printf("tokens: train %lld, val %lld (vocab %lld, eos %d), %lld shards, %.2f s\n",
              (long long)r->tokens_train, (long long)r->tokens_val, (long long)r->vocab_size,
              r->eos_id, (long long)r->shards, r->seconds);
  return 0;
}

}  // namespace

void add_data(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Training data tools (tokenize a corpus into shards)");
  data->require_subcommand(1);
  auto o = std::make_shared<PrepareCliOptions>();
  CLI::App* sub = data->add_subcommand(
      "prepare", "Tokenize text, Markdown, HTML and JSON lines into train/val token shards");
  sub->add_option("INPUTS", o->p.inputs,
                  "files, directories (searched for .txt .md .html .htm .jsonl .json) or glob "
                  "patterns")
      ->required();
  sub->add_option("--tokenizer", o->p.tokenizer,
                  "tokenizer.json, a model directory, or a GGUF with a tokenizer")
      ->required();
  sub->add_option("-o,--out", o->p.out_dir, "output dataset directory")->required();
  sub->add_option("--val-fraction", o->p.val_fraction,
                  "share of documents for validation, chosen by document hash")
      ->capture_default_str();
  sub->add_option("--shard-tokens", o->p.shard_tokens, "tokens per shard file")
      ->capture_default_str();
  sub->add_option("--field", o->p.field, "JSON lines: the field holding the text")
      ->capture_default_str();
  sub->add_option("--seed", o->p.seed, "changes which documents go to validation")
      ->capture_default_str();
  sub->add_option("-t,--threads", o->p.n_threads, "tokenizer threads (default: all cores)");
  sub->add_flag("--no-dedup", o->no_dedup, "keep exact duplicate documents");
  sub->add_flag("-q,--quiet", o->quiet, "no progress or warnings on stderr");
  sub->footer(
      "Example:\n  slm data prepare docs/ 'web/*.html' chat.jsonl --tokenizer my-tok -o data\n"
      "Writes data/train-NNNNN.bin, data/val-NNNNN.bin (little-endian uint16/uint32 ids, each\n"
      "document followed by EOS), a copy of the tokenizer, and data/dataset.json (written last).");
  sub->callback([o] { exit_code() = run_prepare(*o); });
}
SLM_REGISTER_COMMAND(add_data, 91);

}  // namespace slm::cli
