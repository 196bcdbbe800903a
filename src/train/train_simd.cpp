// Row kernels of the training ops: scalar references (std::exp) and AVX2 versions with a
// polynomial exp (exp256 in kernels/simd.h, ~1 ulp), picked once by CPUID.
#include "train/train_simd.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "kernels/simd.h"

namespace slm::train {

namespace {

std::atomic<bool> g_force_scalar{false};

bool use_avx2() {
  static const bool avx2 = cpu_has_avx2_fma();
  return avx2 && !g_force_scalar.load(std::memory_order_relaxed);
}

// ---- scalar references -----------------------------------------------------------------------

void swiglu_row_scalar(const float* g, const float* u, int64_t f, float* a) {
  for (int64_t j = 0; j < f; ++j) a[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
}

void swiglu_backward_row_scalar(const float* g, const float* u, const float* da, int64_t f,
                                float* dg, float* du) {
  for (int64_t j = 0; j < f; ++j) {
    const float s = 1.0f / (1.0f + std::exp(-g[j]));
    du[j] = da[j] * g[j] * s;
    dg[j] = da[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
  }
}

float softmax_row_scalar(float* row, int64_t n) {
  float mx = row[0];
  for (int64_t j = 1; j < n; ++j) mx = std::max(mx, row[j]);
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    row[j] = std::exp(row[j] - mx);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
  return mx + std::log(sum);
}

void softmax_backward_row_scalar(const float* p, float* dp, int64_t n, float scale) {
  float dot = 0;
  for (int64_t j = 0; j < n; ++j) dot += p[j] * dp[j];
  for (int64_t j = 0; j < n; ++j) dp[j] = scale * p[j] * (dp[j] - dot);
}

double logsumexp_row_scalar(const float* z, int64_t v) {
  float mx = z[0];
  for (int64_t j = 1; j < v; ++j) mx = std::max(mx, z[j]);
  double sum = 0;
  for (int64_t j = 0; j < v; ++j) sum += std::exp(static_cast<double>(z[j]) - mx);
  return static_cast<double>(mx) + std::log(sum);
}

void softmax_grad_row_scalar(const float* z, int64_t v, float lse, float g, float* dz) {
  for (int64_t j = 0; j < v; ++j) dz[j] = g * std::exp(z[j] - lse);
}

// ---- AVX2 ------------------------------------------------------------------------------------

SLM_AVX2 inline __m256 sigmoid256(__m256 g) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

SLM_AVX2 void swiglu_row_avx2(const float* g, const float* u, int64_t f, float* a) {
  int64_t j = 0;
  for (; j + 8 <= f; j += 8) {
    const __m256 gv = _mm256_loadu_ps(g + j);
    _mm256_storeu_ps(a + j, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid256(gv)), _mm256_loadu_ps(u + j)));
  }
  if (j < f) swiglu_row_scalar(g + j, u + j, f - j, a + j);
}

SLM_AVX2 void swiglu_backward_row_avx2(const float* g, const float* u, const float* da, int64_t f,
                                       float* dg, float* du) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t j = 0;
  for (; j + 8 <= f; j += 8) {
    const __m256 gv = _mm256_loadu_ps(g + j), uv = _mm256_loadu_ps(u + j);
    const __m256 d = _mm256_loadu_ps(da + j), s = sigmoid256(gv);
    _mm256_storeu_ps(du + j, _mm256_mul_ps(_mm256_mul_ps(d, gv), s));
    const __m256 t = _mm256_fmadd_ps(gv, _mm256_sub_ps(one, s), one);
    _mm256_storeu_ps(dg + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, uv), s), t));
  }
  if (j < f) swiglu_backward_row_scalar(g + j, u + j, da + j, f - j, dg + j, du + j);
}

SLM_AVX2 void softmax_backward_row_avx2(const float* p, float* dp, int64_t n, float scale) {
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(dp + j), acc);
  float dot = hsum256(acc);
  for (; j < n; ++j) dot += p[j] * dp[j];
  const __m256 dv = _mm256_set1_ps(dot), sv = _mm256_set1_ps(scale);
  j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 pv = _mm256_loadu_ps(p + j);
    const __m256 r = _mm256_mul_ps(_mm256_mul_ps(sv, pv), _mm256_sub_ps(_mm256_loadu_ps(dp + j), dv));
    _mm256_storeu_ps(dp + j, r);
  }
  for (; j < n; ++j) dp[j] = scale * p[j] * (dp[j] - dot);
}

SLM_AVX2 double logsumexp_row_avx2(const float* z, int64_t v) {
  const float mx = row_max_avx2(z, v);
  const __m256 mv = _mm256_set1_ps(mx);
  // Float lanes summed into double every 512 values, so the sum keeps ~1e-7 relative accuracy
  // for any vocabulary size.
  double sum = 0;
  int64_t j = 0;
  while (j + 8 <= v) {
    __m256 acc = _mm256_setzero_ps();
    const int64_t end = std::min(v, j + 512);
    for (; j + 8 <= end; j += 8) acc = _mm256_add_ps(acc, exp256(_mm256_sub_ps(_mm256_loadu_ps(z + j), mv)));
    sum += hsum256(acc);
  }
  for (; j < v; ++j) sum += std::exp(static_cast<double>(z[j]) - mx);
  return static_cast<double>(mx) + std::log(sum);
}

SLM_AVX2 void softmax_grad_row_avx2(const float* z, int64_t v, float lse, float g, float* dz) {
  const __m256 lv = _mm256_set1_ps(lse), gv = _mm256_set1_ps(g);
  int64_t j = 0;
  for (; j + 8 <= v; j += 8) {
    _mm256_storeu_ps(dz + j, _mm256_mul_ps(gv, exp256(_mm256_sub_ps(_mm256_loadu_ps(z + j), lv))));
  }
  for (; j < v; ++j) dz[j] = g * std::exp(z[j] - lse);
}

}  // namespace

void swiglu_row(const float* g, const float* u, int64_t f, float* a) {
  if (use_avx2()) return swiglu_row_avx2(g, u, f, a);
  swiglu_row_scalar(g, u, f, a);
}

void swiglu_backward_row(const float* g, const float* u, const float* da, int64_t f, float* dg,
                         float* du) {
  if (use_avx2()) return swiglu_backward_row_avx2(g, u, da, f, dg, du);
  swiglu_backward_row_scalar(g, u, da, f, dg, du);
}

float softmax_row_inplace(float* row, int64_t n) {
  if (use_avx2()) return softmax_row_avx2(row, n);
  return softmax_row_scalar(row, n);
}

void softmax_backward_row(const float* p, float* dp, int64_t n, float scale) {
  if (use_avx2()) return softmax_backward_row_avx2(p, dp, n, scale);
  softmax_backward_row_scalar(p, dp, n, scale);
}

double logsumexp_row(const float* z, int64_t v) {
  if (use_avx2()) return logsumexp_row_avx2(z, v);
  return logsumexp_row_scalar(z, v);
}

void softmax_grad_row(const float* z, int64_t v, float lse, float g, float* dz) {
  if (use_avx2()) return softmax_grad_row_avx2(z, v, lse, g, dz);
  softmax_grad_row_scalar(z, v, lse, g, dz);
}

bool train_simd_force_scalar(bool on) { return g_force_scalar.exchange(on); }

}  // namespace slm::train
