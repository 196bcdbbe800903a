// AVX2 half of the int8 GEMM (kernels/qgemm.h): weight panels of 16 interleaved rows and the
// 16-row x N-token micro-kernels built on _mm256_maddubs_epi16.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/qgemm.h"
#include "kernels/repack.h"
#include "kernels/repack_avx2.h"
#include "kernels/simd.h"

namespace slm::qgemm_detail {

namespace {

// Tokens per micro-kernel call: per token two int16/int32 block sums and two float
// accumulators (one per 8-row half), plus the two weight vectors (and, for Q8_0, their absolute
// values), an activation broadcast and a constant, within the 16 ymm registers. Measured on
// Zen 3, in L1, per core: Q4_0 16 rows x 3 tokens ~118 GMAC/s against ~105 for 8 x 4; Q8_0
// ~60 whether 8 x 4, 16 x 2 or 16 x 3 (its maddubs + madd per step are the limit).
template <DType T>
constexpr int k_nt = T == DType::Q8_0 ? 2 : 3;

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

SLM_AVX2 inline short half_bits(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return static_cast<short>(h);
}

template <DType T>
SLM_AVX2 void repack(const uint8_t* w0, size_t bw, int nr, int64_t b0, int64_t nbk, int8_t* q,
                     float* d) {
  constexpr size_t block_bytes = T == DType::Q8_0 ? 34 : 18;
  for (int64_t b = 0; b < nbk; ++b) {
    int8_t* qb = q + b * k_panel_block_bytes;
    const uint8_t* base = w0 + static_cast<size_t>(b0 + b) * block_bytes;
    for (int g = 0; g < 2; ++g) {
      __m256 v[8];
      short h[8];
      for (int i = 0; i < 8; ++i) {
        const int r = 8 * g + i;
        const uint8_t* blk = base + static_cast<size_t>(r) * bw;
        h[i] = r < nr ? half_bits(blk) : 0;
        v[i] = r < nr ? _mm256_castsi256_ps(block_quants<T>(blk)) : _mm256_setzero_ps();
      }
      // Row r's 8 dwords (4 elements each) become dword r % 8 of half r / 8 of steps 0..7.
      transpose8x8(v);
      for (int s = 0; s < 8; ++s) {
        _mm256_store_ps(reinterpret_cast<float*>(qb + 64 * s + 32 * g), v[s]);
      }
      // The scales go through registers: eight 2-byte stores read back as one 16-byte load
      // would miss store-to-load forwarding on every block.
      const __m128i hv = _mm_setr_epi16(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
      _mm256_store_ps(d + b * 16 + 8 * g, _mm256_cvtph_ps(hv));
    }
  }
}

SLM_AVX2 void repack_x8(const uint8_t* g0, size_t group_bytes, int nr, int64_t b0, int64_t nbk,
                        int8_t* q, float* d) {
  for (int64_t b = 0; b < nbk; ++b) {
    int8_t* qb = q + b * k_panel_block_bytes;
    for (int g = 0; g < 2; ++g) {
      if (8 * g >= nr) {
        for (int s = 0; s < 8; ++s) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(qb + 64 * s + 32 * g),
                             _mm256_setzero_si256());
        }
        _mm256_store_ps(d + b * 16 + 8 * g, _mm256_setzero_ps());
        continue;
      }
      const uint8_t* blk =
          g0 + g * group_bytes + static_cast<size_t>(b0 + b) * k_q4_0_x8_block_bytes;
      _mm256_store_ps(d + b * 16 + 8 * g,
                      _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk))));
      // Lane r of lo[k] / hi[k] holds row r's elements 4k.. (step k) / 16 + 4k.. (step 4 + k).
      __m256i lo[4], hi[4];
      x8_quants<false>(blk + 16, lo, hi);
      for (int k = 0; k < 4; ++k) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(qb + 64 * k + 32 * g), lo[k]);
        _mm256_store_si256(reinterpret_cast<__m256i*>(qb + 64 * (4 + k) + 32 * g), hi[k]);
      }
    }
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

// One step (4 elements of 16 rows) for one token: s0 += w0 · a, s1 += w1 · a (rows 0-7, 8-15),
// a = the token's 4 quants at p, broadcast once for both halves.
// Q4_0: maddubs(unsigned nibble, signed activation) pairs are at most 2 * 15 * 128 in
// magnitude, so the 8 steps of a block add up in int16 without saturating (8 * 3840 < 32767).
// Q8_0: |w| (wa) against the activation carrying w's sign, pairs at most 2 * 128 * 127, widened
// to int32 every step since two such pairs could exceed int16.
template <DType T>
SLM_AVX2 inline void step2(__m256i& s0, __m256i& s1, __m256i w0, __m256i w1, __m256i wa0,
                           __m256i wa1, const uint8_t* p, __m256i ones) {
  const __m256i a = bcast4(p);
  if constexpr (T == DType::Q4_0) {
    s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(w0, a));
    s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(w1, a));
  } else {
    s0 = _mm256_add_epi32(
        s0, _mm256_madd_epi16(_mm256_maddubs_epi16(wa0, _mm256_sign_epi8(a, w0)), ones));
    s1 = _mm256_add_epi32(
        s1, _mm256_madd_epi16(_mm256_maddubs_epi16(wa1, _mm256_sign_epi8(a, w1)), ones));
  }
  pin(s0);
  pin(s1);
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

// 16 rows x N tokens (N = 1..3) over nbk blocks: one activation broadcast feeds both 8-row
// halves. The accumulators are named variables, not arrays: arrays indexed in unrolled loops
// stayed in memory with GCC 12.
template <DType T, int N>
SLM_AVX2 void tile(const int8_t* q, const float* d, int64_t nbk, const uint8_t* act, size_t ba,
                   const int32_t* corr, int64_t lc, float* y, int64_t ldy, int nr,
                   bool accumulate) {
  static_assert(N >= 1 && N <= 3);
  constexpr size_t ab_bytes = sizeof(ActBlockQ8_0);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const bool full0 = nr >= 8, full1 = nr >= 16;
  const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
  const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
  float* y1 = y + 8;
  auto tok = [&](int u) { return u < N ? act + static_cast<size_t>(u) * ba : act; };
  const uint8_t *a0 = tok(0), *a1 = tok(1), *a2 = tok(2);
  __m256 f00 = _mm256_setzero_ps(), f01 = f00, f10 = f00, f11 = f00, f20 = f00, f21 = f00;
  if (accumulate) {
    f00 = load_y(y, full0, mask0);
    f01 = load_y(y1, full1, mask1);
    if constexpr (N > 1) {
      f10 = load_y(y + ldy, full0, mask0);
      f11 = load_y(y1 + ldy, full1, mask1);
    }
    if constexpr (N > 2) {
      f20 = load_y(y + 2 * ldy, full0, mask0);
      f21 = load_y(y1 + 2 * ldy, full1, mask1);
    }
  }
  for (int64_t b = 0; b < nbk; ++b) {
    const int8_t* qb = q + b * k_panel_block_bytes;
    const size_t off = static_cast<size_t>(b) * ab_bytes;
    __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00;
#pragma GCC unroll 8
    for (int st = 0; st < 8; ++st) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qb + 64 * st));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qb + 64 * st + 32));
      const __m256i wa0 = T == DType::Q8_0 ? _mm256_abs_epi8(w0) : w0;
      const __m256i wa1 = T == DType::Q8_0 ? _mm256_abs_epi8(w1) : w1;
      const size_t k = off + 4 + 4 * static_cast<size_t>(st);  // past the block's scale
      step2<T>(s00, s01, w0, w1, wa0, wa1, a0 + k, ones);
      if constexpr (N > 1) step2<T>(s10, s11, w0, w1, wa0, wa1, a1 + k, ones);
      if constexpr (N > 2) step2<T>(s20, s21, w0, w1, wa0, wa1, a2 + k, ones);
    }
    const __m256 dw0 = _mm256_load_ps(d + b * 16), dw1 = _mm256_load_ps(d + b * 16 + 8);
    auto c = [&](int u) { return T == DType::Q4_0 ? corr[u * lc + b] : 0; };
    finish<T>(f00, s00, dw0, a0 + off, c(0), ones);
    finish<T>(f01, s01, dw1, a0 + off, c(0), ones);
    if constexpr (N > 1) {
      finish<T>(f10, s10, dw0, a1 + off, c(1), ones);
      finish<T>(f11, s11, dw1, a1 + off, c(1), ones);
    }
    if constexpr (N > 2) {
      finish<T>(f20, s20, dw0, a2 + off, c(2), ones);
      finish<T>(f21, s21, dw1, a2 + off, c(2), ones);
    }
  }
  store_y(y, f00, full0, mask0);
  store_y(y1, f01, full1, mask1);
  if constexpr (N > 1) {
    store_y(y + ldy, f10, full0, mask0);
    store_y(y1 + ldy, f11, full1, mask1);
  }
  if constexpr (N > 2) {
    store_y(y + 2 * ldy, f20, full0, mask0);
    store_y(y1 + 2 * ldy, f21, full1, mask1);
  }
}

// Issues lines [l0, l1) of the prefetch plan (line l: row l / lines_per_row).
inline void prefetch_lines(const PanelPrefetch& pf, int64_t lines_per_row, int64_t l0, int64_t l1) {
  for (int64_t l = l0; l < l1; ++l) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(pf.row0) +
                        static_cast<uintptr_t>(l / lines_per_row) * pf.stride +
                        static_cast<uintptr_t>(l % lines_per_row) * 64;
    _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T1);
  }
}

template <DType T>
SLM_AVX2 void tile_tokens(const int8_t* q, const float* d, int64_t nbk, const uint8_t* act,
                          size_t ba, const int32_t* corr, int64_t lc, int64_t nt, float* y,
                          int64_t ldy, int nr, bool accumulate, const PanelPrefetch& next) {
  // The next panel's lines, spread over the token groups: issued all at once they would
  // overflow the miss queue and be dropped.
  const int64_t lines_per_row = static_cast<int64_t>((next.bytes + 63) / 64);
  const int64_t lines = next.rows * lines_per_row;
  const int64_t groups = (nt + k_nt<T> - 1) / k_nt<T>;
  const int64_t per_group = groups > 0 ? (lines + groups - 1) / groups : 0;
  int64_t issued = 0;
  int64_t t = 0;
  for (; t + k_nt<T> <= nt; t += k_nt<T>) {
    const int64_t upto = std::min(lines, issued + per_group);
    prefetch_lines(next, lines_per_row, issued, upto);
    issued = upto;
    tile<T, k_nt<T>>(q, d, nbk, act + t * ba, ba, corr + t * lc, lc, y + t * ldy, ldy, nr,
                     accumulate);
  }
  prefetch_lines(next, lines_per_row, issued, lines);
  const int64_t rest = nt - t;
  const uint8_t* a = act + t * ba;
  const int32_t* c = corr + t * lc;
  float* yt = y + t * ldy;
  if (rest == 1) tile<T, 1>(q, d, nbk, a, ba, c, lc, yt, ldy, nr, accumulate);
  if (rest == 2) tile<T, 2>(q, d, nbk, a, ba, c, lc, yt, ldy, nr, accumulate);
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

void repack_x8_avx2(const uint8_t* g0, size_t group_bytes, int nr, int64_t b0, int64_t nbk,
                    int8_t* q, float* d) {
  repack_x8(g0, group_bytes, nr, b0, nbk, q, d);
}

void tile_avx2(DType t, const int8_t* q, const float* d, int64_t nbk, const uint8_t* act, size_t ba,
               const int32_t* corr, int64_t lc, int64_t nt, float* y, int64_t ldy, int nr,
               bool accumulate, const PanelPrefetch& next) {
  if (t == DType::Q8_0) {
    tile_tokens<DType::Q8_0>(q, d, nbk, act, ba, corr, lc, nt, y, ldy, nr, accumulate, next);
  } else {
    tile_tokens<DType::Q4_0>(q, d, nbk, act, ba, corr, lc, nt, y, ldy, nr, accumulate, next);
  }
}

}  // namespace slm::qgemm_detail
