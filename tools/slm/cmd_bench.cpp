// `slm bench`: prompt and generation speed of a model, with the machine's own limits (read
// bandwidth, FP32 GEMM peak) measured in the same run; `--make-model` writes benchmark models.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "bench/bench.h"
#include "bench/limit_probe.h"
#include "bench/synth_model.h"
#include "commands.h"
#include "model/model.h"

namespace slm::cli {

namespace {

struct BenchCliOptions {
  std::string model;
  std::string tokenizer;
  ModelBenchOptions run;
  bool json = false;
  int64_t bw_mib = 512;
  int bw_passes = 4;
  double gemm_seconds = 1.0;
  bool no_limits = false;
  std::string make_model;  // preset name: MODEL is then the output path
  std::string make_type = "F32";
  uint64_t make_seed = 1;
};

uint64_t path_bytes(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return fs::file_size(path, ec);
  uint64_t total = 0;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path, ec)) {
      if (e.is_regular_file(ec)) total += e.file_size(ec);
    }
  }
  return total;
}

// The storage type of the weight matrices: one name, or "mixed(A+B)".
std::string matrix_types(const Model& m) {
  std::set<std::string> names;
  for (const LayerWeights& L : m.weights().layers) {
    for (const TensorView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      names.insert(dtype_name(v->dtype));
    }
  }
  names.insert(dtype_name(m.weights().output.dtype));
  if (names.size() == 1) return *names.begin();
  std::string s = "mixed(";
  for (const auto& n : names) s += (s.size() > 6 ? "+" : "") + n;
  return s + ")";
}

nlohmann::ordered_json spread_json(const Spread& s, const std::vector<double>& runs) {
  nlohmann::ordered_json j;
  j["median"] = s.median;
  j["min"] = s.min;
  j["max"] = s.max;
  j["mean"] = s.mean;
  j["stddev"] = s.stddev;
  j["runs"] = runs;
  return j;
}

int run_make_model(const BenchCliOptions& o) {
  const SynthModelSpec* spec = find_synth_preset(o.make_model);
  if (!spec) {
    std::string names;
    for (const auto& n : synth_preset_names()) names += (names.empty() ? "" : ", ") + n;
    return fail(error("--make-model: unknown preset '%s' (known: %s)", o.make_model.c_str(),
                      names.c_str()));
  }
  SynthWriteOptions wo;
  if (!dtype_from_name(o.make_type, &wo.matrix_type)) {
    return fail(error("--type: unknown type '%s'", o.make_type.c_str()));
  }
  wo.seed = o.make_seed;
  auto size = synth_model_file_size(*spec, wo);
  if (!size.ok()) return fail(size.status());
  const bool show = *size > (256ull << 20);
  wo.progress = [show](uint64_t done, uint64_t total) {
    if (show) std::fprintf(stderr, "\r[%5.1f%%]", 100.0 * static_cast<double>(done) / static_cast<double>(total));
  };
  Status st = write_synth_model_gguf(*spec, o.model, wo);
  if (show) std::fprintf(stderr, "\n");
  if (!st.ok()) return fail(st);
  std::fprintf(stderr, "wrote %s: %s, %s matrices, %.1f MB\n", o.model.c_str(), spec->preset.c_str(),
               dtype_name(wo.matrix_type), static_cast<double>(*size) / 1e6);
  return 0;
}

int run_bench(const BenchCliOptions& o) {
  if (!o.make_model.empty()) return run_make_model(o);
  if (o.bw_mib < 1 || o.bw_mib > 65536) return fail(error("--bw-mib must be in [1, 65536]"));
  if (!(o.gemm_seconds >= 0 && o.gemm_seconds <= 600)) {
    return fail(error("--gemm-seconds must be in [0, 600]"));
  }
  // The limits are sampled by a child process between the timed runs (after the warm-up and
  // after each run), forked now, before this process starts any thread.
  std::unique_ptr<LimitProbe> probe;
  ModelBenchOptions run = o.run;
  if (!o.no_limits) {
    BandwidthOptions bo;
    bo.n_threads = o.run.n_threads;
    bo.buffer_bytes = static_cast<uint64_t>(o.bw_mib) << 20;
    bo.passes = o.bw_passes;
    auto p = LimitProbe::start(bo, o.run.n_threads);
    if (!p.ok()) return fail(p.status());
    probe = std::move(*p);
    const double per_sample = o.gemm_seconds / static_cast<double>(std::max(1, o.run.repetitions) + 1);
    run.between_runs = [&probe, per_sample] { return probe->sample(per_sample); };
  }
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  auto loaded = Model::load(o.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = **loaded;
  const ModelConfig& cfg = model.config();

  auto res = run_model_bench(model, run);
  if (!res.ok()) return fail(res.status());
  const uint64_t rss = peak_rss_bytes();
  const ModelCost cost = model_cost(model);
  const PromptFlops pf = prompt_flops(model, o.run.n_prompt);
  const uint64_t file_bytes = path_bytes(o.model);

  // Both limits as the best and the median sample. The FP32 GEMM peak is slm's own sgemm on a
  // 1024^3 problem with the same thread count (the prompt path multiplies through the same
  // micro-kernel). The best figures are the limits; the medians, set against the runs' medians,
  // show how much of a shortfall is the machine's other tenants (they move both the same way).
  const bool have_bw = probe && !probe->bandwidth_passes().empty();
  const Spread bw = have_bw ? spread_of(probe->bandwidth_passes()) : Spread{};
  const Spread gemm = have_bw ? spread_of(probe->gemm_samples()) : Spread{};
  const double gemm_gflops = gemm.max;

  const bool has_p = o.run.n_prompt > 0, has_g = o.run.n_gen > 0;
  // Prompt GFLOP/s at the median speed: flops of one prompt / (p / tok_s) seconds.
  const double prompt_gflops =
      has_p ? pf.total() * res->prompt.median / static_cast<double>(o.run.n_prompt) / 1e9 : 0.0;
  // The bandwidth bound: a generated token must stream bytes_per_gen_token from memory.
  const double bound_tok_s =
      have_bw ? bw.max * 1e9 / static_cast<double>(cost.bytes_per_gen_token) : 0.0;
  const double median_bound_tok_s =
      have_bw ? bw.median * 1e9 / static_cast<double>(cost.bytes_per_gen_token) : 0.0;

  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = o.model;
    j["arch"] = cfg.arch;
    j["name"] = cfg.name;
    j["weight_type"] = matrix_types(model);
    j["n_params"] = model.n_params();
    j["file_bytes"] = file_bytes;
    j["threads"] = o.run.n_threads;
    j["n_prompt"] = o.run.n_prompt;
    j["n_gen"] = o.run.n_gen;
    j["repetitions"] = o.run.repetitions;
    j["warmup_runs"] = 1;
    j["seed"] = o.run.seed;
    if (has_p) {
      nlohmann::ordered_json p;
      p["tok_s"] = spread_json(res->prompt, res->prompt_tok_s);
      p["flops_per_prompt"] = pf.total();
      p["matrix_flops"] = pf.matrix;
      p["attention_flops"] = pf.attention;
      p["flops_counted"] =
          "2*layer matrix params*p + 2*output params (last token's logits only) + causal "
          "attention 4*n_layer*n_head*head_dim*p*(p+1)/2; norms/rope/softmax not counted";
      p["gflops"] = prompt_gflops;
      if (have_bw && gemm_gflops > 0) {
        p["fraction_of_gemm_peak"] = prompt_gflops / gemm_gflops;
        p["fraction_of_gemm_median"] = prompt_gflops / gemm.median;
      }
      j["prompt"] = p;
    }
    if (has_g) {
      nlohmann::ordered_json g;
      g["tok_s"] = spread_json(res->gen, res->gen_tok_s);
      g["bytes_per_token"] = cost.bytes_per_gen_token;
      g["bytes_counted"] =
          "every layer matrix + output matrix + norms/biases + one token_embd row, as stored; "
          "KV cache reads not counted";
      // Not in the bound, shown so its share can be judged: the session's K and V rows (F16,
      // k_bench_kv_type) read by attention, averaged over the generated tokens (positions p ..
      // p + n - 1).
      const double mean_pos = static_cast<double>(o.run.n_prompt) + 0.5 * static_cast<double>(o.run.n_gen + 1);
      static_assert(k_bench_kv_type == DType::F16, "KV bytes below assume F16 rows");
      g["kv_cache_bytes_per_token"] = 2.0 * static_cast<double>(cfg.n_layer * cfg.n_head_kv * cfg.head_dim) *
                                      2.0 * mean_pos;
      if (have_bw) {
        g["bandwidth_bound_tok_s"] = bound_tok_s;
        g["fraction_of_bound"] = res->gen.median / bound_tok_s;
        g["bandwidth_bound_at_median_tok_s"] = median_bound_tok_s;
        g["fraction_of_median_bound"] = res->gen.median / median_bound_tok_s;
      }
      j["gen"] = g;
    }
    nlohmann::ordered_json m;
    if (have_bw) {
      const BandwidthOptions& bo = probe->bandwidth_options();
      m["read_bandwidth_gbs"] = bw.max;
      m["read_bandwidth_statistic"] = "best pass";
      m["read_bandwidth_median_gbs"] = bw.median;
      m["read_bandwidth_passes_gbs"] = probe->bandwidth_passes();
      m["read_bandwidth_sampling"] = "passes after the warm-up and after each timed run";
      m["read_bandwidth_buffer_bytes"] = bo.buffer_bytes;
      m["read_bandwidth_threads"] = bo.n_threads;
      m["read_kernel"] = probe->avx2() ? "avx2" : "scalar";
      m["gemm_peak_gflops"] = gemm_gflops;
      m["gemm_median_gflops"] = gemm.median;
      m["gemm_samples_gflops"] = probe->gemm_samples();
      m["gemm_statistic"] =
          "best of the samples (each the best sgemm M=N=K=1024 run of a short burst; slm's "
          "kernel, same threads), one after the warm-up and after each timed run";
    }
    j["machine"] = m;
    j["peak_rss_bytes"] = rss;
    j["seconds"] = res->seconds;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }

  std::printf("model    %s: %s, %.1f M params, %s weights, %.1f MB file\n", o.model.c_str(),
              cfg.arch.c_str(), static_cast<double>(model.n_params()) / 1e6,
              matrix_types(model).c_str(), static_cast<double>(file_bytes) / 1e6);
  std::printf("run      %d threads, %d timed runs after 1 warm-up, fresh KV cache each run\n",
              o.run.n_threads, o.run.repetitions);
  if (have_bw) {
    const BandwidthOptions& bo = probe->bandwidth_options();
    std::printf("machine  read bandwidth %.2f GB/s best, %.2f median (%zu passes over %llu MiB "
                "between the timed runs, %d threads, %s)\n",
                bw.max, bw.median, probe->bandwidth_passes().size(),
                (unsigned long long)(bo.buffer_bytes >> 20), bo.n_threads,
                probe->avx2() ? "avx2" : "scalar");
    std::printf("machine  FP32 GEMM peak %.1f GFLOP/s best, %.1f median (sgemm 1024^3 between "
                "the timed runs, %d threads)\n",
                gemm_gflops, gemm.median, o.run.n_threads);
  }
  std::printf("\n%-8s %12s %21s   %s\n", "test", "tok/s median", "min .. max (stddev)", "versus the limit");
  if (has_p) {
    std::printf("pp%-6lld %12.2f %8.2f .. %-8.2f (%.2f)   ", (long long)o.run.n_prompt,
                res->prompt.median, res->prompt.min, res->prompt.max, res->prompt.stddev);
    if (have_bw && gemm_gflops > 0) {
      std::printf("%.1f%% of the GEMM peak (%.1f%% of its median): %.2f GFLOP/s (%.3g GFLOP "
                  "per prompt)\n",
                  100.0 * prompt_gflops / gemm_gflops, 100.0 * prompt_gflops / gemm.median,
                  prompt_gflops, pf.total() / 1e9);
    } else {
      std::printf("%.2f GFLOP/s (%.3g GFLOP per prompt)\n", prompt_gflops, pf.total() / 1e9);
    }
  }
  if (has_g) {
    std::printf("tg%-6lld %12.2f %8.2f .. %-8.2f (%.2f)   ", (long long)o.run.n_gen, res->gen.median,
                res->gen.min, res->gen.max, res->gen.stddev);
    if (have_bw) {
      std::printf("%.1f%% of the bandwidth bound %.2f tok/s (%.1f%% of %.2f at the median "
                  "bandwidth; %.1f MB per token)\n",
                  100.0 * res->gen.median / bound_tok_s, bound_tok_s,
                  100.0 * res->gen.median / median_bound_tok_s, median_bound_tok_s,
                  static_cast<double>(cost.bytes_per_gen_token) / 1e6);
    } else {
      std::printf("%.1f MB per token\n", static_cast<double>(cost.bytes_per_gen_token) / 1e6);
    }
  }
  std::printf("\npeak RSS %.1f MB (weights are memory-mapped and count once touched)\n",
              static_cast<double>(rss) / 1e6);
  return 0;
}

}  // namespace

void add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "bench",
      "Prompt and generation speed, with the machine's read bandwidth measured in the same run.\n"
      "  slm bench MODEL [-p 128 -n 64 -t 2 -r 5] [--json]\n"
      "  slm bench --make-model PRESET [--type F32] OUT.gguf   (random weights, real shapes)");
  sub->add_option("MODEL", o->model, "model to measure (with --make-model: the output file)")
      ->required();
  sub->add_option("-p,--n-prompt", o->run.n_prompt, "prompt tokens, one forward call (0: skip)")
      ->capture_default_str();
  sub->add_option("-n,--n-gen", o->run.n_gen, "generated tokens, one call each (0: skip)")
      ->capture_default_str();
  sub->add_option("-t,--threads", o->run.n_threads, "threads")->capture_default_str();
  sub->add_option("-r,--repetitions", o->run.repetitions, "timed runs (after one warm-up)")
      ->capture_default_str();
  sub->add_option("--seed", o->run.seed, "seed of the random token ids")->capture_default_str();
  sub->add_flag("--json", o->json, "print one JSON object (for scripts)");
  sub->add_option("--bw-mib", o->bw_mib, "bandwidth test buffer, MiB (keep far above L3)")
      ->capture_default_str();
  sub->add_option("--bw-passes", o->bw_passes,
                  "bandwidth passes per sample; a sample follows the warm-up and every timed "
                  "run (the best pass is the limit)")
      ->capture_default_str();
  sub->add_option("--gemm-seconds", o->gemm_seconds,
                  "minimum time of the GEMM peak test, split over the samples")
      ->capture_default_str();
  sub->add_flag("--no-limits", o->no_limits, "skip measuring the machine's limits");
  sub->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin");
  std::string presets;
  for (const auto& n : synth_preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  sub->add_option("--make-model", o->make_model,
                  "write a random-weight model with a preset's shapes to MODEL (" + presets + ")");
  sub->add_option("--type", o->make_type, "matrix type for --make-model (F32, F16, BF16, Q8_0, Q4_0, ...)")
      ->capture_default_str();
  sub->add_option("--make-seed", o->make_seed, "weight seed for --make-model")->capture_default_str();
  sub->callback([o] { exit_code() = run_bench(*o); });
}
SLM_REGISTER_COMMAND(add_bench, 80);

}  // namespace slm::cli
