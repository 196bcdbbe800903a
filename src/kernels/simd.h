// Small typed AVX2 helpers shared by the kernels: the target attribute, CPU detection and
// horizontal sums. Functions marked SLM_AVX2 are only called after cpu_has_avx2_fma().
#pragma once

#include <cpuid.h>
#include <immintrin.h>

#define SLM_AVX2 __attribute__((target("avx2,fma,f16c")))
// The same for a lambda inside an SLM_AVX2 function (a lambda does not inherit the target).
#define SLM_AVX2_LAMBDA __attribute__((target("avx2,fma,f16c")))

namespace slm {

// CPUID (clang 14's __builtin_cpu_supports has no "f16c"): AVX2, FMA, F16C, and the OS
// saving YMM state (OSXSAVE + XCR0 bits 1-2).
inline bool cpu_has_avx2_fma() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), f16c = c & (1u << 29);
  if (!(fma && osxsave && f16c)) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 6u) != 6u) return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return b & (1u << 5);
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
