// `slm perplexity`: llama.cpp's perplexity protocol (non-overlapping windows starting with
// BOS, second half of each window scored), so numbers compare with published ones.
#include <memory>

#include "commands.h"
#include "core/mmap.h"
#include "generate/perplexity.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace slm::cli {

namespace {

struct PplOptions {
  std::string model;
  std::string text_file;
  std::string tokenizer;
  int64_t n_ctx = 512;
  int64_t n_chunks = -1;
  int threads = 0;
  std::string kv_type = "f16";
};

int run_perplexity(const PplOptions& o) {
  auto text = read_file(o.text_file, 4ull << 30);
  if (!text.ok()) return fail(text.status());
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  auto model = Model::load(o.model, lo);
  if (!model.ok()) return fail(model.status());
  if (!(*model)->has_tokenizer()) return fail(error("%s: the model has no tokenizer", o.model.c_str()));
  if (o.n_ctx < 2) return fail(error("--ctx must be at least 2"));
  DType kv = DType::F16;
  if (Status st = parse_kv_type(o.kv_type, (*model)->config().head_dim, &kv); !st.ok()) return fail(st);
  Session session(**model, o.n_ctx, o.threads, kv);
  PerplexityOptions po;
  po.n_ctx = o.n_ctx;
  po.n_chunks = o.n_chunks;
  po.on_chunk = [](int64_t chunk, double ppl) {
    std::string s = format_chunk_ppl(chunk, ppl);
    std::fputs(s.c_str(), stdout);
    std::fflush(stdout);
  };
  auto r = perplexity(session, (*model)->tokenizer(), *text, po);
  if (!r.ok()) return fail(r.status());
  std::printf("\n%s\n", format_final_ppl(*r).c_str());
  std::fprintf(stderr, "[%lld tokens, %lld windows of %lld, %lld scored, %.2f s]\n",
               (long long)r->n_tokens, (long long)r->n_chunks, (long long)r->n_ctx,
               (long long)r->n_scored, r->seconds);
  return 0;
}

}  // namespace

void add_perplexity(CLI::App& app) {
  auto o = std::make_shared<PplOptions>();
  CLI::App* sub = app.add_subcommand(
      "perplexity", "Perplexity of a text file with llama.cpp's protocol (comparable numbers)");
  sub->add_option("MODEL", o->model, "GGUF file, HF directory, or llama2.c checkpoint")->required();
  sub->add_option("TEXT_FILE", o->text_file, "text to score")->required();
  sub->add_option("-c,--ctx", o->n_ctx, "window length in tokens")->capture_default_str();
  sub->add_option("--chunks", o->n_chunks, "score at most this many windows (default: all)");
  sub->add_option("-t,--threads", o->threads, "threads (default: all cores)");
  sub->add_option("--kv-type", o->kv_type, "KV cache type: f16, q8_0 or f32")->capture_default_str();
  sub->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin");
  sub->callback([o] { exit_code() = run_perplexity(*o); });
}
SLM_REGISTER_COMMAND(add_perplexity, 60);

}  // namespace slm::cli
