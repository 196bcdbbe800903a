// The decoder's element-wise and attention kernels on F32 rows: rms_norm, rope, softmax,
// swiglu, dot/axpy and single-head causal attention. Each has a scalar *_ref oracle.
#pragma once

#include <cstdint>

namespace slm {

// True when the AVX2+FMA kernels are used (decided once at run time).
bool ops_have_avx2();

// sum_i a[i] * b[i]
float dot_f32(const float* a, const float* b, int64_t n);
float dot_f32_ref(const float* a, const float* b, int64_t n);

// y[i] += a * x[i]
void axpy_f32(float a, const float* x, float* y, int64_t n);
void axpy_f32_ref(float a, const float* x, float* y, int64_t n);

// out = x / sqrt(mean(x²) + eps) * w over one row of n (out may alias x).
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* out);
void rms_norm_ref(const float* x, const float* w, int64_t n, float eps, float* out);

// In-place numerically stable softmax over n values (subtract the max before exp).
void softmax(float* x, int64_t n);
void softmax_ref(float* x, int64_t n);

// g[i] = silu(g[i]) * u[i], silu(v) = v / (1 + exp(-v)).
void swiglu(float* g, const float* u, int64_t n);
void swiglu_ref(float* g, const float* u, int64_t n);

// y[i] = exp(x[i]) (y may alias x). The SIMD form is within a few ulp of std::exp for results
// in the normal float range (denormal results lose precision; x < -104 gives 0).
void exp_f32(const float* x, float* y, int64_t n);
void exp_f32_ref(const float* x, float* y, int64_t n);

// Rotates one head vector x (head_dim) by angles pos·freq[i], given cos/sin of those angles
// (head_dim/2 each). interleaved: pairs (x[2i], x[2i+1]); otherwise halves (x[i], x[i+d/2]).
void rope(float* x, int64_t head_dim, const float* cos_t, const float* sin_t, bool interleaved);

// One query head against n_pos cached positions: out (head_dim) = softmax(q·Kᵀ·scale) · V.
// K and V rows are head_dim floats, row j at K + j * stride. scores holds n_pos floats.
void attention_head(const float* q, const float* k, const float* v, int64_t stride, int64_t n_pos,
                    int64_t head_dim, float scale, float* scores, float* out);
void attention_head_ref(const float* q, const float* k, const float* v, int64_t stride,
                        int64_t n_pos, int64_t head_dim, float scale, float* scores, float* out);

}  // namespace slm
