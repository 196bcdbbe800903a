// Model throughput measurement for `slm bench`: prompt and generation tokens/s with their
// spread, plus the traffic and work counts that turn them into fractions of the machine's limits.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace slm {

class Model;

// The KV cache type of the benchmark sessions (the Session default).
constexpr DType k_bench_kv_type = DType::F16;

struct ModelBenchOptions {
  int64_t n_prompt = 128;  // tokens in the one prompt forward call (0: skip)
  int64_t n_gen = 64;      // single-token forward calls after it (0: skip)
  int n_threads = 2;
  int repetitions = 5;  // timed runs, after one untimed warm-up run
  uint64_t seed = 42;   // token ids are drawn from this seed (fixed: runs are comparable)
  // Called after the warm-up and after every timed run, outside the timed regions (slm bench
  // samples the machine's limits there, so limits and runs share the same minutes).
  std::function<Status()> between_runs;
};

// Bytes and operations one forward pass needs, counted from the model's tensors.
struct ModelCost {
  uint64_t matrix_bytes = 0;         // every layer matrix + the output matrix, as stored
  uint64_t small_bytes = 0;          // norms and biases (read every token too)
  uint64_t embd_row_bytes = 0;       // one token-embedding row (the lookup)
  uint64_t bytes_per_gen_token = 0;  // matrix_bytes + small_bytes + embd_row_bytes
  int64_t layer_matrix_params = 0;   // weights of the per-layer matrices (q k v o gate up down)
  int64_t output_params = 0;         // n_vocab * n_embd
};
ModelCost model_cost(const Model& model);

// Floating-point operations of a prompt of p tokens starting at position 0, as the forward
// pass must do them: 2 per multiply-add of every layer matrix for each token, the output
// matrix for the last token only (only its logits are computed), and causal attention
// (q·k and the weighted sum of v over positions 0..t for token t: 4 * n_head * head_dim *
// (t + 1) per layer). Norms, rope and softmax are left out (a fraction of a percent).
struct PromptFlops {
  double matrix = 0;
  double attention = 0;
  double total() const { return matrix + attention; }
};
PromptFlops prompt_flops(const Model& model, int64_t n_prompt);

struct Spread {
  double median = 0, min = 0, max = 0, mean = 0, stddev = 0;
};
Spread spread_of(std::vector<double> v);

struct ModelBenchResult {
  std::vector<double> prompt_tok_s;  // one per repetition
  std::vector<double> gen_tok_s;
  Spread prompt, gen;
  int64_t n_ctx = 0;
  double seconds = 0;  // wall time of all runs incl. warm-up
};

// Runs the warm-up and the repetitions. Each run uses a fresh KV cache (the session is
// truncated to 0), forwards n_prompt random ids in one call, then n_gen single ids one call at
// a time (random ids as well: the cost of a step does not depend on which id it is).
Expected<ModelBenchResult> run_model_bench(const Model& model, const ModelBenchOptions& opts);

// Peak resident set size of this process (VmHWM), bytes; 0 if unavailable.
uint64_t peak_rss_bytes();

}  // namespace slm
