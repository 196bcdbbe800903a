// Forward and backward kernels of the trainable decoder's ops (see train_ops.h for shapes and
// formulas); matrix products inside attention go through sgemm.
#include "train/train_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "train/train_simd.h"

namespace slm::train {

namespace {

// parallel_for on the pool, or one call on this thread without one.
template <class Fn>
void par(ThreadPool* pool, int64_t n, Fn&& fn, int64_t min_chunk = 1) {
  if (n <= 0) return;
  if (pool == nullptr || pool->n_threads() <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  pool->parallel_for(n, fn, min_chunk);
}

// Column blocks for reductions over rows: each block is summed by one thread, rows in order.
constexpr int64_t k_col_block = 64;

}  // namespace

// ---- RMSNorm ---------------------------------------------------------------------------------

template <class F>
void rmsnorm_forward(const F* x, const F* w, int64_t n, int64_t d, float eps, F* y, F* rstd,
                     ThreadPool* pool) {
  par(pool, n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const F* xr = x + i * d;
      F* yr = y + i * d;
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(xr[j]) * xr[j];
      const F r = static_cast<F>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
      rstd[i] = r;
      for (int64_t j = 0; j < d; ++j) yr[j] = xr[j] * r * w[j];
    }
  }, 16);
}

// With u = x r:  y = u w,  r = (m + eps)^-1/2, m = Σ x^2 / d, so dr/dx_j = -r^3 x_j / d and
// dx_j = dy_j w_j r + x_j (-r^3 / d) Σ_k dy_k w_k x_k.
template <class F>
void rmsnorm_backward(const F* x, const F* w, const F* rstd, const F* dy, int64_t n, int64_t d,
                      F* dx, F* dw, ThreadPool* pool) {
  par(pool, n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const F* xr = x + i * d;
      const F* gr = dy + i * d;
      F* dr = dx + i * d;
      double dot = 0;
      for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(gr[j]) * w[j] * xr[j];
      const F r = rstd[i];
      const F c = static_cast<F>(-dot * static_cast<double>(r) * r * r / static_cast<double>(d));
      for (int64_t j = 0; j < d; ++j) dr[j] += gr[j] * w[j] * r + xr[j] * c;
    }
  }, 16);
  // dw: column blocks, each summing its rows in order (fixed order whatever the threads).
  const int64_t blocks = (d + k_col_block - 1) / k_col_block;
  par(pool, blocks, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t j0 = blk * k_col_block, j1 = std::min(d, j0 + k_col_block);
      double acc[k_col_block] = {};
      for (int64_t i = 0; i < n; ++i) {
        const F r = rstd[i];
        for (int64_t j = j0; j < j1; ++j) acc[j - j0] += static_cast<double>(dy[i * d + j] * x[i * d + j] * r);
      }
      for (int64_t j = j0; j < j1; ++j) dw[j] += static_cast<F>(acc[j - j0]);
    }
  });
}

// ---- Rope ------------------------------------------------------------------------------------

void rope_tables(int64_t max_t, int64_t hd, double theta, float* cos_t, float* sin_t) {
  const int64_t half = hd / 2;
  for (int64_t p = 0; p < max_t; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double inv = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
      const double a = static_cast<double>(p) * inv;
      cos_t[p * half + i] = static_cast<float>(std::cos(a));
      sin_t[p * half + i] = static_cast<float>(std::sin(a));
    }
  }
}

namespace {
// sign = +1: rotate by +angle (forward); -1: by -angle (backward).
template <class F>
void rope_apply(F* x, int64_t n, int64_t T, int64_t ld, int64_t n_heads, int64_t hd,
                const float* cos_t, const float* sin_t, F sign, ThreadPool* pool) {
  const int64_t half = hd / 2;
  par(pool, n, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* c = cos_t + (r % T) * half;
      const float* s = sin_t + (r % T) * half;
      for (int64_t h = 0; h < n_heads; ++h) {
        F* x1 = x + r * ld + h * hd;
        F* x2 = x1 + half;
        for (int64_t i = 0; i < half; ++i) {
          const F a = x1[i], bb = x2[i], si = sign * static_cast<F>(s[i]);
          x1[i] = a * static_cast<F>(c[i]) - bb * si;
          x2[i] = bb * static_cast<F>(c[i]) + a * si;
        }
      }
    }
  }, 16);
}
}  // namespace

template <class F>
void rope_forward(F* x, int64_t n, int64_t T, int64_t ld, int64_t n_heads, int64_t hd,
                  const float* cos_t, const float* sin_t, ThreadPool* pool) {
  rope_apply<F>(x, n, T, ld, n_heads, hd, cos_t, sin_t, F(1), pool);
}

template <class F>
void rope_backward(F* dx, int64_t n, int64_t T, int64_t ld, int64_t n_heads, int64_t hd,
                   const float* cos_t, const float* sin_t, ThreadPool* pool) {
  rope_apply<F>(dx, n, T, ld, n_heads, hd, cos_t, sin_t, F(-1), pool);
}

// ---- SwiGLU ----------------------------------------------------------------------------------

template <class F>
void swiglu_forward(const F* gu, int64_t n, int64_t f, F* a, ThreadPool* pool) {
  par(pool, n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if constexpr (std::is_same_v<F, float>) {
        swiglu_row(gu + i * 2 * f, gu + i * 2 * f + f, f, a + i * f);
      } else {
        for (int64_t j = 0; j < f; ++j) {
          const F g = gu[i * 2 * f + j], u = gu[i * 2 * f + f + j];
          a[i * f + j] = g / (F(1) + std::exp(-g)) * u;
        }
      }
    }
  }, 8);
}

// silu(g) = g s, s = 1 / (1 + e^-g);  d silu / dg = s + g s (1 - s) = s (1 + g (1 - s)).
template <class F>
void swiglu_backward(const F* gu, const F* da, int64_t n, int64_t f, F* dgu, ThreadPool* pool) {
  par(pool, n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const F* g = gu + i * 2 * f;
      const F* u = g + f;
      F* dg = dgu + i * 2 * f;
      F* du = dg + f;
      if constexpr (std::is_same_v<F, float>) {
        swiglu_backward_row(g, u, da + i * f, f, dg, du);
      } else {
        for (int64_t j = 0; j < f; ++j) {
          const F s = F(1) / (F(1) + std::exp(-g[j]));
          const F d = da[i * f + j];
          du[j] = d * g[j] * s;
          dg[j] = d * u[j] * s * (F(1) + g[j] * (F(1) - s));
        }
      }
    }
  }, 8);
}

// ---- Attention -------------------------------------------------------------------------------

namespace {
// Query rows are processed in blocks so the causal upper triangle is (mostly) not computed:
// block [i0, i1) only needs keys [0, i1).
constexpr int64_t k_attn_block = 64;
}  // namespace

namespace {

// Runs body(begin, end, thread_index) over [0, n) on the pool (or on this thread as index 0).
template <class Fn>
void par_tid(ThreadPool* pool, int64_t n, Fn&& body) {
  if (pool == nullptr || pool->n_threads() <= 1) {
    body(int64_t{0}, n, 0);
  } else {
    pool->parallel_for(n, body, 1);
  }
}

// P[i0:i1, 0:i1] of one head: scores scale q kᵀ, then either the softmax (forward, which also
// stores each row's lse) or exp(s - lse) from the stored lse (backward); zeros above the
// diagonal within the block, so products over the block's keys see a causal P.
void attention_probs_block(const float* q, const float* k, int64_t ld, int64_t T, int64_t hd,
                           float scale, int64_t i0, int64_t i1, float* P, const float* lse_in,
                           float* lse_out) {
  sgemm(false, true, i1 - i0, i1, hd, scale, q + i0 * ld, ld, k, ld, 0.0f, P + i0 * T, T, nullptr);
  for (int64_t i = i0; i < i1; ++i) {
    float* row = P + i * T;
    if (lse_in != nullptr) {
      softmax_grad_row(row, i + 1, lse_in[i], 1.0f, row);
    } else {
      lse_out[i] = softmax_row_inplace(row, i + 1);
    }
    std::fill(row + i + 1, row + i1, 0.0f);
  }
}

}  // namespace

void attention_forward(const AttnShape& s, const float* qkv, float* out, float* lse,
                       float* scratch, ThreadPool* pool) {
  const int64_t T = s.T, hd = s.hd, group = s.H / s.Hk;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  par_tid(pool, s.B * s.H, [&](int64_t ub, int64_t ue, int tid) {
    float* P = scratch + static_cast<int64_t>(tid) * T * T;
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t b = u / s.H, h = u % s.H, kh = h / group;
      const float* q = qkv + b * T * s.ld + h * hd;
      const float* k = qkv + b * T * s.ld + (s.H + kh) * hd;
      const float* v = qkv + b * T * s.ld + (s.H + s.Hk + kh) * hd;
      float* o = out + b * T * s.ldo + h * hd;
      for (int64_t i0 = 0; i0 < T; i0 += k_attn_block) {
        const int64_t i1 = std::min(T, i0 + k_attn_block);
        attention_probs_block(q, k, s.ld, T, hd, scale, i0, i1, P, nullptr, lse + u * T);
        sgemm(false, false, i1 - i0, hd, i1, 1.0f, P + i0 * T, T, v, s.ld, 0.0f, o + i0 * s.ldo,
              s.ldo, nullptr);
      }
    }
  });
}

// With S = scale q kᵀ, P = softmax(S) row-wise, o = P v:
//   dv = Pᵀ do,  dP = do vᵀ,  dS_ij = P_ij (dP_ij - Σ_k P_ik dP_ik),  dq = scale dS k,
//   dk = scale dSᵀ q.  P is lower-triangular, so every product skips the zero blocks.
void attention_backward(const AttnShape& s, const float* qkv, const float* lse,
                        const float* dout, float* dqkv, float* scratch, ThreadPool* pool) {
  const int64_t T = s.T, hd = s.hd, group = s.H / s.Hk;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  par_tid(pool, s.B * s.Hk, [&](int64_t ub, int64_t ue, int tid) {
    float* P = scratch + static_cast<int64_t>(tid) * 2 * T * T;
    float* dP = P + T * T;
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t b = u / s.Hk, kh = u % s.Hk;
      const int64_t row0 = b * T;
      const float* k = qkv + row0 * s.ld + (s.H + kh) * hd;
      const float* v = qkv + row0 * s.ld + (s.H + s.Hk + kh) * hd;
      float* dk = dqkv + row0 * s.ld + (s.H + kh) * hd;
      float* dv = dqkv + row0 * s.ld + (s.H + s.Hk + kh) * hd;
      for (int64_t t = 0; t < T; ++t) {
        std::fill(dk + t * s.ld, dk + t * s.ld + hd, 0.0f);
        std::fill(dv + t * s.ld, dv + t * s.ld + hd, 0.0f);
      }
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const float* q = qkv + row0 * s.ld + h * hd;
        const float* dO = dout + row0 * s.ldo + h * hd;
        float* dq = dqkv + row0 * s.ld + h * hd;
        const float* row_lse = lse + (b * s.H + h) * T;
        for (int64_t i0 = 0; i0 < T; i0 += k_attn_block) {
          attention_probs_block(q, k, s.ld, T, hd, scale, i0, std::min(T, i0 + k_attn_block), P,
                                row_lse, nullptr);
        }
        for (int64_t i0 = 0; i0 < T; i0 += k_attn_block) {
          const int64_t i1 = std::min(T, i0 + k_attn_block);
          // dv[i0:i1] += P[i0:T, i0:i1]ᵀ do[i0:T]  (rows above i0 are zero in these columns)
          sgemm(true, false, i1 - i0, hd, T - i0, 1.0f, P + i0 * T + i0, T, dO + i0 * s.ldo,
                s.ldo, 1.0f, dv + i0 * s.ld, s.ld, nullptr);
          // dP[i0:i1, 0:i1] = do[i0:i1] v[0:i1]ᵀ
          sgemm(false, true, i1 - i0, i1, hd, 1.0f, dO + i0 * s.ldo, s.ldo, v, s.ld, 0.0f,
                dP + i0 * T, T, nullptr);
          for (int64_t i = i0; i < i1; ++i) {
            softmax_backward_row(P + i * T, dP + i * T, i + 1, scale);
            std::fill(dP + i * T + i + 1, dP + i * T + i1, 0.0f);
          }
          // dq[i0:i1] = dS[i0:i1, 0:i1] k[0:i1]  (scale is folded into dS)
          sgemm(false, false, i1 - i0, hd, i1, 1.0f, dP + i0 * T, T, k, s.ld, 0.0f,
                dq + i0 * s.ld, s.ld, nullptr);
        }
        // dk[j0:j1] += dS[j0:T, j0:j1]ᵀ q[j0:T], once dS is complete.
        for (int64_t j0 = 0; j0 < T; j0 += k_attn_block) {
          const int64_t j1 = std::min(T, j0 + k_attn_block);
          sgemm(true, false, j1 - j0, hd, T - j0, 1.0f, dP + j0 * T + j0, T, q + j0 * s.ld, s.ld,
                1.0f, dk + j0 * s.ld, s.ld, nullptr);
        }
      }
    }
  });
}

// ---- Cross-entropy ---------------------------------------------------------------------------

double cross_entropy_row(const float* z, int64_t v, int32_t target, float g, float* dz) {
  const float zt = z[target];
  const double lse = logsumexp_row(z, v);
  if (dz != nullptr) {
    softmax_grad_row(z, v, static_cast<float>(lse), g, dz);
    dz[target] -= g;
  }
  return lse - static_cast<double>(zt);
}

// ---- Embedding -------------------------------------------------------------------------------

void embedding_forward(const float* table, const int32_t* tokens, int64_t n, int64_t d, float* x,
                       ThreadPool* pool) {
  par(pool, n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      std::memcpy(x + i * d, table + static_cast<int64_t>(tokens[i]) * d,
                  static_cast<size_t>(d) * sizeof(float));
    }
  }, 64);
}

void embedding_backward(const float* dx, const int32_t* tokens, int64_t n, int64_t d,
                        float* dtable, ThreadPool* pool) {
  const int64_t blocks = (d + k_col_block - 1) / k_col_block;
  par(pool, blocks, [&](int64_t b, int64_t e) {
    const int64_t j0 = b * k_col_block, j1 = std::min(d, e * k_col_block);
    for (int64_t i = 0; i < n; ++i) {
      float* dst = dtable + static_cast<int64_t>(tokens[i]) * d;
      const float* src = dx + i * d;
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  });
}

// ---- instantiations --------------------------------------------------------------------------

#define SLM_TRAIN_OPS_INSTANTIATE(F)                                                            \
  template void rmsnorm_forward<F>(const F*, const F*, int64_t, int64_t, float, F*, F*,         \
                                   ThreadPool*);                                                \
  template void rmsnorm_backward<F>(const F*, const F*, const F*, const F*, int64_t, int64_t,   \
                                    F*, F*, ThreadPool*);                                       \
  template void rope_forward<F>(F*, int64_t, int64_t, int64_t, int64_t, int64_t, const float*, \
                                const float*, ThreadPool*);                                     \
  template void rope_backward<F>(F*, int64_t, int64_t, int64_t, int64_t, int64_t,              \
                                 const float*, const float*, ThreadPool*);                      \
  template void swiglu_forward<F>(const F*, int64_t, int64_t, F*, ThreadPool*);                \
  template void swiglu_backward<F>(const F*, const F*, int64_t, int64_t, F*, ThreadPool*);

SLM_TRAIN_OPS_INSTANTIATE(float)
SLM_TRAIN_OPS_INSTANTIATE(double)
#undef SLM_TRAIN_OPS_INSTANTIATE

}  // namespace slm::train
