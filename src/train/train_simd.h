// Row kernels the training ops spend their non-GEMM time in (exp-heavy: softmax, SwiGLU),
// with an AVX2 version chosen at run time and a scalar version that is the test oracle.
#pragma once

#include <cstdint>

namespace slm::train {

// a[j] = silu(g[j]) * u[j], j < f.
void swiglu_row(const float* g, const float* u, int64_t f, float* a);
// dg[j] = da u s (1 + g (1 - s)), du[j] = da silu(g), s = sigmoid(g).
void swiglu_backward_row(const float* g, const float* u, const float* da, int64_t f, float* dg,
                         float* du);
// row[0:n] = softmax(row[0:n]); returns log Σ exp(row) of the input.
float softmax_row_inplace(float* row, int64_t n);
// dp[j] = scale * p[j] * (dp[j] - Σ_k p[k] dp[k]), j < n.
void softmax_backward_row(const float* p, float* dp, int64_t n, float scale);
// log Σ exp(z[j]), j < v, accumulated in double.
double logsumexp_row(const float* z, int64_t v);
// dz[j] = g * exp(z[j] - lse); dz may alias z.
void softmax_grad_row(const float* z, int64_t v, float lse, float g, float* dz);

// Forces the scalar versions (tests compare the two); returns the previous setting.
bool train_simd_force_scalar(bool on);

}  // namespace slm::train
