// `slm export MODEL OUT.gguf [--type T]`: any loadable model to a GGUF that llama.cpp and Ollama
// run, with a default type chosen for the input; the writing is `slm quantize`'s library code.
#include <unistd.h>

#include <memory>

#include "commands.h"
#include "convert/export.h"
#include "convert/quantize.h"
#include "model/model.h"

namespace slm::cli {

namespace {

struct ExportOptions {
  std::string in, out, type, tokenizer;
  int threads = 0;
  bool quiet = false;
};

double mb(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

int run_export(const ExportOptions& o) {
  std::string type = o.type;
  if (!type.empty()) {
    // Validate first so a typo costs nothing and lists the valid names.
    auto r = parse_quant_recipe(type);
    if (!r.ok()) return fail(r.status());
    type = r->name;
  }
  // Loading maps the weights without reading them, so looking before writing is cheap.
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  auto model = Model::load(o.in, lo);
  if (!model.ok()) return fail(model.status());
  // llama.cpp cannot run a GGUF without a vocabulary, so refuse rather than write one.
  if (!(*model)->has_tokenizer()) {
    if ((*model)->config().source_format == "llama2c") {
      return fail(error("%s: llama2.c checkpoints keep their tokenizer in a separate file: pass "
                        "--tokenizer tokenizer.bin", o.in.c_str()));
    }
    return fail(error("%s: the model has no tokenizer, which llama.cpp needs", o.in.c_str()));
  }
  if (type.empty()) {
    ExportTypeChoice c = default_export_type(**model);
    type = c.type;
    if (!o.quiet) std::fprintf(stderr, "slm export: type %s: %s\n", type.c_str(), c.reason.c_str());
  }
  model->reset();
  QuantizeOptions qo;
  qo.recipe = type;
  qo.n_threads = o.threads;
  qo.tokenizer_path = o.tokenizer;
  const bool tty = !o.quiet && ::isatty(STDERR_FILENO) != 0;
  if (tty) {
    qo.on_progress = [](const QuantizeProgress& p) {
      const double pct = p.in_total ? 100.0 * static_cast<double>(p.in_done) /
                                          static_cast<double>(p.in_total)
                                    : 100.0;
      std::fprintf(stderr, "\r%5.1f%%  tensor %lld/%lld  %-32.32s %-5s\x1b[K", pct,
                   static_cast<long long>(p.tensor + 1), static_cast<long long>(p.n_tensors),
                   p.name.c_str(), dtype_name(p.type));
      std::fflush(stderr);
    };
  }
  auto r = quantize_model(o.in, o.out, qo);
  if (tty) std::fputs("\r\x1b[K", stderr);
  if (!r.ok()) return fail(r.status());
  std::printf("%s -> %s (%s): %zu tensors, %.2f MB -> %.2f MB, %.3f bits per weight, %.2f s\n",
              o.in.c_str(), o.out.c_str(), type.c_str(), r->tensor_types.size(), mb(r->in_bytes),
              mb(r->out_bytes), r->bits_per_weight(), r->seconds);
  return 0;
}

}  // namespace

void add_export(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* sub = app.add_subcommand(
      "export", "Write a model as a GGUF file for llama.cpp / Ollama (default type: see below)");
  sub->add_option("MODEL", o->in, "GGUF file, HF directory, or llama2.c checkpoint")->required();
  sub->add_option("OUT", o->out, "output GGUF file (written atomically)")->required();
  sub->add_option("--type", o->type, "output type or mix, as for `slm quantize` (default: see below)");
  sub->add_option("-t,--threads", o->threads, "threads (default: all cores)")->check(CLI::Range(0, 1024));
  sub->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin (llama2.c checkpoints)");
  sub->add_flag("-q,--quiet", o->quiet, "no progress and no note on the chosen type");
  sub->footer(
      "Default type: F16 for float models (F32/F16), BF16 for BF16 models, Q8_0 for models that "
      "are already quantized (say --type F16 for a lossless, larger copy). The file carries "
      "llama.cpp's metadata, tokenizer and chat template.\n\n" + quant_recipe_help());
  sub->callback([o] { exit_code() = run_export(*o); });
}
SLM_REGISTER_COMMAND(add_export, 75);

}  // namespace slm::cli
