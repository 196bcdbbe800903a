// The trainable Llama-style decoder: parameter layout, the forward pass that keeps what the
// backward pass needs, the fused output-projection + cross-entropy, and the backward pass.
#include "train/train_model.h"

// Shapes: B sequences of T tokens, N = B*T rows; D = dim, F = ffn_dim, H / Hk heads,
// hd = D / H, Dkv = Hk*hd, Dqkv = D + 2*Dkv, V = vocab. Matrices are PyTorch (out, in).
// q, k, v weights are stored back to back (and so are their gradients), as are gate and up,
// so each group is one GEMM: qkv = h1 · [Wq; Wk; Wv]ᵀ, gu = h2 · [Wgate; Wup]ᵀ.

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "train/train_ops.h"

namespace slm::train {

namespace {

// Rows of logits computed at a time by the fused output projection + cross-entropy.
constexpr int64_t k_ce_rows = 256;

// splitmix64: a tiny generator whose output is the same on every platform (std:: random
// distributions are not), so init_weights(seed) gives the same weights everywhere.
struct SplitMix : SplitMix64 {
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
};

struct LayerView {
  float *attn_norm, *wqkv, *wo, *ffn_norm, *wgu, *wdown;
};

// What the backward pass reads, per layer. Sized for the largest B*T seen so far.
struct LayerActs {
  std::vector<float> x;      // (N, D) layer input (residual stream)
  std::vector<float> h1;     // (N, D) rmsnorm(x)
  std::vector<float> rstd1;  // (N)
  std::vector<float> qkv;    // (N, Dqkv), q and k after rope
  std::vector<float> lse;    // (B, H, T) log Σ exp of each attention score row
  std::vector<float> att;    // (N, D) attention output before o_proj
  std::vector<float> xmid;   // (N, D) x + o_proj(att)
  std::vector<float> h2;     // (N, D) rmsnorm(xmid)
  std::vector<float> rstd2;  // (N)
  std::vector<float> gu;     // (N, 2F) gate | up before the activation
  std::vector<float> act;    // (N, F) silu(gate) * up
};

void grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.assign(static_cast<size_t>(n), 0.0f);
}

class TrainModelImpl final : public TrainModel {
 public:
  TrainModelImpl(const TrainModelConfig& c, int n_threads) : c_(c), pool_(n_threads) {
    hd_ = c.dim / c.n_heads;
    dkv_ = c.n_kv_heads * hd_;
    dqkv_ = c.dim + 2 * dkv_;
    layout();
    rope_cos_.resize(static_cast<size_t>(c.max_seq_len * (hd_ / 2)));
    rope_sin_.resize(rope_cos_.size());
    rope_tables(c.max_seq_len, hd_, c.rope_theta, rope_cos_.data(), rope_sin_.data());
    layers_.resize(static_cast<size_t>(c.n_layers));
    init_weights(0);
  }

  const TrainModelConfig& config() const override { return c_; }
  std::span<Param> params() override { return params_; }
  int64_t n_params() const override { return static_cast<int64_t>(values_.size()); }
  ThreadPool* pool() override { return &pool_; }

  void init_weights(uint64_t seed) override {
    SplitMix rng{{seed}};
    for (Param& p : params_) {
      if (!p.decay) {
        std::fill(p.value, p.value + p.numel, 1.0f);
        continue;
      }
      // Box-Muller in double: two uniforms give two normals.
      for (int64_t i = 0; i < p.numel; i += 2) {
        const double r = std::sqrt(-2.0 * std::log(rng.uniform())), a = 6.283185307179586 * rng.uniform();
        p.value[i] = static_cast<float>(c_.init_std * r * std::cos(a));
        if (i + 1 < p.numel) p.value[i + 1] = static_cast<float>(c_.init_std * r * std::sin(a));
      }
    }
  }

  void zero_grads() override {
    float* g = grads_.data();
    const int64_t n = static_cast<int64_t>(grads_.size());
    pool_.parallel_for(n, [g](int64_t b, int64_t e) { std::fill(g + b, g + e, 0.0f); }, 1 << 16);
  }

  Expected<double> forward_backward(const int32_t* tokens, const int32_t* targets, int64_t B,
                                    int64_t T, float loss_scale) override {
    SLM_TRY(check_batch(tokens, targets, B, T));
    if (!std::isfinite(loss_scale)) return error("forward_backward: loss_scale is not finite");
    forward(tokens, B, T);
    const double loss = output_loss(targets, B * T, loss_scale, true);
    backward(tokens, B, T);
    return loss;
  }

  Expected<double> eval_loss(const int32_t* tokens, const int32_t* targets, int64_t B,
                             int64_t T) override {
    SLM_TRY(check_batch(tokens, targets, B, T));
    forward(tokens, B, T);
    return output_loss(targets, B * T, 1.0f, false);
  }

 private:
  // ---- parameters ----------------------------------------------------------------------------

  void layout() {
    const int64_t D = c_.dim, F = c_.ffn_dim, V = c_.vocab_size;
    struct Spec {
      std::string name;
      std::vector<int64_t> shape;
      bool decay;
    };
    std::vector<Spec> specs;
    specs.push_back({"model.embed_tokens.weight", {V, D}, true});
    for (int64_t l = 0; l < c_.n_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      specs.push_back({p + "input_layernorm.weight", {D}, false});
      specs.push_back({p + "self_attn.q_proj.weight", {D, D}, true});
      specs.push_back({p + "self_attn.k_proj.weight", {dkv_, D}, true});
      specs.push_back({p + "self_attn.v_proj.weight", {dkv_, D}, true});
      specs.push_back({p + "self_attn.o_proj.weight", {D, D}, true});
      specs.push_back({p + "post_attention_layernorm.weight", {D}, false});
      specs.push_back({p + "mlp.gate_proj.weight", {F, D}, true});
      specs.push_back({p + "mlp.up_proj.weight", {F, D}, true});
      specs.push_back({p + "mlp.down_proj.weight", {D, F}, true});
    }
    specs.push_back({"model.norm.weight", {D}, false});
    if (!c_.tied_embeddings) specs.push_back({"lm_head.weight", {V, D}, true});
    int64_t total = 0;
    std::vector<int64_t> offsets;
    for (const Spec& s : specs) {
      int64_t n = 1;
      for (int64_t d : s.shape) n *= d;
      offsets.push_back(total);
      total += n;
    }
    values_.assign(static_cast<size_t>(total), 0.0f);
    grads_.assign(static_cast<size_t>(total), 0.0f);
    for (size_t i = 0; i < specs.size(); ++i) {
      Param p;
      p.name = specs[i].name;
      p.shape = specs[i].shape;
      p.numel = (i + 1 < specs.size() ? offsets[i + 1] : total) - offsets[i];
      p.value = values_.data() + offsets[i];
      p.grad = grads_.data() + offsets[i];
      p.decay = specs[i].decay;
      params_.push_back(std::move(p));
    }
    embed_ = 0;
    final_norm_ = 1 + 9 * c_.n_layers;
    lm_head_ = c_.tied_embeddings ? 0 : final_norm_ + 1;
  }

  // Weights (or, with grad = true, their gradients) of layer l; q/k/v and gate/up are adjacent.
  LayerView layer(int64_t l, bool grad) {
    auto at = [&](int64_t k) { return grad ? params_[static_cast<size_t>(k)].grad : params_[static_cast<size_t>(k)].value; };
    const int64_t base = 1 + 9 * l;
    return {at(base), at(base + 1), at(base + 4), at(base + 5), at(base + 6), at(base + 8)};
  }
  float* w(size_t k) { return params_[k].value; }
  float* g(size_t k) { return params_[k].grad; }

  // ---- batch checks and buffers --------------------------------------------------------------

  Status check_batch(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T) const {
    if (B < 1 || T < 1) return error("batch: B = %lld, T = %lld (both must be >= 1)", static_cast<long long>(B), static_cast<long long>(T));
    if (T > c_.max_seq_len) return error("batch: T = %lld exceeds max_seq_len %lld", static_cast<long long>(T), static_cast<long long>(c_.max_seq_len));
    if (B > (int64_t{1} << 31) / T) return error("batch: B*T = %lld x %lld is too large", static_cast<long long>(B), static_cast<long long>(T));
    if (tokens == nullptr || targets == nullptr) return error("batch: null tokens or targets");
    const int64_t n = B * T;
    for (int64_t i = 0; i < n; ++i) {
      if (tokens[i] < 0 || tokens[i] >= c_.vocab_size) {
        return error("batch: token %d at position %lld is outside the vocabulary [0, %lld)", tokens[i], static_cast<long long>(i), static_cast<long long>(c_.vocab_size));
      }
      if (targets[i] < -1 || targets[i] >= c_.vocab_size) {
        return error("batch: target %d at position %lld is outside [-1, %lld)", targets[i], static_cast<long long>(i), static_cast<long long>(c_.vocab_size));
      }
    }
    return Status();
  }

  void ensure_buffers(int64_t B, int64_t T) {
    const int64_t N = B * T, D = c_.dim, F = c_.ffn_dim;
    for (LayerActs& a : layers_) {
      grow(a.x, N * D);
      grow(a.h1, N * D);
      grow(a.rstd1, N);
      grow(a.qkv, N * dqkv_);
      grow(a.lse, B * c_.n_heads * T);
      grow(a.att, N * D);
      grow(a.xmid, N * D);
      grow(a.h2, N * D);
      grow(a.rstd2, N);
      grow(a.gu, N * 2 * F);
      grow(a.act, N * F);
    }
    grow(xf_, N * D);
    grow(hf_, N * D);
    grow(rstdf_, N);
    grow(dx_, N * D);
    grow(dh_, N * D);
    grow(dsmall_, N * std::max(D, F));
    grow(dbig_, N * std::max(dqkv_, 2 * F));
    grow(attn_scratch_, static_cast<int64_t>(pool_.n_threads()) * 2 * T * T);
    grow(logits_, std::min(N, k_ce_rows) * c_.vocab_size);
    grow(row_loss_, N);
  }

  // ---- forward -------------------------------------------------------------------------------

  void forward(const int32_t* tokens, int64_t B, int64_t T) {
    ensure_buffers(B, T);
    const int64_t N = B * T, D = c_.dim, F = c_.ffn_dim;
    ThreadPool* pool = &pool_;
    embedding_forward(w(embed_), tokens, N, D, layers_[0].x.data(), pool);
    const AttnShape as{B, T, c_.n_heads, c_.n_kv_heads, hd_, dqkv_, D};
    for (int64_t l = 0; l < c_.n_layers; ++l) {
      LayerActs& a = layers_[static_cast<size_t>(l)];
      const LayerView lw = layer(l, false);
      float* next = l + 1 < c_.n_layers ? layers_[static_cast<size_t>(l + 1)].x.data() : xf_.data();
      rmsnorm_forward(a.x.data(), lw.attn_norm, N, D, c_.norm_eps, a.h1.data(), a.rstd1.data(), pool);
      sgemm(false, true, N, dqkv_, D, 1.0f, a.h1.data(), D, lw.wqkv, D, 0.0f, a.qkv.data(), dqkv_, pool);
      rope_forward(a.qkv.data(), N, T, dqkv_, c_.n_heads, hd_, rope_cos_.data(), rope_sin_.data(), pool);
      rope_forward(a.qkv.data() + D, N, T, dqkv_, c_.n_kv_heads, hd_, rope_cos_.data(), rope_sin_.data(), pool);
      attention_forward(as, a.qkv.data(), a.att.data(), a.lse.data(), attn_scratch_.data(), pool);
      std::memcpy(a.xmid.data(), a.x.data(), static_cast<size_t>(N * D) * sizeof(float));
      sgemm(false, true, N, D, D, 1.0f, a.att.data(), D, lw.wo, D, 1.0f, a.xmid.data(), D, pool);
      rmsnorm_forward(a.xmid.data(), lw.ffn_norm, N, D, c_.norm_eps, a.h2.data(), a.rstd2.data(), pool);
      sgemm(false, true, N, 2 * F, D, 1.0f, a.h2.data(), D, lw.wgu, D, 0.0f, a.gu.data(), 2 * F, pool);
      swiglu_forward(a.gu.data(), N, F, a.act.data(), pool);
      std::memcpy(next, a.xmid.data(), static_cast<size_t>(N * D) * sizeof(float));
      sgemm(false, true, N, D, F, 1.0f, a.act.data(), F, lw.wdown, F, 1.0f, next, D, pool);
    }
    rmsnorm_forward(xf_.data(), w(final_norm_), N, D, c_.norm_eps, hf_.data(), rstdf_.data(), pool);
  }

  // Output projection fused with the mean cross-entropy over counted targets, k_ce_rows rows
  // at a time: logits, then in place d(loss)/d(logits) = g (softmax - onehot), then
  // dhf = dlogits · Wout and dWout += dlogitsᵀ hf. With grad, dh_ receives dhf.
  double output_loss(const int32_t* targets, int64_t N, float loss_scale, bool grad) {
    const int64_t D = c_.dim, V = c_.vocab_size;
    int64_t count = 0;
    for (int64_t i = 0; i < N; ++i) count += targets[i] >= 0;
    const float gscale = count > 0 ? loss_scale / static_cast<float>(count) : 0.0f;
    float* wout = w(lm_head_);
    float* gout = g(lm_head_);
    for (int64_t r0 = 0; r0 < N; r0 += k_ce_rows) {
      const int64_t R = std::min(k_ce_rows, N - r0);
      float* z = logits_.data();
      sgemm(false, true, R, V, D, 1.0f, hf_.data() + r0 * D, D, wout, D, 0.0f, z, V, &pool_);
      pool_.parallel_for(R, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int32_t t = targets[r0 + i];
          float* zr = z + i * V;
          if (t < 0) {
            row_loss_[static_cast<size_t>(r0 + i)] = 0.0f;
            if (grad) std::fill(zr, zr + V, 0.0f);
            continue;
          }
          row_loss_[static_cast<size_t>(r0 + i)] =
              static_cast<float>(cross_entropy_row(zr, V, t, gscale, grad ? zr : nullptr));
        }
      });
      if (grad) {
        sgemm(false, false, R, D, V, 1.0f, z, V, wout, D, 0.0f, dh_.data() + r0 * D, D, &pool_);
        sgemm(true, false, V, D, R, 1.0f, z, V, hf_.data() + r0 * D, D, 1.0f, gout, D, &pool_);
      }
    }
    double sum = 0;
    for (int64_t i = 0; i < N; ++i) sum += row_loss_[static_cast<size_t>(i)];
    return count > 0 ? sum / static_cast<double>(count) : 0.0;
  }

  // ---- backward ------------------------------------------------------------------------------

  // Expects dh_ = d(loss)/d(hf). dx_ carries d(loss)/d(residual stream) down the layers.
  void backward(const int32_t* tokens, int64_t B, int64_t T) {
    const int64_t N = B * T, D = c_.dim, F = c_.ffn_dim;
    ThreadPool* pool = &pool_;
    float* dx = dx_.data();
    float* dh = dh_.data();
    std::fill(dx, dx + N * D, 0.0f);
    rmsnorm_backward(xf_.data(), w(final_norm_), rstdf_.data(), dh, N, D, dx, g(final_norm_), pool);
    const AttnShape as{B, T, c_.n_heads, c_.n_kv_heads, hd_, dqkv_, D};
    for (int64_t l = c_.n_layers - 1; l >= 0; --l) {
      LayerActs& a = layers_[static_cast<size_t>(l)];
      const LayerView lw = layer(l, false), lg = layer(l, true);
      // next = xmid + act · Wdownᵀ
      float* dact = dsmall_.data();
      sgemm(false, false, N, F, D, 1.0f, dx, D, lw.wdown, F, 0.0f, dact, F, pool);
      sgemm(true, false, D, F, N, 1.0f, dx, D, a.act.data(), F, 1.0f, lg.wdown, F, pool);
      float* dgu = dbig_.data();
      swiglu_backward(a.gu.data(), dact, N, F, dgu, pool);
      sgemm(false, false, N, D, 2 * F, 1.0f, dgu, 2 * F, lw.wgu, D, 0.0f, dh, D, pool);
      sgemm(true, false, 2 * F, D, N, 1.0f, dgu, 2 * F, a.h2.data(), D, 1.0f, lg.wgu, D, pool);
      rmsnorm_backward(a.xmid.data(), lw.ffn_norm, a.rstd2.data(), dh, N, D, dx, lg.ffn_norm, pool);
      // xmid = x + att · Woᵀ
      float* datt = dsmall_.data();
      sgemm(false, false, N, D, D, 1.0f, dx, D, lw.wo, D, 0.0f, datt, D, pool);
      sgemm(true, false, D, D, N, 1.0f, dx, D, a.att.data(), D, 1.0f, lg.wo, D, pool);
      float* dqkv = dbig_.data();
      attention_backward(as, a.qkv.data(), a.lse.data(), datt, dqkv, attn_scratch_.data(), pool);
      rope_backward(dqkv, N, T, dqkv_, c_.n_heads, hd_, rope_cos_.data(), rope_sin_.data(), pool);
      rope_backward(dqkv + D, N, T, dqkv_, c_.n_kv_heads, hd_, rope_cos_.data(), rope_sin_.data(), pool);
      sgemm(false, false, N, D, dqkv_, 1.0f, dqkv, dqkv_, lw.wqkv, D, 0.0f, dh, D, pool);
      sgemm(true, false, dqkv_, D, N, 1.0f, dqkv, dqkv_, a.h1.data(), D, 1.0f, lg.wqkv, D, pool);
      rmsnorm_backward(a.x.data(), lw.attn_norm, a.rstd1.data(), dh, N, D, dx, lg.attn_norm, pool);
    }
    embedding_backward(dx, tokens, N, D, g(embed_), pool);
  }

  TrainModelConfig c_;
  ThreadPool pool_;
  int64_t hd_ = 0, dkv_ = 0, dqkv_ = 0;
  std::vector<float> values_, grads_;
  std::vector<Param> params_;
  size_t embed_ = 0, final_norm_ = 0, lm_head_ = 0;
  std::vector<float> rope_cos_, rope_sin_;
  std::vector<LayerActs> layers_;
  std::vector<float> xf_, hf_, rstdf_, dx_, dh_, dsmall_, dbig_, attn_scratch_, logits_, row_loss_;
};

}  // namespace

Status validate(const TrainModelConfig& c) {
  auto positive = [](int64_t v, const char* name) -> Status {
    if (v < 1) return error("model config: %s = %lld (must be >= 1)", name, static_cast<long long>(v));
    return Status();
  };
  SLM_TRY(positive(c.vocab_size, "vocab_size"));
  SLM_TRY(positive(c.dim, "dim (hidden_size)"));
  SLM_TRY(positive(c.n_layers, "n_layers (num_hidden_layers)"));
  SLM_TRY(positive(c.n_heads, "n_heads (num_attention_heads)"));
  SLM_TRY(positive(c.n_kv_heads, "n_kv_heads (num_key_value_heads)"));
  SLM_TRY(positive(c.ffn_dim, "ffn_dim (intermediate_size)"));
  SLM_TRY(positive(c.max_seq_len, "max_seq_len (max_position_embeddings)"));
  constexpr int64_t k_max_dim = int64_t{1} << 20;
  if (c.vocab_size > (int64_t{1} << 31) - 1) return error("model config: vocab_size %lld does not fit int32 token ids", static_cast<long long>(c.vocab_size));
  if (c.dim > k_max_dim || c.ffn_dim > k_max_dim || c.n_layers > 4096 || c.max_seq_len > k_max_dim) {
    return error("model config: a dimension is beyond the supported range (dim, ffn_dim, max_seq_len <= 2^20, n_layers <= 4096)");
  }
  if (c.dim % c.n_heads != 0) return error("model config: dim %lld is not a multiple of n_heads %lld", static_cast<long long>(c.dim), static_cast<long long>(c.n_heads));
  if (c.n_heads % c.n_kv_heads != 0) return error("model config: n_heads %lld is not a multiple of n_kv_heads %lld", static_cast<long long>(c.n_heads), static_cast<long long>(c.n_kv_heads));
  if ((c.dim / c.n_heads) % 2 != 0) return error("model config: head_dim %lld is odd (rope needs pairs)", static_cast<long long>(c.dim / c.n_heads));
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) return error("model config: rope_theta must be positive and finite");
  if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps)) return error("model config: norm_eps must be positive and finite");
  if (!(c.init_std >= 0) || !std::isfinite(c.init_std)) return error("model config: init_std must be >= 0 and finite");
  // Parameters (values + grads + two AdamW moments) must fit comfortably in memory: 2^33
  // floats each, counted in double so no product can overflow.
  const double D = static_cast<double>(c.dim), F = static_cast<double>(c.ffn_dim), V = static_cast<double>(c.vocab_size);
  const double dkv = static_cast<double>(c.n_kv_heads) * (D / static_cast<double>(c.n_heads));
  const double per_layer = 2 * D * D + 2 * dkv * D + 3 * D * F + 2 * D;
  const double total = V * D * (c.tied_embeddings ? 1 : 2) + static_cast<double>(c.n_layers) * per_layer + D;
  if (total > 8589934592.0) return error("model config: %.3g parameters is beyond the supported 2^33", total);
  return Status();
}

Expected<std::unique_ptr<TrainModel>> TrainModel::create(const TrainModelConfig& c, int n_threads) {
  SLM_TRY(validate(c));
  if (n_threads < 0) return error("train model: n_threads = %d (0 = all hardware threads)", n_threads);
  return std::unique_ptr<TrainModel>(new TrainModelImpl(c, n_threads));
}

}  // namespace slm::train
