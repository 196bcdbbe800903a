// Model throughput runs (warm-up, fresh KV cache per repetition, timed prompt and generation)
// and the byte/flop accounting that relates them to the machine's measured limits.
#include "bench/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>

#include "model/model.h"

namespace slm {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

ModelCost model_cost(const Model& model) {
  const ModelWeights& w = model.weights();
  ModelCost c;
  auto matrix = [&](const TensorView& v) {
    c.matrix_bytes += v.nbytes;
    c.layer_matrix_params += v.nelements();
  };
  auto small = [&](const TensorView& v) { c.small_bytes += v.data ? v.nbytes : 0; };
  for (const LayerWeights& L : w.layers) {
    for (const TensorView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      matrix(*m);
    }
    for (const TensorView* v : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv, &L.q_norm, &L.k_norm}) {
      small(*v);
    }
  }
  small(w.out_norm);
  // The output matrix is read whole every token (tied or not); the embedding lookup reads one
  // row of token_embd (for a tied model that row is also part of the output read, but the
  // lookup happens at a different time, so it is counted once more: it is 1/n_vocab of it).
  c.matrix_bytes += w.output.nbytes;
  c.output_params = w.output.nelements();
  c.embd_row_bytes = w.tok_embd.row_bytes();
  c.bytes_per_gen_token = c.matrix_bytes + c.small_bytes + c.embd_row_bytes;
  return c;
}

PromptFlops prompt_flops(const Model& model, int64_t n_prompt) {
  const ModelConfig& cfg = model.config();
  const ModelCost c = model_cost(model);
  const double p = static_cast<double>(n_prompt);
  PromptFlops f;
  if (n_prompt <= 0) return f;
  f.matrix = 2.0 * static_cast<double>(c.layer_matrix_params) * p +
             2.0 * static_cast<double>(c.output_params);
  f.attention = 4.0 * static_cast<double>(cfg.n_layer) * static_cast<double>(cfg.n_head) *
                static_cast<double>(cfg.head_dim) * (p * (p + 1.0) / 2.0);
  return f;
}

Spread spread_of(std::vector<double> v) {
  Spread s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(n);
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.stddev = n > 1 ? std::sqrt(ss / static_cast<double>(n - 1)) : 0.0;
  return s;
}

Expected<ModelBenchResult> run_model_bench(const Model& model, const ModelBenchOptions& o) {
  if (o.n_prompt < 0 || o.n_gen < 0 || o.n_prompt + o.n_gen == 0) {
    return error("bench: need a positive prompt length or generation count (got -p %lld -n %lld)",
                 (long long)o.n_prompt, (long long)o.n_gen);
  }
  if (o.n_prompt > 1000000 || o.n_gen > 1000000) return error("bench: -p/-n above 1000000");
  if (o.repetitions < 1 || o.repetitions > 1000) {
    return error("bench: repetitions %d out of range [1, 1000]", o.repetitions);
  }
  if (o.n_threads < 1 || o.n_threads > 1024) {
    return error("bench: threads %d out of range [1, 1024]", o.n_threads);
  }
  const int64_t V = model.config().n_vocab;
  if (V <= 0) return error("bench: model has no vocabulary");

  ModelBenchResult r;
  r.n_ctx = o.n_prompt + o.n_gen;
  auto t_all = Clock::now();
  Session session(model, r.n_ctx, o.n_threads, k_bench_kv_type);
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> pick(0, V - 1);
  std::vector<int32_t> prompt(static_cast<size_t>(o.n_prompt));
  std::vector<int32_t> gen(static_cast<size_t>(o.n_gen));
  for (auto& t : prompt) t = static_cast<int32_t>(pick(rng));
  for (auto& t : gen) t = static_cast<int32_t>(pick(rng));

  for (int rep = -1; rep < o.repetitions; ++rep) {  // rep -1: warm-up (faults in the weights)
    session.truncate(0);
    if (o.n_prompt > 0) {
      auto t0 = Clock::now();
      auto out = session.forward(prompt);
      if (!out.ok()) return out.status();
      const double sec = seconds_since(t0);
      if (!std::isfinite((*out)[0])) {
        return error("bench: the prompt's logits are not finite (logit 0 = %g)", (*out)[0]);
      }
      if (rep >= 0) r.prompt_tok_s.push_back(static_cast<double>(o.n_prompt) / sec);
    }
    if (o.n_gen > 0) {
      auto t0 = Clock::now();
      float last = 0;
      for (int64_t i = 0; i < o.n_gen; ++i) {
        auto out = session.forward(std::span<const int32_t>(&gen[static_cast<size_t>(i)], 1));
        if (!out.ok()) return out.status();
        last = (*out)[0];
      }
      const double sec = seconds_since(t0);
      if (!std::isfinite(last)) return error("bench: generated logits are not finite");
      if (rep >= 0) r.gen_tok_s.push_back(static_cast<double>(o.n_gen) / sec);
    }
    if (o.between_runs) SLM_TRY(o.between_runs());
  }
  r.prompt = spread_of(r.prompt_tok_s);
  r.gen = spread_of(r.gen_tok_s);
  r.seconds = seconds_since(t_all);
  return r;
}

uint64_t peak_rss_bytes() {
  // VmHWM is the high-water mark of the resident set, including mapped weight pages.
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f) {
    char line[256];
    unsigned long long kb = 0;
    bool found = false;
    while (std::fgets(line, sizeof line, f)) {
      if (std::sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
        found = true;
        break;
      }
    }
    std::fclose(f);
    if (found) return static_cast<uint64_t>(kb) * 1024;
  }
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) == 0) return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
  return 0;
}

}  // namespace slm
