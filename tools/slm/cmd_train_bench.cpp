// `slm train-bench`: training speed of the hand-written trainer on a preset model shape with
// synthetic tokens: tokens/s, step time, and model FLOP utilization against this machine's
// FP32 GEMM peak measured in the same run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench/bench.h"
#include "commands.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "train/train_model.h"

namespace slm::cli {

namespace {

struct TrainBenchOptions {
  std::string preset = "8m";
  int64_t batch = 8, seq = 256, steps = 5, warmup = 1;
  int threads = 2;
  double gemm_seconds = 1.0;
  bool json = false;
};

Status preset_config(const std::string& name, train::TrainModelConfig* c) {
  if (name == "8m") {
    c->vocab_size = 8192, c->dim = 256, c->n_layers = 8, c->ffn_dim = 688;
  } else if (name == "46m") {
    c->vocab_size = 16384, c->dim = 512, c->n_layers = 12, c->ffn_dim = 1376;
  } else {
    return error("train-bench: unknown preset '%s' (8m or 46m)", name.c_str());
  }
  c->n_heads = 8;
  c->n_kv_heads = 8;
  c->tied_embeddings = true;
  return Status();
}

// Model FLOPs of one training step (forward + backward) over B x T tokens:
//   6 * (weights of every matrix product: layer matrices + output projection) per token, plus
//   causal attention: q·k and p·v are 4 * D * (t + 1) flops for the token at position t per
//   layer in the forward pass, twice that backward. Norms, rope, softmax and the optimizer are
//   not counted (they are not matrix products).
double step_flops(const train::TrainModelConfig& c, int64_t B, int64_t T) {
  const double D = static_cast<double>(c.dim), F = static_cast<double>(c.ffn_dim);
  const double dkv = static_cast<double>(c.n_kv_heads) * D / static_cast<double>(c.n_heads);
  const double matrix = static_cast<double>(c.n_layers) * (2 * D * D + 2 * dkv * D + 3 * D * F) +
                        static_cast<double>(c.vocab_size) * D;
  const double tokens = static_cast<double>(B * T);
  const double attn_fwd = static_cast<double>(c.n_layers) * 4.0 * D *
                          (static_cast<double>(T) * static_cast<double>(T + 1) / 2.0) *
                          static_cast<double>(B);
  return 6.0 * matrix * tokens + 3.0 * attn_fwd;
}

int run_train_bench(const TrainBenchOptions& o) {
  train::TrainModelConfig c;
  if (Status s = preset_config(o.preset, &c); !s.ok()) return fail(s);
  if (o.batch < 1 || o.seq < 1 || o.steps < 1 || o.warmup < 0 || o.threads < 1) {
    return fail(error("train-bench: -b, -T, --steps and -t must be >= 1 (--warmup-steps >= 0)"));
  }
  c.max_seq_len = std::max<int64_t>(o.seq, 256);
  auto made = train::TrainModel::create(c, o.threads);
  if (!made.ok()) return fail(made.status());
  train::TrainModel& m = **made;
  m.init_weights(1);
  train::AdamWConfig ac;
  train::AdamW opt(m.params(), ac);

  // Synthetic batch: uniform random ids from a fixed seed, targets = the next id.
  const int64_t n = o.batch * o.seq;
  std::vector<int32_t> toks(static_cast<size_t>(n + 1));
  uint64_t s = 0x5EED;
  for (auto& t : toks) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<int32_t>((s >> 33) % static_cast<uint64_t>(c.vocab_size));
  }
  const std::vector<int32_t> targets(toks.begin() + 1, toks.end());

  if (!o.json) {
    std::fprintf(stderr, "model %s: %.2fM parameters, batch %lld x %lld, %d threads\n",
                 o.preset.c_str(), static_cast<double>(m.n_params()) / 1e6,
                 static_cast<long long>(o.batch), static_cast<long long>(o.seq), o.threads);
  }
  std::vector<double> times;
  double loss = 0;
  for (int64_t step = 0; step < o.warmup + o.steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    m.zero_grads();
    auto l = m.forward_backward(toks.data(), targets.data(), o.batch, o.seq, 1.0f);
    if (!l.ok()) return fail(l.status());
    train::clip_grad_norm(m.params(), 1.0, m.pool());
    opt.step(m.params(), 1e-3f, m.pool());
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    loss = *l;
    if (step >= o.warmup) times.push_back(sec);
    if (!o.json) {
      std::fprintf(stderr, "%s step %lld: %.3f s, loss %.4f\n", step < o.warmup ? "warm-up" : "timed",
                   static_cast<long long>(step), sec, loss);
    }
  }
  ThreadPool pool(o.threads);
  const double peak = measure_sgemm_gflops(&pool, o.gemm_seconds);
  const Spread sp = spread_of(times);
  const double flops = step_flops(c, o.batch, o.seq);
  const double tok_s = static_cast<double>(n) / sp.median;
  const double gflops = flops / sp.median / 1e9;
  if (o.json) {
    nlohmann::json j = {{"preset", o.preset},       {"params", m.n_params()},
                        {"batch", o.batch},         {"seq", o.seq},
                        {"threads", o.threads},     {"steps", o.steps},
                        {"step_s_median", sp.median}, {"step_s_min", sp.min},
                        {"step_s_max", sp.max},     {"tokens_per_s", tok_s},
                        {"step_gflop", flops / 1e9}, {"model_gflops", gflops},
                        {"gemm_peak_gflops", peak}, {"mfu", gflops / peak},
                        {"last_loss", loss}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("slm train-bench %s: %.2fM params, batch %lld x %lld, %d threads, %lld timed steps\n",
              o.preset.c_str(), static_cast<double>(m.n_params()) / 1e6,
              static_cast<long long>(o.batch), static_cast<long long>(o.seq), o.threads,
              static_cast<long long>(o.steps));
  std::printf("  step time   %.3f s median (min %.3f, max %.3f)\n", sp.median, sp.min, sp.max);
  std::printf("  throughput  %.0f tokens/s\n", tok_s);
  std::printf("  model FLOPs %.1f GFLOP per step, %.1f GFLOP/s\n", flops / 1e9, gflops);
  std::printf("  GEMM peak   %.1f GFLOP/s (sgemm 1024^3, measured now)  ->  MFU %.1f%%\n", peak,
              100.0 * gflops / peak);
  return 0;
}

}  // namespace

void add_train_bench(CLI::App& app) {
  auto o = std::make_shared<TrainBenchOptions>();
  CLI::App* sub = app.add_subcommand(
      "train-bench",
      "Training speed on a preset model with synthetic tokens: tokens/s, step time, MFU");
  sub->add_option("--preset", o->preset, "Model shape: 8m (dim 256, 8 layers) or 46m (dim 512, 12 layers)")
      ->check(CLI::IsMember({"8m", "46m"}));
  sub->add_option("-b,--batch", o->batch, "Sequences per step")->capture_default_str();
  sub->add_option("-T,--seq-len", o->seq, "Tokens per sequence")->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "Threads")->capture_default_str();
  sub->add_option("--steps", o->steps, "Timed steps (after the warm-up)")->capture_default_str();
  sub->add_option("--warmup-steps", o->warmup, "Untimed steps first")->capture_default_str();
  sub->add_option("--gemm-seconds", o->gemm_seconds, "Time spent measuring the GEMM peak")
      ->capture_default_str();
  sub->add_flag("--json", o->json, "Print one JSON object instead of the table");
  sub->callback([o] { exit_code() = run_train_bench(*o); });
}

SLM_REGISTER_COMMAND(add_train_bench, 106);

}  // namespace slm::cli
