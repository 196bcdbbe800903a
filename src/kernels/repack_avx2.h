// AVX2 reading of the x8 layout (kernels/repack.h), shared by the decode tiles and the float
// GEMM's panel packer. Call only when the CPU has AVX2.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/simd.h"

namespace slm {

// The quants of one x8 block for its eight rows, p = the block's bytes after the scales:
// lo[k] / hi[k] (k = 0..3), lane r = elements 4k..4k+3 / 16+4k..16+4k+3 of row r, one byte
// each, unsigned (0..15; 0..31 with Q5's fifth bits).
template <bool Q5>
SLM_AVX2 inline void x8_quants(const uint8_t* p, __m256i lo[4], __m256i hi[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const uint8_t* q = Q5 ? p + 32 : p;
  for (int k = 0; k < 4; ++k) {
    const __m256i g = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * k));
    lo[k] = _mm256_and_si256(g, m4);
    hi[k] = _mm256_and_si256(_mm256_srli_epi16(g, 4), m4);
  }
  if constexpr (Q5) {
    // Bit 8j + m of a lane is the fifth bit of byte j of vector m (lo: m = k, hi: m = 4 + k):
    // shifted to bit 4 of its byte, where bits of the neighbouring bytes cannot land.
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    lo[0] = _mm256_or_si256(lo[0], _mm256_and_si256(_mm256_slli_epi32(qh, 4), bit4));
    lo[1] = _mm256_or_si256(lo[1], _mm256_and_si256(_mm256_slli_epi32(qh, 3), bit4));
    lo[2] = _mm256_or_si256(lo[2], _mm256_and_si256(_mm256_slli_epi32(qh, 2), bit4));
    lo[3] = _mm256_or_si256(lo[3], _mm256_and_si256(_mm256_slli_epi32(qh, 1), bit4));
    hi[0] = _mm256_or_si256(hi[0], _mm256_and_si256(qh, bit4));
    hi[1] = _mm256_or_si256(hi[1], _mm256_and_si256(_mm256_srli_epi32(qh, 1), bit4));
    hi[2] = _mm256_or_si256(hi[2], _mm256_and_si256(_mm256_srli_epi32(qh, 2), bit4));
    hi[3] = _mm256_or_si256(hi[3], _mm256_and_si256(_mm256_srli_epi32(qh, 3), bit4));
  }
}

}  // namespace slm
