// Private to the K-quant dot kernels (qdot_kquant*.cpp): scale unpacking shared by the scalar
// and AVX2 code, AVX2 decoders of one super-block's quants, and the per-file entry points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/qdot.h"
#include "kernels/simd.h"

namespace slm::kquant {

// Super-block sizes in bytes (256 elements each).
constexpr int64_t k_qk = 256;
constexpr size_t k_q2_k_bytes = 84, k_q3_k_bytes = 110, k_q4_k_bytes = 144, k_q5_k_bytes = 176,
                 k_q6_k_bytes = 210;

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Q4_K / Q5_K: the 12 packed bytes hold eight 6-bit scales and eight 6-bit mins. As three
// little-endian words w0..w2 (bytes 0-3, 4-7, 8-11): scales 0-3 are the low 6 bits of w0's
// bytes, mins 0-3 those of w1; scales 4-7 take their low nibble from w2's low nibbles and their
// top 2 bits from the top bits of w0's bytes; mins 4-7 likewise from w2's high nibbles and w1.
// out[0..8) = scales, out[8..16) = mins.
inline void unpack_scales_k4(const uint8_t* p, uint8_t out[16]) {
  uint32_t w[3];
  std::memcpy(w, p, 12);
  constexpr uint32_t k_low6 = 0x3f3f3f3f, k_low4 = 0x0f0f0f0f, k_low2 = 0x03030303;
  const uint32_t r[4] = {w[0] & k_low6,
                         (w[2] & k_low4) | (((w[0] >> 6) & k_low2) << 4),
                         w[1] & k_low6,
                         ((w[2] >> 4) & k_low4) | (((w[1] >> 6) & k_low2) << 4)};
  std::memcpy(out, r, 16);
}

// Q3_K: sixteen 6-bit scales biased by 32. Scale k's low nibble is the low (k < 8) or high
// (k >= 8) nibble of byte k % 8; its top 2 bits are bits 2*(k/4).. of byte 8 + k % 4. With
// words w0..w2 that is one mask-and-shift per group of four scales.
inline void unpack_scales_q3_k(const uint8_t* p, int8_t out[16]) {
  uint32_t w[3];
  std::memcpy(w, p, 12);
  constexpr uint32_t k_low4 = 0x0f0f0f0f, k_low2 = 0x03030303;
  const uint32_t r[4] = {(w[0] & k_low4) | ((w[2] & k_low2) << 4),
                         (w[1] & k_low4) | (((w[2] >> 2) & k_low2) << 4),
                         ((w[0] >> 4) & k_low4) | (((w[2] >> 4) & k_low2) << 4),
                         ((w[1] >> 4) & k_low4) | (((w[2] >> 6) & k_low2) << 4)};
  uint8_t u[16];
  std::memcpy(u, r, 16);
  for (int k = 0; k < 16; ++k) out[k] = static_cast<int8_t>(u[k] - 32);
}

// ---- AVX2 decoders: q[c] = the 32 quants of elements 32c..32c+31 as unsigned bytes ----------
// 16-bit shifts move bits across byte boundaries; every shift below is followed by a mask that
// keeps only bits which came from the same byte.

SLM_AVX2 inline __m256i loadu256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Q2_K: 2-bit quants 0..3. Chunk 4h + s is bits 2s..2s+1 of the 32 qs bytes of half h.
SLM_AVX2 inline void decode_q2_k(const uint8_t* b, __m256i q[8]) {
  const __m256i m3 = _mm256_set1_epi8(3);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = loadu256(b + 16 + 32 * h);
    q[4 * h + 0] = _mm256_and_si256(v, m3);
    q[4 * h + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
    q[4 * h + 2] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
    q[4 * h + 3] = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
  }
}

// Q3_K: q + 4 * hbit in 0..7 (the stored value is that minus 4). Chunk c takes bit c of hmask.
SLM_AVX2 inline void decode_q3_k(const uint8_t* b, __m256i q[8]) {
  const __m256i m4 = _mm256_set1_epi8(4);
  __m256i hm = loadu256(b);
  decode_q2_k(b + 16, q);  // same 2-bit layout, 16 bytes further on
  for (int c = 0; c < 8; ++c) {
    // Bit 0 of each byte of hm is bit c of the original byte (shifted right c times).
    q[c] = _mm256_or_si256(q[c], _mm256_and_si256(_mm256_slli_epi16(hm, 2), m4));
    hm = _mm256_srli_epi16(hm, 1);
  }
}

// Q4_K: 4-bit quants 0..15; chunk 2k is the low nibbles of qs[32k..], chunk 2k+1 the high.
SLM_AVX2 inline void decode_q4_k(const uint8_t* b, __m256i q[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (int k = 0; k < 4; ++k) {
    const __m256i v = loadu256(b + 16 + 32 * k);
    q[2 * k] = _mm256_and_si256(v, m4);
    q[2 * k + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  }
}

// Q5_K: as Q4_K plus 16 * (bit c of qh[l]) for chunk c.
SLM_AVX2 inline void decode_q5_k(const uint8_t* b, __m256i q[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m16 = _mm256_set1_epi8(0x10);
  __m256i h = loadu256(b + 16);
  for (int k = 0; k < 4; ++k) {
    const __m256i v = loadu256(b + 48 + 32 * k);
    q[2 * k] = _mm256_or_si256(_mm256_and_si256(v, m4),
                               _mm256_and_si256(_mm256_slli_epi16(h, 4), m16));
    q[2 * k + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                   _mm256_and_si256(_mm256_slli_epi16(h, 3), m16));
    h = _mm256_srli_epi16(h, 2);
  }
}

// Q6_K: q in 0..63 (the stored value is q - 32). Per half h (ql + 64h, qh + 32h): chunk 0 is
// ql[0..32) low nibbles with qh bits 0-1, chunk 1 ql[32..64) low with bits 2-3, chunk 2
// ql[0..32) high with bits 4-5, chunk 3 ql[32..64) high with bits 6-7.
SLM_AVX2 inline void decode_q6_k(const uint8_t* b, __m256i q[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3),
                m12 = _mm256_set1_epi8(0x0c), m48 = _mm256_set1_epi8(0x30);
  for (int h = 0; h < 2; ++h) {
    const __m256i la = loadu256(b + 64 * h), lb = loadu256(b + 64 * h + 32);
    const __m256i hv = loadu256(b + 128 + 32 * h);
    q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(la, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(hv, m3), 4));
    q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(lb, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(hv, m12), 2));
    q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4),
                                   _mm256_and_si256(hv, m48));
    q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hv, 2), m48));
  }
}

// ---- entry points of the per-file halves -----------------------------------------------------
void tile_q2_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba, int nc,
                    float* s, int64_t ls);
void tile_q3_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba, int nc,
                    float* s, int64_t ls);
void tile_q4_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba, int nc,
                    float* s, int64_t ls);
void tile_q5_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba, int nc,
                    float* s, int64_t ls);
void tile_q6_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba, int nc,
                    float* s, int64_t ls);

// AVX2 dequantizers (qdot_kquant_dequant.cpp); false for a type they do not handle.
bool dequantize_avx2(DType t, const void* src, float* dst, int64_t n);

}  // namespace slm::kquant
