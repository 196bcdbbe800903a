// AVX2 half of the int8 GEMM (kernels/qgemm.h): weight panels of 8 interleaved rows and the
// 8-row x N-token micro-kernels built on _mm256_maddubs_epi16.
#include <immintrin.h>

#include <cstring>

#include "kernels/qgemm.h"
#include "kernels/simd.h"

namespace slm::qgemm_detail {

namespace {

// Tokens per micro-kernel call: N int16/int32 block sums and N float accumulators, plus the
// weight, its absolute value, an activation broadcast and a constant, within the 16 ymm
// registers. 4, 5 and 6 measured the same on Zen 3 (Q8_0 ~58, Q4_0 ~100 GMAC/s per core in
// L1); 4 leaves the fewest ragged tokens.
constexpr int k_nt = 4;

SLM_AVX2 inline void transpose8x8(__m256 v[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
  const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// One weight block's 32 quants in element order: Q8_0 as they are (signed), Q4_0 as the
// unsigned nibbles (elements 0..15 are the low nibbles of bytes 0..15, 16..31 the high ones).
template <DType T>
SLM_AVX2 inline __m256i block_quants(const uint8_t* blk) {
  if constexpr (T == DType::Q8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  } else {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m256i both =
        _mm256_inserti128_si256(_mm256_castsi128_si256(x), _mm_srli_epi16(x, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
  }
}

template <DType T>
SLM_AVX2 void repack(const uint8_t* w0, size_t bw, int nr, int64_t b0, int64_t nbk, int8_t* q,
                     float* d) {
  constexpr size_t block_bytes = T == DType::Q8_0 ? 34 : 18;
  for (int64_t b = 0; b < nbk; ++b) {
    __m256 v[8];
    alignas(16) uint16_t h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int r = 0; r < 8; ++r) {
      if (r < nr) {
        const uint8_t* blk =
            w0 + static_cast<size_t>(r) * bw + static_cast<size_t>(b0 + b) * block_bytes;
        std::memcpy(&h[r], blk, 2);
        v[r] = _mm256_castsi256_ps(block_quants<T>(blk));
      } else {
        v[r] = _mm256_setzero_ps();
      }
    }
    // Row r's 8 dwords (4 elements each) become dword r of steps 0..7.
    transpose8x8(v);
    int8_t* qb = q + b * k_panel_block_bytes;
    for (int s = 0; s < 8; ++s) _mm256_store_ps(reinterpret_cast<float*>(qb + 32 * s), v[s]);
    _mm256_store_ps(d + b * 8,
                    _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h))));
  }
}

SLM_AVX2 inline __m256i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

SLM_AVX2 inline float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

// 8 outputs of one token: all of them, or (ragged last panel) the rows the mask selects; the
// masked load and store touch no memory outside them.
SLM_AVX2 inline __m256 load_y(const float* y, bool full, __m256i mask) {
  return full ? _mm256_loadu_ps(y) : _mm256_maskload_ps(y, mask);
}

SLM_AVX2 inline void store_y(float* y, __m256 v, bool full, __m256i mask) {
  if (full) {
    _mm256_storeu_ps(y, v);
  } else {
    _mm256_maskstore_ps(y, mask, v);
  }
}

// Keeps the compiler from regrouping a chain of integer adds into a tree whose partial sums
// outlive the registers (GCC 12 did, spilling every step to the stack): the empty asm makes v
// opaque, so each add completes into the accumulator in source order.
SLM_AVX2 inline void pin(__m256i& v) {
  __asm__("" : "+x"(v));
}

// One step (4 elements of 8 rows) for one token: s += w · a, a = the token's 4 quants at p.
// Q4_0: maddubs(unsigned nibble, signed activation) pairs are at most 2 * 15 * 128 in
// magnitude, so the 8 steps of a block add up in int16 without saturating (8 * 3840 < 32767).
// Q8_0: |w| (wa) against the activation carrying w's sign, pairs at most 2 * 128 * 127, widened
// to int32 every step since two such pairs could exceed int16.
template <DType T>
SLM_AVX2 inline void step(__m256i& s, __m256i w, __m256i wa, const uint8_t* p, __m256i ones) {
  if constexpr (T == DType::Q4_0) {
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w, bcast4(p)));
  } else {
    const __m256i prod = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(bcast4(p), w));
    s = _mm256_add_epi32(s, _mm256_madd_epi16(prod, ones));
  }
  pin(s);
}

// End of a block for one token: f = fma(d_w * d_a, int32 sum, f). Q4_0 widens the int16 sums
// and subtracts corr = 8 * Σ q_a, which turns the unsigned nibbles back into q - 8.
template <DType T>
SLM_AVX2 inline void finish(__m256& f, __m256i s, __m256 dw, const uint8_t* block, int32_t corr,
                            __m256i ones) {
  if constexpr (T == DType::Q4_0) {
    s = _mm256_sub_epi32(_mm256_madd_epi16(s, ones), _mm256_set1_epi32(corr));
  }
  const __m256 da = _mm256_set1_ps(load_f32(block));
  f = _mm256_fmadd_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(s), f);
}

// 8 rows x N tokens (N = 1..k_nt) over nbk blocks. The accumulators are named variables, not
// arrays: arrays indexed in unrolled loops stayed in memory with GCC 12.
template <DType T, int N>
SLM_AVX2 void tile(const int8_t* q, const float* d, int64_t nbk, const uint8_t* act, size_t ba,
                   const int32_t* corr, int64_t lc, float* y, int64_t ldy, int nr,
                   bool accumulate) {
  static_assert(N >= 1 && N <= 6);
  constexpr size_t ab_bytes = sizeof(ActBlockQ8_0);
  const __m256i ones = _mm256_set1_epi16(1);
  const bool full = nr == 8;
  const __m256i mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  // Token u's pointers; tokens past N alias token 0 and are never used.
  auto tok = [&](int u) { return u < N ? act + static_cast<size_t>(u) * ba : act; };
  const uint8_t *a0 = tok(0), *a1 = tok(1), *a2 = tok(2), *a3 = tok(3), *a4 = tok(4), *a5 = tok(5);
  __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0;
  if (accumulate) {
    f0 = load_y(y, full, mask);
    if constexpr (N > 1) f1 = load_y(y + ldy, full, mask);
    if constexpr (N > 2) f2 = load_y(y + 2 * ldy, full, mask);
    if constexpr (N > 3) f3 = load_y(y + 3 * ldy, full, mask);
    if constexpr (N > 4) f4 = load_y(y + 4 * ldy, full, mask);
    if constexpr (N > 5) f5 = load_y(y + 5 * ldy, full, mask);
  }
  for (int64_t b = 0; b < nbk; ++b) {
    const int8_t* qb = q + b * k_panel_block_bytes;
    const size_t off = static_cast<size_t>(b) * ab_bytes;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0;
#pragma GCC unroll 8
    for (int st = 0; st < 8; ++st) {
      const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(qb + 32 * st));
      const __m256i wa = T == DType::Q8_0 ? _mm256_abs_epi8(w) : w;
      const size_t k = off + 4 + 4 * static_cast<size_t>(st);  // past the block's scale
      step<T>(s0, w, wa, a0 + k, ones);
      if constexpr (N > 1) step<T>(s1, w, wa, a1 + k, ones);
      if constexpr (N > 2) step<T>(s2, w, wa, a2 + k, ones);
      if constexpr (N > 3) step<T>(s3, w, wa, a3 + k, ones);
      if constexpr (N > 4) step<T>(s4, w, wa, a4 + k, ones);
      if constexpr (N > 5) step<T>(s5, w, wa, a5 + k, ones);
    }
    const __m256 dw = _mm256_load_ps(d + b * 8);
    finish<T>(f0, s0, dw, a0 + off, T == DType::Q4_0 ? corr[b] : 0, ones);
    if constexpr (N > 1) finish<T>(f1, s1, dw, a1 + off, T == DType::Q4_0 ? corr[lc + b] : 0, ones);
    if constexpr (N > 2)
      finish<T>(f2, s2, dw, a2 + off, T == DType::Q4_0 ? corr[2 * lc + b] : 0, ones);
    if constexpr (N > 3)
      finish<T>(f3, s3, dw, a3 + off, T == DType::Q4_0 ? corr[3 * lc + b] : 0, ones);
    if constexpr (N > 4)
      finish<T>(f4, s4, dw, a4 + off, T == DType::Q4_0 ? corr[4 * lc + b] : 0, ones);
    if constexpr (N > 5)
      finish<T>(f5, s5, dw, a5 + off, T == DType::Q4_0 ? corr[5 * lc + b] : 0, ones);
  }
  store_y(y, f0, full, mask);
  if constexpr (N > 1) store_y(y + ldy, f1, full, mask);
  if constexpr (N > 2) store_y(y + 2 * ldy, f2, full, mask);
  if constexpr (N > 3) store_y(y + 3 * ldy, f3, full, mask);
  if constexpr (N > 4) store_y(y + 4 * ldy, f4, full, mask);
  if constexpr (N > 5) store_y(y + 5 * ldy, f5, full, mask);
}

template <DType T>
SLM_AVX2 void tile_tokens(const int8_t* q, const float* d, int64_t nbk, const uint8_t* act,
                          size_t ba, const int32_t* corr, int64_t lc, int64_t nt, float* y,
                          int64_t ldy, int nr, bool accumulate) {
  int64_t t = 0;
  for (; t + k_nt <= nt; t += k_nt) {
    tile<T, k_nt>(q, d, nbk, act + t * ba, ba, corr + t * lc, lc, y + t * ldy, ldy, nr, accumulate);
  }
  const int64_t rest = nt - t;
  const uint8_t* a = act + t * ba;
  const int32_t* c = corr + t * lc;
  float* yt = y + t * ldy;
  switch (rest) {  // fewer than k_nt tokens left
    case 1:
      tile<T, 1>(q, d, nbk, a, ba, c, lc, yt, ldy, nr, accumulate);
      break;
    case 2:
      tile<T, 2>(q, d, nbk, a, ba, c, lc, yt, ldy, nr, accumulate);
      break;
    case 3:
      tile<T, 3>(q, d, nbk, a, ba, c, lc, yt, ldy, nr, accumulate);
      break;
    case 4:
      tile<T, 4>(q, d, nbk, a, ba, c, lc, yt, ldy, nr, accumulate);
      break;
    case 5:
      tile<T, 5>(q, d, nbk, a, ba, c, lc, yt, ldy, nr, accumulate);
      break;
    default:
      break;
  }
}

}  // namespace

void repack_avx2(DType t, const uint8_t* w0, size_t bw, int nr, int64_t b0, int64_t nbk, int8_t* q,
                 float* d) {
  if (t == DType::Q8_0) {
    repack<DType::Q8_0>(w0, bw, nr, b0, nbk, q, d);
  } else {
    repack<DType::Q4_0>(w0, bw, nr, b0, nbk, q, d);
  }
}

void tile_avx2(DType t, const int8_t* q, const float* d, int64_t nbk, const uint8_t* act, size_t ba,
               const int32_t* corr, int64_t lc, int64_t nt, float* y, int64_t ldy, int nr,
               bool accumulate) {
  if (t == DType::Q8_0) {
    tile_tokens<DType::Q8_0>(q, d, nbk, act, ba, corr, lc, nt, y, ldy, nr, accumulate);
  } else {
    tile_tokens<DType::Q4_0>(q, d, nbk, act, ba, corr, lc, nt, y, ldy, nr, accumulate);
  }
}

}  // namespace slm::qgemm_detail
