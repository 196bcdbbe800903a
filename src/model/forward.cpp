// The one forward pass of the parametric decoder (ForwardCore), over KV caches and scratch
// allocated once; Session (one sequence) and BatchSession (many) drive it. Shapes: T tokens per
// chunk, E = n_embd, D = head_dim, H / Hkv heads, S sequences.
#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/model.h"

namespace slm {

namespace {

// Prompts are processed in chunks of at most this many tokens (bounds the scratch size).
constexpr int64_t k_max_batch = 128;
// Query heads of one KV head per attention task (attention_group_kv shares loads per pair).
constexpr int64_t k_heads_per_task = 2;
// Rows of n_ctx scores per thread: a pair of heads, or a tile of query tokens (8 lanes per row).
constexpr int64_t k_scores_rows = std::max<int64_t>(k_heads_per_task, k_attention_tile);

// Per-pair inverse frequencies, theta^(-2i/D), with the model's scaling applied.
std::vector<double> rope_inv_freq(const ModelConfig& c, const ModelWeights& w) {
  const int64_t half = c.head_dim / 2;
  std::vector<double> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    f[i] = std::pow(static_cast<double>(c.rope_theta),
                    -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
  }
  if (w.rope_freqs.data) {
    const float* div = static_cast<const float*>(w.rope_freqs.data);
    for (int64_t i = 0; i < half; ++i) f[i] /= div[i];
  } else if (c.rope_scaling == RopeScalingType::linear) {
    for (auto& v : f) v /= c.rope_factor;
  } else if (c.rope_scaling == RopeScalingType::llama3) {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, and the band in
    // between interpolated: smooth = (orig_ctx / wavelen - low) / (high - low).
    const double pi = 3.14159265358979323846;
    const double low = c.rope_low_freq_factor, high = c.rope_high_freq_factor;
    const double orig = static_cast<double>(c.rope_orig_ctx), factor = c.rope_factor;
    const double low_wavelen = orig / low, high_wavelen = orig / high;
    for (auto& v : f) {
      double wavelen = 2 * pi / v;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        v /= factor;
      } else {
        double smooth = (orig / wavelen - low) / (high - low);
        v = (1 - smooth) * v / factor + smooth * v;
      }
    }
  }
  return f;
}

}  // namespace

// Weights, KV regions of n_seq sequences and scratch for one chunk of tokens.
struct detail::ForwardCore {
  const Model& model;
  const ModelConfig& c;
  const ModelWeights& w;
  ThreadPool pool;
  int64_t n_seq, n_ctx;
  int64_t batch;  // tokens per chunk (scratch rows)
  int64_t q_dim, kv_dim;
  std::vector<double> inv_freq;
  // KV cache: [seq][layer][kv_head][pos] rows of D values in kv_type, so one head's keys are
  // contiguous. A type the model cannot use leaves init_status set and the cache empty.
  DType kv_type;
  Status init_status;
  size_t kv_row;  // bytes per cached row
  std::vector<uint8_t> k_cache, v_cache;
  std::vector<float> x, xn, q, k, v, att, gate, up, cos_t, sin_t;
  std::vector<float> scores;  // k_scores_rows rows of n_ctx per thread
  std::vector<float> logits;  // output rows x n_vocab (grows for all_logits)
  // Per-token sequence and position of the current chunk, and the rows whose logits it outputs.
  std::vector<int32_t> toks, seqs;
  std::vector<int64_t> pos;
  std::vector<int64_t> out_rows;

  MatmulMode mode;  // for single-sequence chunks

  ForwardCore(const Model& m, const SessionOptions& o, int64_t n_seq_)
      : model(m),
        c(m.config()),
        w(m.weights()),
        pool(o.n_threads),
        n_seq(n_seq_),
        n_ctx(o.n_ctx),
        batch(std::min(k_max_batch, o.n_ctx)),
        kv_type(o.kv_type),
        mode(o.float_activations ? MatmulMode::float_activations : MatmulMode::fast) {
    const int64_t B = batch;
    const int64_t E = c.n_embd, D = c.head_dim;
    q_dim = c.n_head * D;
    kv_dim = c.n_head_kv * D;
    inv_freq = rope_inv_freq(c, w);
    auto sz = [](int64_t n) { return static_cast<size_t>(n); };
    init_status = check_kv_type(kv_type, D);
    kv_row = kv_row_bytes(kv_type, D);
    if (init_status.ok()) {
      k_cache.assign(kv_row * sz(n_seq * c.n_layer * c.n_head_kv * n_ctx), 0);
      v_cache.assign(kv_row * sz(n_seq * c.n_layer * c.n_head_kv * n_ctx), 0);
    }
    x.resize(sz(B * E));
    xn.resize(sz(B * std::max(E, q_dim)));
    q.resize(sz(B * q_dim));
    k.resize(sz(B * kv_dim));
    v.resize(sz(B * kv_dim));
    att.resize(sz(B * q_dim));
    gate.resize(sz(B * c.n_ff));
    up.resize(sz(B * c.n_ff));
    cos_t.resize(sz(B * D / 2));
    sin_t.resize(sz(B * D / 2));
    scores.resize(sz(pool.n_threads() * k_scores_rows * n_ctx));
    // A decode step of every sequence needs n_seq rows; no allocation per step.
    logits.resize(sz(n_seq * c.n_vocab));
    toks.resize(sz(B));
    seqs.resize(sz(B));
    pos.resize(sz(B));
    out_rows.resize(sz(B));
  }

  size_t kv_offset(int64_t seq, int64_t layer, int64_t h, int64_t p) const {
    return static_cast<size_t>(((seq * c.n_layer + layer) * c.n_head_kv + h) * n_ctx + p) * kv_row;
  }
  uint8_t* k_at(int64_t seq, int64_t layer, int64_t h, int64_t p) {
    return k_cache.data() + kv_offset(seq, layer, h, p);
  }
  uint8_t* v_at(int64_t seq, int64_t layer, int64_t h, int64_t p) {
    return v_cache.data() + kv_offset(seq, layer, h, p);
  }
  // Thread tid's k_scores_rows rows of n_ctx scores.
  float* scores_of(int tid) {
    return scores.data() + static_cast<int64_t>(tid) * k_scores_rows * n_ctx;
  }

  // Runs T tokens (T <= batch); token t belongs to seqs[t] at position pos[t]. Every token's
  // keys and values are stored before any attention, so a token sees the earlier tokens of its
  // sequence in the same chunk. Writes the logits of rows out_rows[0..n_out) to out.
  Status run_chunk(const int32_t* tokens, int64_t T, int64_t n_out, float* out, MatmulMode mm);
};

Status detail::ForwardCore::run_chunk(const int32_t* tokens, int64_t T, int64_t n_out, float* out,
                                      MatmulMode mm) {
  const int64_t E = c.n_embd, D = c.head_dim, H = c.n_head, Hkv = c.n_head_kv;
  const int64_t half = D / 2, group = H / Hkv;
  ThreadPool* tp = &pool;
  // The per-token element-wise steps: across the threads for a prompt chunk (serial, they left
  // the other threads waiting: ~8% of a 135M prompt), on this thread for a few tokens. Each
  // token's arithmetic is the same either way.
  auto per_token = [&](auto&& fn) {
    if (T >= 8 && pool.n_threads() > 1) {
      pool.parallel_for(T, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) fn(t);
      }, 2);
    } else {
      for (int64_t t = 0; t < T; ++t) fn(t);
    }
  };

  // A prompt-sized chunk of one sequence's consecutive positions takes its queries in tiles:
  // only where the matmuls already go to the GEMM, so a small batch's tokens keep the results
  // they get one at a time.
  bool tiled = matmul_uses_gemm(T, mm);
  for (int64_t t = 1; tiled && t < T; ++t) tiled = seqs[t] == seqs[0] && pos[t] == pos[0] + t;

  for (int64_t t = 0; t < T; ++t) weight_row_to_f32(w.tok_embd, tokens[t], x.data() + t * E);
  for (int64_t t = 0; t < T; ++t) {
    const double p = static_cast<double>(pos[t]);
    for (int64_t i = 0; i < half; ++i) {
      double ang = p * inv_freq[static_cast<size_t>(i)];
      cos_t[t * half + i] = static_cast<float>(std::cos(ang));
      sin_t[t * half + i] = static_cast<float>(std::sin(ang));
    }
  }

  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = w.layers[static_cast<size_t>(il)];
    // Attention block: x += Wo · attention(rope(norm(x) Wq), rope(norm(x) Wk), norm(x) Wv).
    per_token([&](int64_t t) {
      rms_norm(x.data() + t * E, static_cast<const float*>(L.attn_norm.data), E, c.norm_eps,
               xn.data() + t * E);
    });
    {
      const TensorView* ws[] = {&L.wq, &L.wk, &L.wv};
      float* ys[] = {q.data(), k.data(), v.data()};
      SLM_TRY(matmul_many(ws, ys, 3, xn.data(), T, tp, mm));
    }
    // Each token writes its own cache rows (its sequence and position are unique in a chunk).
    per_token([&](int64_t t) {
      float* qt = q.data() + t * q_dim;
      float* kt = k.data() + t * kv_dim;
      const int64_t s = seqs[t], p = pos[t];
      if (c.qkv_bias) {
        axpy_f32(1.0f, static_cast<const float*>(L.bq.data), qt, q_dim);
        axpy_f32(1.0f, static_cast<const float*>(L.bk.data), kt, kv_dim);
        axpy_f32(1.0f, static_cast<const float*>(L.bv.data), v.data() + t * kv_dim, kv_dim);
      }
      for (int64_t h = 0; h < H; ++h) {
        if (c.qk_norm)
          rms_norm(qt + h * D, static_cast<const float*>(L.q_norm.data), D, c.norm_eps, qt + h * D);
        rope(qt + h * D, D, cos_t.data() + t * half, sin_t.data() + t * half, c.rope_interleaved);
      }
      for (int64_t h = 0; h < Hkv; ++h) {
        if (c.qk_norm)
          rms_norm(kt + h * D, static_cast<const float*>(L.k_norm.data), D, c.norm_eps, kt + h * D);
        rope(kt + h * D, D, cos_t.data() + t * half, sin_t.data() + t * half, c.rope_interleaved);
        kv_store_row(kv_type, kt + h * D, k_at(s, il, h, p), D);
        kv_store_row(kv_type, v.data() + t * kv_dim + h * D, v_at(s, il, h, p), D);
      }
    });
    // Each attention task uses its thread's rows of scores.
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    if (tiled) {
      // Tiles of consecutive tokens per query head, each cached row widened once per tile; the
      // last tiles see the most rows and are handed out first.
      const int64_t n_tiles = (T + k_attention_tile - 1) / k_attention_tile;
      pool.parallel_for(n_tiles * H, [&](int64_t b, int64_t e, int tid) {
        float* sc = scores_of(tid);
        for (int64_t task = b; task < e; ++task) {
          const int64_t t0 = (n_tiles - 1 - task / H) * k_attention_tile, h = task % H;
          const int m = static_cast<int>(std::min<int64_t>(k_attention_tile, T - t0));
          attention_tile_kv(kv_type, q.data() + t0 * q_dim + h * D, static_cast<size_t>(q_dim), m,
                            pos[t0] + 1, k_at(seqs[t0], il, h / group, 0),
                            v_at(seqs[t0], il, h / group, 0), kv_row, D, scale, sc,
                            att.data() + t0 * q_dim + h * D, static_cast<size_t>(q_dim));
        }
      });
    } else {
      // One task per (token, pair of query heads sharing a KV head) over its own sequence's
      // rows 0..pos: the pair reads each cached row once.
      const int64_t per_kv = (group + k_heads_per_task - 1) / k_heads_per_task;  // tasks per KV head
      pool.parallel_for(T * Hkv * per_kv, [&](int64_t b, int64_t e, int tid) {
        float* sc = scores_of(tid);
        for (int64_t task = b; task < e; ++task) {
          const int64_t t = task / (Hkv * per_kv), hk = task / per_kv % Hkv, s = seqs[t];
          const int64_t h = hk * group + task % per_kv * k_heads_per_task;
          const int64_t nh = std::min(k_heads_per_task, (hk + 1) * group - h);
          attention_group_kv(kv_type, q.data() + t * q_dim + h * D, nh, k_at(s, il, hk, 0),
                             v_at(s, il, hk, 0), kv_row, pos[t] + 1, D, scale, sc,
                             att.data() + t * q_dim + h * D);
        }
      });
    }
    SLM_TRY(matmul(L.wo, att.data(), T, xn.data(), tp, mm));
    // Feed-forward block: x += W_down · (silu(norm(x) W_gate) * norm(x) W_up), after the
    // attention residual (the same token's row: one pass does both).
    per_token([&](int64_t t) {
      axpy_f32(1.0f, xn.data() + t * E, x.data() + t * E, E);
      rms_norm(x.data() + t * E, static_cast<const float*>(L.ffn_norm.data), E, c.norm_eps,
               xn.data() + t * E);
    });
    {
      const TensorView* ws[] = {&L.w_gate, &L.w_up};
      float* ys[] = {gate.data(), up.data()};
      SLM_TRY(matmul_many(ws, ys, 2, xn.data(), T, tp, mm));
    }
    per_token([&](int64_t t) { swiglu(gate.data() + t * c.n_ff, up.data() + t * c.n_ff, c.n_ff); });
    SLM_TRY(matmul(L.w_down, gate.data(), T, xn.data(), tp, mm));
    per_token([&](int64_t t) { axpy_f32(1.0f, xn.data() + t * E, x.data() + t * E, E); });
  }

  if (n_out == 0) return Status();
  for (int64_t i = 0; i < n_out; ++i) {
    rms_norm(x.data() + out_rows[i] * E, static_cast<const float*>(w.out_norm.data), E,
             c.norm_eps, xn.data() + i * E);
  }
  return matmul(w.output, xn.data(), n_out, out, tp, mm);
}

// ---- Session: the one-sequence case ----

Session::Session(const Model& model, const SessionOptions& opts)
    : n_ctx_(std::max<int64_t>(1, opts.n_ctx)) {
  SessionOptions o = opts;
  o.n_ctx = n_ctx_;
  core_ = std::make_unique<detail::ForwardCore>(model, o, 1);
}

Session::Session(const Model& model, int64_t n_ctx, int n_threads, DType kv_type)
    : Session(model, SessionOptions{n_ctx, n_threads, kv_type, false}) {}

DType Session::kv_type() const { return core_->kv_type; }

uint64_t Session::kv_bytes() const { return core_->k_cache.size() + core_->v_cache.size(); }

Session::~Session() = default;

void Session::truncate(int64_t n) {
  n_past_ = std::clamp<int64_t>(n, 0, n_past_);
}

Expected<std::span<const float>> Session::forward(std::span<const int32_t> tokens,
                                                  bool all_logits) {
  detail::ForwardCore& s = *core_;
  const int64_t T = static_cast<int64_t>(tokens.size()), V = s.c.n_vocab;
  SLM_TRY(s.init_status);
  if (T == 0) return error("forward: no tokens");
  if (T > n_ctx_ - n_past_) {
    return error("forward: context full (%lld cached + %lld new > n_ctx %lld)", (long long)n_past_,
                 (long long)T, (long long)n_ctx_);
  }
  for (int64_t i = 0; i < T; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V) {
      return error("forward: token id %d at index %lld is out of range [0, %lld)", tokens[i],
                   (long long)i, (long long)V);
    }
  }
  if (all_logits && s.logits.size() < static_cast<size_t>(T * V)) {
    s.logits.resize(static_cast<size_t>(T * V));
  }
  const int64_t B = s.batch;
  for (int64_t b = 0; b < T; b += B) {
    const int64_t nb = std::min(B, T - b);
    const bool last = b + nb == T;
    const int64_t first_out = all_logits ? 0 : (last ? nb - 1 : nb);
    for (int64_t t = 0; t < nb; ++t) {
      s.seqs[t] = 0;
      s.pos[t] = n_past_ + b + t;
    }
    for (int64_t t = first_out; t < nb; ++t) s.out_rows[t - first_out] = t;
    float* out = all_logits ? s.logits.data() + b * V : s.logits.data();
    Status st = s.run_chunk(tokens.data() + b, nb, nb - first_out, out, s.mode);
    if (!st.ok()) {
      return st;  // the cache past n_past_ may hold partial rows; n_past_ is unchanged
    }
  }
  n_past_ += T;
  return std::span<const float>(s.logits.data(), static_cast<size_t>(all_logits ? T * V : V));
}

// ---- BatchSession: many sequences ----

BatchSession::BatchSession(const Model& model, const BatchSessionOptions& opts)
    : n_seq_(std::max<int64_t>(1, opts.n_seq)), n_ctx_(std::max<int64_t>(1, opts.n_ctx)) {
  SessionOptions o{n_ctx_, opts.n_threads, opts.kv_type, opts.float_activations};
  core_ = std::make_unique<detail::ForwardCore>(model, o, n_seq_);
  n_past_.assign(static_cast<size_t>(n_seq_), 0);
  count_.assign(static_cast<size_t>(n_seq_), 0);
}

BatchSession::~BatchSession() = default;

DType BatchSession::kv_type() const { return core_->kv_type; }

uint64_t BatchSession::kv_bytes() const { return core_->k_cache.size() + core_->v_cache.size(); }

int64_t BatchSession::n_past(int64_t seq) const {
  return seq >= 0 && seq < n_seq_ ? n_past_[static_cast<size_t>(seq)] : 0;
}

int64_t BatchSession::chunk_tokens() const { return core_->batch; }

ThreadPool& BatchSession::thread_pool() { return core_->pool; }

void BatchSession::truncate(int64_t seq, int64_t n) {
  if (seq < 0 || seq >= n_seq_) return;
  int64_t& np = n_past_[static_cast<size_t>(seq)];
  np = std::clamp<int64_t>(n, 0, np);
}

Expected<std::span<const float>> BatchSession::forward(std::span<const BatchEntry> entries,
                                                       bool invariant) {
  detail::ForwardCore& s = *core_;
  const int64_t T = static_cast<int64_t>(entries.size()), V = s.c.n_vocab;
  SLM_TRY(s.init_status);
  if (T == 0) return error("batch forward: no entries");
  std::fill(count_.begin(), count_.end(), 0);
  int64_t n_out = 0, first_seq = entries[0].seq;
  bool one_seq = true;
  for (int64_t i = 0; i < T; ++i) {
    const BatchEntry& e = entries[static_cast<size_t>(i)];
    if (e.seq < 0 || e.seq >= n_seq_) {
      return error("batch forward: entry %lld names sequence %d; there are %lld", (long long)i,
                   e.seq, (long long)n_seq_);
    }
    if (e.token < 0 || e.token >= V) {
      return error("batch forward: token id %d at entry %lld is out of range [0, %lld)", e.token,
                   (long long)i, (long long)V);
    }
    const size_t sq = static_cast<size_t>(e.seq);
    if (n_past_[sq] + ++count_[sq] > n_ctx_) {
      return error("batch forward: sequence %d context full (%lld cached + %lld new > n_ctx %lld)",
                   e.seq, (long long)n_past_[sq], (long long)count_[sq], (long long)n_ctx_);
    }
    one_seq = one_seq && e.seq == first_seq;
    n_out += e.logits ? 1 : 0;
  }
  if (s.logits.size() < static_cast<size_t>(n_out * V)) {
    s.logits.resize(static_cast<size_t>(n_out * V));
  }
  // One sequence: Session's arithmetic. Several: kernels whose results do not depend on the
  // batch, so a sequence gets the same logits whoever it shares the step with.
  const MatmulMode mm = (one_seq && !invariant) || s.mode == MatmulMode::float_activations
                            ? s.mode
                            : MatmulMode::fast_invariant;
  std::fill(count_.begin(), count_.end(), 0);
  int64_t out_done = 0;
  for (int64_t b = 0; b < T; b += s.batch) {
    const int64_t nb = std::min(s.batch, T - b);
    int64_t nout = 0;
    for (int64_t t = 0; t < nb; ++t) {
      const BatchEntry& e = entries[static_cast<size_t>(b + t)];
      const size_t sq = static_cast<size_t>(e.seq);
      s.toks[static_cast<size_t>(t)] = e.token;
      s.seqs[t] = e.seq;
      s.pos[t] = n_past_[sq] + count_[sq]++;
      if (e.logits) s.out_rows[nout++] = t;
    }
    Status st = s.run_chunk(s.toks.data(), nb, nout, s.logits.data() + out_done * V, mm);
    if (!st.ok()) return st;  // n_past is unchanged
    out_done += nout;
  }
  for (size_t q = 0; q < n_past_.size(); ++q) n_past_[q] += count_[q];
  return std::span<const float>(s.logits.data(), static_cast<size_t>(n_out * V));
}

}  // namespace slm
