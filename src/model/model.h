// The parametric decoder: ModelConfig (hyper-parameters), ModelWeights (views into mapped
// files), and Model, which owns both plus the tokenizer and chat template. Inference state
// (KV cache, scratch) lives in Session so many can share one Model.
// Canonical tensor names are GGUF's (token_embd.weight, blk.N.attn_q.weight, ...).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace slm {

class Tokenizer;   // tokenizer/tokenizer.h
class ThreadPool;  // core/thread_pool.h

enum class RopeScalingType { none, linear, llama3 };

struct ModelConfig {
  std::string arch;           // "llama", "qwen2", "qwen3", "phi3", ... (GGUF general.architecture)
  std::string name;           // general.name or directory name, informational
  std::string source_format;  // "gguf", "hf", "llama2c"
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;  // usually n_embd / n_head (Qwen3 may differ)
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  // true: rotate adjacent pairs (x[2i], x[2i+1]) as in GGUF "llama" and llama2.c;
  // false: rotate halves (x[i], x[i + d/2]) as in Hugging Face and GGUF qwen2/qwen3/phi3.
  bool rope_interleaved = false;
  RopeScalingType rope_scaling = RopeScalingType::none;
  float rope_factor = 1.0f;            // linear and llama3
  float rope_low_freq_factor = 1.0f;   // llama3
  float rope_high_freq_factor = 4.0f;  // llama3
  int64_t rope_orig_ctx = 8192;        // llama3 original_max_position_embeddings
  bool qkv_bias = false;               // Qwen2
  bool qk_norm = false;                // Qwen3: RMSNorm over head_dim on q and k before rope
  bool tied_embeddings = false;
};

struct LayerWeights {
  TensorView attn_norm;             // (n_embd)
  TensorView wq, wk, wv, wo;        // fused qkv files are split into row ranges at load time
  TensorView bq, bk, bv;            // qkv_bias only
  TensorView q_norm, k_norm;        // qk_norm only, (head_dim)
  TensorView ffn_norm;              // (n_embd)
  TensorView w_gate, w_up, w_down;  // fused gate_up files are split likewise
};

struct ModelWeights {
  TensorView tok_embd;  // (n_vocab rows of n_embd)
  std::vector<LayerWeights> layers;
  TensorView out_norm;
  TensorView output;  // == tok_embd when tied
  // llama3-scaled GGUF files store per-frequency divisors (head_dim/2 floats, F32): the
  // rotation angle of pair i is pos * theta^(-2i/head_dim) / rope_freqs[i]. Empty if absent.
  TensorView rope_freqs;
};

struct LoadOptions {
  std::string tokenizer_path;  // llama2.c tokenizer.bin (required for llama2.c checkpoints)
  // Give Q4_0 and Q5_0 matrices a copy in the CPU kernels' layout (TensorView::x8) and let the
  // kernel drop the file's pages of them, so resident memory stays the size of the file.
  // Skipped when the copies would not fit in the memory available (they cannot be paged back
  // to the file). false: the kernels read the file's bytes (what the tests compare with).
  bool kernel_layouts = true;
  // Most bytes the copies may take; a model whose copies need more keeps the file's rows.
  // 0: nine tenths of MemAvailable at load time.
  uint64_t kernel_layout_budget = 0;
};

class Model {
 public:
  ~Model();
  // MODEL is a GGUF file, a Hugging Face directory, or a llama2.c checkpoint.
  static Expected<std::unique_ptr<Model>> load(const std::string& path,
                                               const LoadOptions& opts = {});

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  const std::string& chat_template() const { return chat_template_; }
  // Extra end-of-generation ids from generation_config.json / GGUF (besides the tokenizer's).
  const std::vector<int32_t>& extra_eos_ids() const { return extra_eos_; }
  int64_t n_params() const;
  // Tensor dtype -> count, for `slm info`.
  std::vector<std::pair<std::string, int64_t>> dtype_histogram() const;

  // Parts are filled by the loaders in model/loader.cpp.
  struct Parts;
  explicit Model(std::unique_ptr<Parts> parts);

 private:
  std::unique_ptr<Parts> parts_;  // mapped files, owned buffers (e.g. converted tensors)
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string chat_template_;
  std::vector<int32_t> extra_eos_;
};

struct SessionOptions {
  int64_t n_ctx = 2048;
  int n_threads = 0;  // 0: all cores
  // F16 (default), F32, or Q8_0 (head_dim a multiple of 32); an unsupported type makes every
  // forward() return an error naming it.
  DType kv_type = DType::F16;
  // Dequantize weights and keep activations in F32 (MatmulMode::float_activations): the
  // arithmetic of a float framework on dequantized weights, for parity checks. Slower.
  bool float_activations = false;
};

// One inference stream: its KV cache (allocated once for n_ctx) and scratch buffers.
// No allocation happens per token.
// Both Session and BatchSession run the same forward pass (model/forward.cpp).
namespace detail {
struct ForwardCore;
}

class Session {
 public:
  Session(const Model& model, const SessionOptions& opts);
  Session(const Model& model, int64_t n_ctx, int n_threads = 0, DType kv_type = DType::F16);
  ~Session();

  DType kv_type() const;
  // Bytes held by the KV cache (allocated in full at construction).
  uint64_t kv_bytes() const;

  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_past() const { return n_past_; }
  // Drops cached positions >= n (n <= n_past).
  void truncate(int64_t n);

  // Appends tokens at position n_past and runs them through the model. Returns the logits of
  // the last token (n_vocab floats), or of every token (tokens.size() x n_vocab, row-major)
  // when all_logits is set. The span is valid until the next call. Errors: context full,
  // token id out of range.
  Expected<std::span<const float>> forward(std::span<const int32_t> tokens,
                                           bool all_logits = false);

 private:
  std::unique_ptr<detail::ForwardCore> core_;
  int64_t n_ctx_;
  int64_t n_past_ = 0;
};

struct BatchSessionOptions {
  int64_t n_seq = 1;     // independent sequences (KV regions)
  int64_t n_ctx = 2048;  // positions per sequence
  int n_threads = 0;     // 0: all cores
  DType kv_type = DType::F16;
  bool float_activations = false;  // as SessionOptions
};

// One token of a batched forward: appended to sequence `seq` at its next position.
struct BatchEntry {
  int32_t seq = 0;
  int32_t token = 0;
  bool logits = true;  // return this entry's logits
};

// Many inference streams over one model: n_seq KV regions of n_ctx positions each, all run by
// one forward pass over a list of (sequence, token) entries, e.g. the next token of every
// active request of a server. Arithmetic (what makes results bit-identical):
//   - a call whose entries all belong to ONE sequence computes exactly what Session::forward
//     does for the same tokens at the same positions (same chunking, same kernels);
//   - a call spanning several sequences uses batch-invariant kernels (MatmulMode::
//     fast_invariant), so each entry's logits are bit-identical to running it alone as a
//     one-token call, whatever its neighbours and their number.
class BatchSession {
 public:
  BatchSession(const Model& model, const BatchSessionOptions& opts);
  ~BatchSession();

  int64_t n_seq() const { return n_seq_; }
  int64_t n_ctx() const { return n_ctx_; }
  DType kv_type() const;
  uint64_t kv_bytes() const;  // all sequences
  int64_t n_past(int64_t seq) const;
  // Tokens per internal chunk (as Session): a one-sequence call of at most this many tokens is
  // one pass; longer calls are split at multiples of it.
  int64_t chunk_tokens() const;
  // The threads of the forward pass, for work between passes (e.g. sampling per sequence).
  ThreadPool& thread_pool();
  // Drops sequence seq's cached positions >= n (n <= n_past); truncate(seq, 0) frees it for a
  // new stream. Out-of-range seq: no-op.
  void truncate(int64_t seq, int64_t n);

  // Appends each entry's token to its sequence, in order: the i-th entry of sequence s in this
  // call sits at n_past(s) + (entries of s before it in this call). Returns the logits of the
  // entries with `logits` set, in entry order (rows of n_vocab floats). The span is valid until
  // the next call. Errors (nothing is appended): empty list, sequence or token id out of range,
  // a sequence's context full. invariant: the batch-invariant kernels even when every entry
  // belongs to one sequence (a server's decode step, whatever the number of active requests).
  Expected<std::span<const float>> forward(std::span<const BatchEntry> entries,
                                           bool invariant = false);

 private:
  std::unique_ptr<detail::ForwardCore> core_;
  int64_t n_seq_;
  int64_t n_ctx_;
  std::vector<int64_t> n_past_;  // per sequence
  std::vector<int64_t> count_;   // scratch: entries per sequence in one call
};

}  // namespace slm
