// Small typed AVX2 helpers shared by the kernels: the target attribute, CPU detection and
// horizontal sums. Functions marked SLM_AVX2 are only called after cpu_has_avx2_fma().
#pragma once

#include <immintrin.h>

#define SLM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace slm {

inline bool cpu_has_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}

SLM_AVX2 inline float hsum256(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  __m128 s = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, s);
  s = _mm_add_ss(s, sh);
  return _mm_cvtss_f32(s);
}

}  // namespace slm
