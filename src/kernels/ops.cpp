// Scalar and AVX2/FMA implementations of the decoder ops; the public entry points pick the
// SIMD kernel when the CPU has it (checked once), the *_ref functions are always scalar.
#include "kernels/ops.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/simd.h"

namespace slm {

bool ops_have_avx2() {
  static const bool has = cpu_has_avx2_fma();
  return has;
}

// ---- scalar references ----------------------------------------------------------------------

float dot_f32_ref(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

void axpy_f32_ref(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void rms_norm_ref(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void softmax_ref(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu_ref(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void exp_f32_ref(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void attention_head_ref(const float* q, const float* k, const float* v, int64_t stride,
                        int64_t n_pos, int64_t head_dim, float scale, float* scores, float* out) {
  for (int64_t j = 0; j < n_pos; ++j) scores[j] = dot_f32_ref(q, k + j * stride, head_dim) * scale;
  softmax_ref(scores, n_pos);
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0;
  for (int64_t j = 0; j < n_pos; ++j) axpy_f32_ref(scores[j], v + j * stride, out, head_dim);
}

// ---- AVX2 kernels ---------------------------------------------------------------------------

SLM_AVX2 static float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  }
  float s = hsum256(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

SLM_AVX2 static void axpy_avx2(float a, const float* x, float* y, int64_t n) {
  __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

SLM_AVX2 static void exp_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = std::exp(x[i]);
}

// silu(g)·u = g / (1 + exp(-g)) · u; exp(-g) = inf for g < -88.7 gives g / inf = -0, as the
// reference does.
SLM_AVX2 static void swiglu_avx2(float* g, const float* u, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(g + i);
    const __m256 den = _mm256_add_ps(one, exp256(_mm256_xor_ps(v, sign)));
    _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(v, den), _mm256_loadu_ps(u + i)));
  }
  for (; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// ---- dispatch -------------------------------------------------------------------------------

float dot_f32(const float* a, const float* b, int64_t n) {
  return ops_have_avx2() ? dot_avx2(a, b, n) : dot_f32_ref(a, b, n);
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  if (ops_have_avx2()) {
    axpy_avx2(a, x, y, n);
  } else {
    axpy_f32_ref(a, x, y, n);
  }
}

void rms_norm(const float* x, const float* w, int64_t n, float eps, float* out) {
  float ss = dot_f32(x, x, n);
  float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  if (ops_have_avx2()) {
    // exp(x - max) summed in float lanes (the reference sums in double: a relative 1e-7-ish
    // difference on the sum, so on every output).
    softmax_row_avx2(x, n);
  } else {
    softmax_ref(x, n);
  }
}

void swiglu(float* g, const float* u, int64_t n) {
  if (ops_have_avx2()) {
    swiglu_avx2(g, u, n);
  } else {
    swiglu_ref(g, u, n);
  }
}

void exp_f32(const float* x, float* y, int64_t n) {
  if (ops_have_avx2()) {
    exp_avx2(x, y, n);
  } else {
    exp_f32_ref(x, y, n);
  }
}

void rope(float* x, int64_t head_dim, const float* cos_t, const float* sin_t, bool interleaved) {
  int64_t half = head_dim / 2;
  if (interleaved) {
    for (int64_t i = 0; i < half; ++i) {
      float a = x[2 * i], b = x[2 * i + 1];
      x[2 * i] = a * cos_t[i] - b * sin_t[i];
      x[2 * i + 1] = a * sin_t[i] + b * cos_t[i];
    }
  } else {
    for (int64_t i = 0; i < half; ++i) {
      float a = x[i], b = x[i + half];
      x[i] = a * cos_t[i] - b * sin_t[i];
      x[i + half] = a * sin_t[i] + b * cos_t[i];
    }
  }
}

void attention_head(const float* q, const float* k, const float* v, int64_t stride, int64_t n_pos,
                    int64_t head_dim, float scale, float* scores, float* out) {
  for (int64_t j = 0; j < n_pos; ++j) scores[j] = dot_f32(q, k + j * stride, head_dim) * scale;
  softmax(scores, n_pos);
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0;
  for (int64_t j = 0; j < n_pos; ++j) axpy_f32(scores[j], v + j * stride, out, head_dim);
}

}  // namespace slm
