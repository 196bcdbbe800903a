// The trainable Llama-style decoder: F32 parameters and gradients, a hand-written forward and
// backward pass for every op, and the optimizer and schedule the training loop drives.
// Ops: embedding, RMSNorm, rope (halves, as Hugging Face), GQA causal attention, SwiGLU, and
// cross-entropy fused with the output projection (the B*T x vocab probability matrix is never
// stored whole). Results are bit-identical for the same inputs and thread count, whatever the
// scheduling, so a resumed run repeats an uninterrupted one exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace slm {
class ThreadPool;
}

namespace slm::train {

struct TrainModelConfig {
  int64_t vocab_size = 0;
  int64_t dim = 0;         // hidden_size
  int64_t n_layers = 0;    // num_hidden_layers
  int64_t n_heads = 0;     // num_attention_heads
  int64_t n_kv_heads = 0;  // num_key_value_heads (divides n_heads)
  int64_t ffn_dim = 0;     // intermediate_size
  int64_t max_seq_len = 0; // max_position_embeddings
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  bool tied_embeddings = true;
  float init_std = 0.02f;  // normal init of matrices; norms start at 1
};

// Checks every field (positive, divisibility, head_dim even, sizes that fit memory).
Status validate(const TrainModelConfig& c);

// One parameter tensor. Names and shapes are Hugging Face Llama's (PyTorch order, (out, in)
// for matrices): model.embed_tokens.weight, model.layers.N.input_layernorm.weight,
// model.layers.N.self_attn.{q,k,v,o}_proj.weight, model.layers.N.post_attention_layernorm.weight,
// model.layers.N.mlp.{gate,up,down}_proj.weight, model.norm.weight, lm_head.weight (untied only).
struct Param {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  float* value = nullptr;
  float* grad = nullptr;
  bool decay = false;  // AdamW weight decay applies (matrices and embeddings, not norms)
};

class TrainModel {
 public:
  static Expected<std::unique_ptr<TrainModel>> create(const TrainModelConfig& c, int n_threads);
  virtual ~TrainModel() = default;

  virtual const TrainModelConfig& config() const = 0;
  // Deterministic init from a seed (same seed, same weights on every machine).
  virtual void init_weights(uint64_t seed) = 0;
  virtual std::span<Param> params() = 0;
  virtual int64_t n_params() const = 0;

  // B sequences of T tokens (row-major B x T), T <= max_seq_len; targets likewise, -1 = not
  // counted. Adds d(loss_scale * mean loss)/d(param) into every grad and returns the mean
  // loss over counted targets. Gradient accumulation: call k times with loss_scale 1/k.
  virtual Expected<double> forward_backward(const int32_t* tokens, const int32_t* targets,
                                            int64_t B, int64_t T, float loss_scale = 1.0f) = 0;
  // Mean loss only (validation); no gradients touched.
  virtual Expected<double> eval_loss(const int32_t* tokens, const int32_t* targets, int64_t B,
                                     int64_t T) = 0;
  virtual void zero_grads() = 0;
  // The model's thread pool (n_threads of create), for the optimizer and gradient norms.
  virtual ThreadPool* pool() = 0;
};

// Global L2 norm of all gradients, and clipping to max_norm (returns the norm before clipping).
// As torch.nn.utils.clip_grad_norm_: grads are scaled by max_norm / (norm + 1e-6) when that is
// below 1. The sum runs over fixed blocks in a fixed order: the same value for any pool.
double grad_norm(std::span<const Param> params, ThreadPool* pool = nullptr);
double clip_grad_norm(std::span<Param> params, double max_norm, ThreadPool* pool = nullptr);

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // decoupled: w -= lr * wd * w, for params with decay set
};

// AdamW as torch.optim.AdamW (bias-corrected moments, decoupled weight decay).
class AdamW {
 public:
  AdamW(std::span<const Param> params, const AdamWConfig& cfg);
  // One update of every param from its grad (grads are not cleared). pool splits elements.
  void step(std::span<Param> params, float lr, ThreadPool* pool = nullptr);
  int64_t steps() const { return t_; }
  // Moments and step count, for checkpoints (raw little-endian floats, m then v per param).
  std::string serialize_state() const;
  Status restore_state(std::string_view bytes);  // error on any size mismatch

 private:
  AdamWConfig cfg_;
  int64_t t_ = 0;
  std::vector<std::vector<float>> m_, v_;
};

// Linear warm-up from 0 to max_lr over warmup steps, then cosine decay to min_lr at total.
// step counts from 0: step < warmup gives max_lr * (step + 1) / warmup (the first update is
// not wasted at lr 0); warmup <= step <= total gives min_lr + (max_lr - min_lr) * (1 +
// cos(pi * (step - warmup) / (total - warmup))) / 2; after total, min_lr.
float lr_at(int64_t step, int64_t warmup, int64_t total, float max_lr, float min_lr);

}  // namespace slm::train
