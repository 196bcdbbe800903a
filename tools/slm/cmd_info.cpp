// `slm info`: what a model is: family, size, tensor types, context, tokenizer, chat template.
#include <memory>

#include "commands.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace slm::cli {

namespace {

struct InfoOptions {
  std::string model;
  std::string tokenizer;
};

std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1000000000) {
    std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  } else if (n >= 1000000) {
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  } else if (n >= 1000) {
    std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%lld", (long long)n);
  }
  return buf;
}

const char* rope_scaling_name(RopeScalingType t) {
  switch (t) {
    case RopeScalingType::none: return "none";
    case RopeScalingType::linear: return "linear";
    case RopeScalingType::llama3: return "llama3";
  }
  return "?";
}

int run_info(const InfoOptions& o) {
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  auto model = Model::load(o.model, lo);
  if (!model.ok()) return fail(model.status());
  const Model& m = **model;
  const ModelConfig& c = m.config();
  std::printf("model:       %s\n", o.model.c_str());
  std::printf("format:      %s\n", c.source_format.c_str());
  std::printf("family:      %s%s%s\n", c.arch.c_str(), c.name.empty() ? "" : "  name: ", c.name.c_str());
  std::printf("parameters:  %s (%lld)\n", human_count(m.n_params()).c_str(), (long long)m.n_params());
  std::printf("layers:      %lld  embd: %lld  ffn: %lld  heads: %lld  kv heads: %lld  head dim: %lld\n",
              (long long)c.n_layer, (long long)c.n_embd, (long long)c.n_ff, (long long)c.n_head,
              (long long)c.n_head_kv, (long long)c.head_dim);
  std::printf("context:     %lld (training)\n", (long long)c.n_ctx_train);
  std::printf("rope:        theta %g, %s, scaling %s", c.rope_theta,
              c.rope_interleaved ? "interleaved pairs" : "halves (neox)", rope_scaling_name(c.rope_scaling));
  if (c.rope_scaling != RopeScalingType::none) std::printf(" x%g", c.rope_factor);
  std::printf("\n");
  std::printf("norm eps:    %g  qkv bias: %s  qk norm: %s  tied embeddings: %s\n", c.norm_eps,
              c.qkv_bias ? "yes" : "no", c.qk_norm ? "yes" : "no", c.tied_embeddings ? "yes" : "no");
  std::printf("vocab:       %lld\n", (long long)c.n_vocab);
  std::printf("tensor types:");
  for (const auto& [name, count] : m.dtype_histogram()) std::printf(" %s x%lld", name.c_str(), (long long)count);
  std::printf("\n");
  if (m.has_tokenizer()) {
    const Tokenizer& t = m.tokenizer();
    std::printf("tokenizer:   %.*s", (int)t.kind_name().size(), t.kind_name().data());
    if (!t.pre_type().empty()) std::printf(" (pre: %s)", t.pre_type().c_str());
    std::printf(", %lld tokens, bos %d, eos %d, add bos: %s\n", (long long)t.vocab_size(), t.bos_id(),
                t.eos_id(), t.add_bos() ? "yes" : "no");
  } else {
    std::printf("tokenizer:   none\n");
  }
  const std::string& tmpl = m.chat_template();
  if (tmpl.empty()) {
    std::printf("chat template: none\n");
  } else {
    std::printf("chat template: %zu bytes\n", tmpl.size());
  }
  return 0;
}

}  // namespace

void add_info(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand(
      "info", "Show a model's family, parameter count, tensor types, context, tokenizer and template");
  sub->add_option("MODEL", o->model, "GGUF file, HF directory, or llama2.c checkpoint")->required();
  sub->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin");
  sub->callback([o] { exit_code() = run_info(*o); });
}
SLM_REGISTER_COMMAND(add_info, 30);

}  // namespace slm::cli
