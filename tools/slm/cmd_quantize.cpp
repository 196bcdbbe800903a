// `slm quantize IN OUT --type T`: any loadable model to a GGUF of one type or a K-quant mix,
// with a progress bar on a terminal and a size/bits-per-weight summary.
#include <unistd.h>

#include <chrono>
#include <memory>

#include "commands.h"
#include "convert/quantize.h"

namespace slm::cli {

namespace {

struct QuantOptions {
  std::string in, out, type, tokenizer;
  int threads = 0;
  bool progress = false, no_progress = false;
};

double mb(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

// Draws "\r[####......] 5/30 MB 12.3/45.6 ETA 3 s name TYPE" on a terminal.
void draw_bar(const QuantizeProgress& p, double elapsed) {
  const double frac = p.in_total ? static_cast<double>(p.in_done) / static_cast<double>(p.in_total) : 1;
  const int width = 24, fill = static_cast<int>(frac * width + 0.5);
  std::string bar(static_cast<size_t>(fill), '#');
  bar.resize(width, '.');
  const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
  std::fprintf(stderr, "\r[%s] tensor %lld/%lld  %.1f/%.1f MB  ETA %.0f s  %-32.32s %-5s\x1b[K",
               bar.c_str(), static_cast<long long>(p.tensor + 1),
               static_cast<long long>(p.n_tensors), mb(p.in_done), mb(p.in_total), eta,
               p.name.c_str(), dtype_name(p.type));
  std::fflush(stderr);
}

int run_quantize(const QuantOptions& o) {
  // Validate the type first so a typo costs nothing and lists the valid names.
  auto recipe = parse_quant_recipe(o.type);
  if (!recipe.ok()) return fail(recipe.status());
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  enum { none, bar, lines } mode = none;
  if (!o.no_progress) {
    if (tty) {
      mode = bar;
    } else if (o.progress) {
      mode = lines;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  QuantizeOptions qo;
  qo.recipe = recipe->name;
  qo.n_threads = o.threads;
  qo.tokenizer_path = o.tokenizer;
  if (mode != none) {
    qo.on_progress = [mode, t0](const QuantizeProgress& p) {
      if (mode == bar) {
        draw_bar(p, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      } else if (p.tensor_done) {
        std::fprintf(stderr, "[%lld/%lld] %s -> %s\n", static_cast<long long>(p.tensor + 1),
                     static_cast<long long>(p.n_tensors), p.name.c_str(), dtype_name(p.type));
      }
    };
  }
  auto r = quantize_model(o.in, o.out, qo);
  if (mode == bar) std::fputs("\r\x1b[K", stderr);
  if (!r.ok()) return fail(r.status());
  std::printf("%s -> %s (%s): %zu tensors, %.2f MB -> %.2f MB, %.3f bits per weight, %.2f s\n",
              o.in.c_str(), o.out.c_str(), recipe->name.c_str(), r->tensor_types.size(),
              mb(r->in_bytes), mb(r->out_bytes), r->bits_per_weight(), r->seconds);
  return 0;
}

}  // namespace

void add_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantOptions>();
  CLI::App* sub = app.add_subcommand(
      "quantize", "Write a model (GGUF, HF directory, llama2.c) as a GGUF of another type or mix");
  sub->add_option("IN", o->in, "GGUF file, HF directory, or llama2.c checkpoint")->required();
  sub->add_option("OUT", o->out, "output GGUF file (written atomically)")->required();
  sub->add_option("--type", o->type, "output type or mix (see below)")->required();
  sub->add_option("-t,--threads", o->threads, "threads (default: all cores)");
  sub->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin");
  sub->add_flag("--progress", o->progress,
                "report progress: a bar on a terminal, else one stderr line per tensor");
  sub->add_flag("--no-progress", o->no_progress, "no progress output");
  sub->footer(quant_recipe_help());
  sub->callback([o] { exit_code() = run_quantize(*o); });
}
SLM_REGISTER_COMMAND(add_quantize, 70);

}  // namespace slm::cli
