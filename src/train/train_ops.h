// Forward and backward kernels of the trainable decoder's ops, each pair side by side:
// RMSNorm, rope (halves), SwiGLU, causal GQA attention, softmax cross-entropy rows, embedding.
#pragma once

// Shapes: N = B*T rows (token positions, row-major, batch-major), D = model dim, F = FFN dim,
// H / Hk = query / key-value heads, hd = head dim, V = vocab. Every backward ADDS into the
// gradients of parameters (dw) and, where stated, into the input gradient (dx), so the caller
// controls accumulation (residual stream, gradient accumulation, tied embeddings).
// Results depend only on the inputs and the pool's thread count: every reduction runs in a
// fixed order, never in the order threads finish.

#include <cstdint>

namespace slm {
class ThreadPool;
}

namespace slm::train {

// ---- RMSNorm: y = x * r * w, r = 1 / sqrt(mean(x^2) + eps) per row ---------------------------
// x, y: (n, d); w: (d); rstd: (n) receives r (kept for the backward pass).
template <class F>
void rmsnorm_forward(const F* x, const F* w, int64_t n, int64_t d, float eps, F* y, F* rstd,
                     ThreadPool* pool);
// dx += r * (dy*w) - x * r^3 / d * Σ_j(dy*w*x);  dw += Σ_rows dy * x * r.
template <class F>
void rmsnorm_backward(const F* x, const F* w, const F* rstd, const F* dy, int64_t n, int64_t d,
                      F* dx, F* dw, ThreadPool* pool);

// ---- Rope, Hugging Face "halves" layout ------------------------------------------------------
// Tables of cos/sin (max_t, hd/2): angle(p, i) = p * theta^(-2i/hd), computed in double.
void rope_tables(int64_t max_t, int64_t hd, double theta, float* cos_t, float* sin_t);
// In place on n_heads heads of hd values at the start of each row (row stride ld) of n rows,
// row r at position r % T: x1' = x1 c - x2 s, x2' = x2 c + x1 s for the halves x1, x2.
template <class F>
void rope_forward(F* x, int64_t n, int64_t T, int64_t ld, int64_t n_heads, int64_t hd,
                  const float* cos_t, const float* sin_t, ThreadPool* pool);
// The rotation is orthogonal, so its backward is the inverse rotation (angle -> -angle), in
// place on the gradient.
template <class F>
void rope_backward(F* dx, int64_t n, int64_t T, int64_t ld, int64_t n_heads, int64_t hd,
                   const float* cos_t, const float* sin_t, ThreadPool* pool);

// ---- SwiGLU: a = silu(g) * u -----------------------------------------------------------------
// gu: (n, 2f) rows [gate(f) | up(f)] (one GEMM with the stacked gate/up weights); a: (n, f).
template <class F>
void swiglu_forward(const F* gu, int64_t n, int64_t f, F* a, ThreadPool* pool);
// dgu (n, 2f) = [da * u * s(g) (1 + g (1 - s(g))) | da * silu(g)], overwritten.
template <class F>
void swiglu_backward(const F* gu, const F* da, int64_t n, int64_t f, F* dgu, ThreadPool* pool);

// ---- Causal GQA attention --------------------------------------------------------------------
// qkv: (B*T, ld) rows [q (H*hd) | k (Hk*hd) | v (Hk*hd) | ...]; query head h reads kv head
// h / (H / Hk). out: (B*T, ldo) gets H*hd columns. lse: (B, H, T) receives log Σ exp of each
// score row, all the backward pass keeps: it recomputes the probabilities exp(s - lse) one head
// at a time, so memory is O(threads * T^2), not O(layers * B * H * T^2).
struct AttnShape {
  int64_t B = 0, T = 0, H = 0, Hk = 0, hd = 0;
  int64_t ld = 0;   // row stride of qkv / dqkv
  int64_t ldo = 0;  // row stride of out / dout
};
// scratch: n_threads * T * T floats.
void attention_forward(const AttnShape& s, const float* qkv, float* out, float* lse,
                       float* scratch, ThreadPool* pool);
// dqkv (q, k and v columns) is overwritten. Per-(b, kv head) units: heads of a group are
// summed into dk, dv in head order. scratch: n_threads * 2 * T * T floats.
void attention_backward(const AttnShape& s, const float* qkv, const float* lse,
                        const float* dout, float* dqkv, float* scratch, ThreadPool* pool);

// ---- Softmax cross-entropy of one logits row -------------------------------------------------
// Returns lse(z) - z[target] (in double). If dz is non-null it receives g * (softmax(z) -
// onehot(target)); dz may alias z. target must be in [0, v).
double cross_entropy_row(const float* z, int64_t v, int32_t target, float g, float* dz);

// ---- Embedding -------------------------------------------------------------------------------
// x (n, d) = table[tokens[i]].
void embedding_forward(const float* table, const int32_t* tokens, int64_t n, int64_t d, float* x,
                       ThreadPool* pool);
// dtable[tokens[i]] += dx[i], rows in order i = 0..n-1 (threads split the d columns, so the
// sum order is fixed even when a token repeats).
void embedding_backward(const float* dx, const int32_t* tokens, int64_t n, int64_t d,
                        float* dtable, ThreadPool* pool);

}  // namespace slm::train
