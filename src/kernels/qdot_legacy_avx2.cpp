// AVX2/FMA/F16C kernels of the legacy weight family: activation quantizers bit-exact with the
// scalar ones, integer tile kernels on 8-bit activations, float tile kernels and dequantizers.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <vector>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/qdot_legacy_impl.h"
#include "kernels/repack.h"
#include "kernels/repack_avx2.h"
#include "kernels/simd.h"

// The dequantizers must round the multiply and the add separately, as dequantize_row does;
// GCC would otherwise fuse _mm256_mul_ps + _mm256_add_ps (they are plain vector arithmetic).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace slm::legacy {

namespace {

// Register tiles (rows x activation columns) of the drivers. For the integer kernels each
// loaded weight block is reused across the columns, each activation block across the rows.
constexpr int k_int_rows = 4, k_int_cols = 4;
// Columns per pass over the row tiles, so a pass's activations stay in L2 while its weight
// rows are re-read from L1.
constexpr int k_col_chunk = 32;

SLM_AVX2 inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// ---- activation quantizers (bit-exact with quantize_block in qdot_legacy.cpp) --------------

// 32 floats -> 32 int8 in order; *d_out = amax / 127. Same operations as the scalar code:
// exact max, one division, one reciprocal, one multiply, clamp, round to nearest even.
SLM_AVX2 inline __m256i quantize_block(const float* x, float* d_out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    // max_ps returns its second operand when the first is NaN, as fmax ignores NaN.
    amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), amax);
  }
  const float d = hmax256(amax) / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  *d_out = d;
  const __m256 vid = _mm256_set1_ps(id), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  __m256i q[4];
  for (int k = 0; k < 4; ++k) {
    const __m256 c = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[k], vid), lo), hi);
    q[k] = _mm256_cvtps_epi32(c);
  }
  // packs interleave the 128-bit lanes: dword j of the result holds elements of group
  // (0,4,1,5,2,6,3,7)[j]; the permute restores element order.
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

SLM_AVX2 void quantize_q8_0(const float* x, void* a, int64_t n) {
  ActBlockQ8_0* b = static_cast<ActBlockQ8_0*>(a);
  for (int64_t i = 0; i < n / k_block; ++i) {
    const __m256i q = quantize_block(x + i * k_block, &b[i].d);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs), q);
  }
}

SLM_AVX2 void quantize_q8_1(const float* x, void* a, int64_t n) {
  ActBlockQ8_1* b = static_cast<ActBlockQ8_1*>(a);
  for (int64_t i = 0; i < n / k_block; ++i) {
    const __m256i q = quantize_block(x + i * k_block, &b[i].d);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs), q);
    const __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q),
                                          _mm256_set1_epi16(1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    b[i].s = b[i].d * static_cast<float>(_mm_cvtsi128_si32(s));
  }
}

// ---- weight blocks -----------------------------------------------------------------------------

// 16 bytes of packed nibbles -> 32 bytes: low nibbles are elements 0..15, high ones 16..31.
SLM_AVX2 inline __m256i nibbles(const uint8_t* qs) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(x), _mm_srli_epi16(x, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// 32 bits (u32 LE at p) -> 32 bytes, 0x10 where bit j is set: byte j first receives qh byte
// j / 8, then all bits but bit j % 8 are set, so it is all-ones exactly when that bit is.
SLM_AVX2 inline __m256i fifth_bits(const uint8_t* p) {
  uint32_t qh;
  std::memcpy(&qh, p, 4);
  const __m256i spread = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                            0x0202020202020202, 0x0303030303030303);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), spread);
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  bytes = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
  return _mm256_and_si256(bytes, _mm256_set1_epi8(0x10));
}

// How a block's integer quants q relate to its values: signed (value = d q), offset
// (value = d (q - offset), q unsigned) or affine (value = d q + m, q unsigned).
enum class Kind { signed_q, offset_q, affine_q };

struct WQ8_0 {
  using Act = ActBlockQ8_0;
  static constexpr size_t bytes = 34;
  static constexpr Kind kind = Kind::signed_q;
  static constexpr int offset = 0;
  SLM_AVX2 static __m256i quants(const uint8_t* b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
  }
};
struct WQ4_0 {
  using Act = ActBlockQ8_0;
  static constexpr size_t bytes = 18;
  static constexpr Kind kind = Kind::offset_q;
  static constexpr int offset = 8;
  static constexpr int qs_at = 2, qh_at = -1;
  SLM_AVX2 static __m256i quants(const uint8_t* b) { return nibbles(b + 2); }
};
struct WQ5_0 {
  using Act = ActBlockQ8_0;
  static constexpr size_t bytes = 22;
  static constexpr Kind kind = Kind::offset_q;
  static constexpr int offset = 16;
  static constexpr int qs_at = 6, qh_at = 2;
  SLM_AVX2 static __m256i quants(const uint8_t* b) {
    return _mm256_or_si256(nibbles(b + 6), fifth_bits(b + 2));
  }
};
struct WQ4_1 {
  using Act = ActBlockQ8_1;
  static constexpr size_t bytes = 20;
  static constexpr Kind kind = Kind::affine_q;
  static constexpr int offset = 0;
  static constexpr int qs_at = 4, qh_at = -1;
  SLM_AVX2 static __m256i quants(const uint8_t* b) { return nibbles(b + 4); }
};
struct WQ5_1 {
  using Act = ActBlockQ8_1;
  static constexpr size_t bytes = 24;
  static constexpr Kind kind = Kind::affine_q;
  static constexpr int offset = 0;
  static constexpr int qs_at = 8, qh_at = 4;
  SLM_AVX2 static __m256i quants(const uint8_t* b) {
    return _mm256_or_si256(nibbles(b + 8), fifth_bits(b + 4));
  }
};

// ---- integer tile: R weight rows x C activation columns -------------------------------------

// Decode (nc = 1) streams each weight byte from DRAM once and stalls on those loads: the
// hardware prefetcher ramps up too slowly on a tile's four short row streams (perf puts the
// samples on the first use of each block's scale). Each row asks for the line k_prefetch
// bytes ahead; past a row's end that lies in the following rows (rows are contiguous, and the
// driver walks row tiles in order), at the matrix's end in memory the call does not own,
// which is fine for a prefetch: a hint that never faults and changes no result. The distance
// was tuned on Zen 3 at 2048-wide rows (Q4_0 6.5 -> 12 GB/s per core; 512 B gained nothing,
// 6144 B held up from 896- to 8192-wide rows).
constexpr size_t k_prefetch = 6144;
SLM_AVX2 inline void prefetch_ahead(const uint8_t* p) {
  // Integer arithmetic: a pointer past the end of the weights would be undefined behaviour.
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + k_prefetch),
               _MM_HINT_T0);
}

// One sequential stream (a single row, or a group of contiguous rows walked as one region) is
// prefetched into L2 a little ahead: measured on Zen 3 at 896..4864-wide rows, 1-4 KiB ahead
// into L2 beat both no prefetch and L1 prefetches (which compete with the kernel's own loads).
// Zen 5 wants more in flight: F16 decode rows (SmolLM2-135M) 1 KiB 185 tok/s, 2 KiB 200.
constexpr size_t k_stream_prefetch = 2048;
// The Q4_0 / Q5_0 x8 copies' decode stream (X8Rows). Zen 5, generation tok/s, medians:
// SmolLM2-135M Q4_0 (rotated order) 2 KiB 366, 4 KiB 428, 8 KiB 425; Llama-3.2-1B 54.3, 55.9,
// 58.8 (8 KiB lost 5-7% in some slow-memory moments where 4 KiB did not).
constexpr size_t k_x8_prefetch = 4096;
SLM_AVX2 inline void prefetch_stream(const uint8_t* p, size_t ahead = k_stream_prefetch) {
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + ahead), _MM_HINT_T1);
}

// Q8_0: per block and (row, column) the 32 products summed in int32 lanes (maddubs on |q_w| and
// the activation carrying q_w's sign: pairs of at most 2 * 128 * 127 < 2^15, no saturation),
// then acc += (d_w d_a) * lanes in float. (The nibble types take the eight-row kernel below.)
template <class W>
struct IntTile {
  static_assert(W::kind == Kind::signed_q, "signed 8-bit quants");
  template <int R, int C>
  SLM_AVX2 static void run(int64_t n, const uint8_t* w, size_t bw, const uint8_t* a, size_t ba,
                           float* s, int64_t ls) {
    using Act = typename W::Act;
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc[R][C];
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    }
    const int64_t nb = n / k_block;
    for (int64_t i = 0; i < nb; ++i) {
      __m256i q[R], qabs[R];
      __m256 dw[R];
      for (int r = 0; r < R; ++r) {
        const uint8_t* b = w + static_cast<size_t>(r) * bw + static_cast<size_t>(i) * W::bytes;
        if constexpr (C == 1) {
          prefetch_stream(b, 4096);  // decode: each row its own stream (see tile_driver)
        } else {
          prefetch_ahead(b);
        }
        q[r] = W::quants(b);
        dw[r] = _mm256_set1_ps(half_at(b));
        qabs[r] = _mm256_abs_epi8(q[r]);
      }
      for (int c = 0; c < C; ++c) {
        const Act* ab = reinterpret_cast<const Act*>(a + static_cast<size_t>(c) * ba) + i;
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab->qs));
        const __m256 da = _mm256_set1_ps(ab->d);
        for (int r = 0; r < R; ++r) {
          const __m256i p = _mm256_maddubs_epi16(qabs[r], _mm256_sign_epi8(av, q[r]));
          const __m256i s32 = _mm256_madd_epi16(p, ones16);
          acc[r][c] = _mm256_fmadd_ps(_mm256_mul_ps(dw[r], da), _mm256_cvtepi32_ps(s32), acc[r][c]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) s[c * ls + r] = hsum256(acc[r][c]);
    }
  }
};

// ---- eight-row kernel: Q4_0 / Q4_1 / Q5_0 / Q5_1 ----------------------------------------------

// Eight weight rows at once, one lane per row. Per 32-value block the rows' 16 quant bytes are
// transposed so that 32-bit lane r holds four consecutive quants of row r; each activation group
// of four bytes is broadcast, so maddubs yields every row's products in its own lane, and the
// block's exact integer sum per row (isum) needs no horizontal add. Then, per lane and as the
// scalar reference does: acc += (d_w d_a) * isum (separate multiply and add: bit-exact with it).
// The eight scales convert with one instruction. All of this costs about half the instructions
// per block of the row-pair tiles, so decode is bound by memory again.
template <class W>
struct Rows8 {
  static_assert(W::qs_at >= 0, "nibble types");
  using Act = typename W::Act;

  SLM_AVX2 static inline __m256i two_rows(const uint8_t* low, const uint8_t* high) {
    return _mm256_setr_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(low + W::qs_at)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(high + W::qs_at)));
  }
  SLM_AVX2 static inline __m256i group(const int8_t* qs) {
    int32_t v;
    std::memcpy(&v, qs, 4);
    return _mm256_set1_epi32(v);
  }

  // lo[g] / hi[g] (g = 0..3): lane r = quants 4g..4g+3 / 16+4g..16+4g+3 of row r's block.
  SLM_AVX2 static inline void unpack(const uint8_t* const* b, __m256i lo[4], __m256i hi[4]) {
    const __m256i y0 = two_rows(b[0], b[4]), y1 = two_rows(b[1], b[5]);
    const __m256i y2 = two_rows(b[2], b[6]), y3 = two_rows(b[3], b[7]);
    const __m256i t0 = _mm256_unpacklo_epi32(y0, y1), t1 = _mm256_unpackhi_epi32(y0, y1);
    const __m256i t2 = _mm256_unpacklo_epi32(y2, y3), t3 = _mm256_unpackhi_epi32(y2, y3);
    const __m256i g[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                          _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int k = 0; k < 4; ++k) {
      lo[k] = _mm256_and_si256(g[k], m4);
      hi[k] = _mm256_and_si256(_mm256_srli_epi16(g[k], 4), m4);
    }
    if constexpr (W::qh_at >= 0) {
      // Fifth bits: lane r of qh = row r's 32 bits (bit j belongs to element j). Byte k of a
      // lane of group g needs bit 4g + k: a shuffle copies the byte holding it into all four
      // bytes of the lane, and a compare against that byte's bit turns it into 0x10 or 0.
      auto u32 = [](const uint8_t* p) {
        int32_t v;
        std::memcpy(&v, p, 4);
        return v;
      };
      const __m256i qh = _mm256_setr_epi32(u32(b[0] + W::qh_at), u32(b[1] + W::qh_at),
                                           u32(b[2] + W::qh_at), u32(b[3] + W::qh_at),
                                           u32(b[4] + W::qh_at), u32(b[5] + W::qh_at),
                                           u32(b[6] + W::qh_at), u32(b[7] + W::qh_at));
      const __m256i lane_base = _mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12,
                                                 0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
      const __m256i bits[2] = {_mm256_set1_epi32(0x08040201), _mm256_set1_epi32(static_cast<int>(0x80402010))};
      const __m256i bit4 = _mm256_set1_epi8(0x10);
      auto fifth = [&](int first_bit) SLM_AVX2_LAMBDA {
        const __m256i bytes =
            _mm256_shuffle_epi8(qh, _mm256_add_epi8(lane_base, _mm256_set1_epi8(static_cast<char>(first_bit / 8))));
        const __m256i m = bits[(first_bit / 4) % 2];
        return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, m), m), bit4);
      };
      for (int k = 0; k < 4; ++k) {
        lo[k] = _mm256_or_si256(lo[k], fifth(4 * k));
        hi[k] = _mm256_or_si256(hi[k], fifth(16 + 4 * k));
      }
    }
  }

  // The eight rows' halves at byte offset `at` of their blocks, as floats in lane order
  // (inserted straight from memory: fewer instructions than assembling them in a register).
  SLM_AVX2 static inline __m256 halves8(const uint8_t* const* b, int at) {
    auto h = [&](int r) {
      uint16_t v;
      std::memcpy(&v, b[r] + at, 2);
      return static_cast<int>(v);
    };
    __m128i v = _mm_cvtsi32_si128(h(0));
    v = _mm_insert_epi16(v, h(1), 1);
    v = _mm_insert_epi16(v, h(2), 2);
    v = _mm_insert_epi16(v, h(3), 3);
    v = _mm_insert_epi16(v, h(4), 4);
    v = _mm_insert_epi16(v, h(5), 5);
    v = _mm_insert_epi16(v, h(6), 6);
    v = _mm_insert_epi16(v, h(7), 7);
    return _mm256_cvtph_ps(v);
  }

  // The per-block arithmetic, whatever the weights' layout: src[u].block(i, lo, hi, &dw, &mw)
  // yields block i of eight rows as unpack / halves8 do. S groups of eight rows (S = 2: two
  // streams far apart, which one core reads faster than one) go to s[u] (nr[u] rows each).
  template <int C, int S, class Src>
  SLM_AVX2 static void run_blocks(int64_t nb, const Src (&src)[S], const uint8_t* a, size_t ba,
                                  const int32_t* offset_sums, float* const (&s)[S], int64_t ls,
                                  const int (&nr)[S]) {
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc[S][C];
    for (int u = 0; u < S; ++u) {
      for (int c = 0; c < C; ++c) acc[u][c] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; ++i) {
      for (int u = 0; u < S; ++u) {
        __m256i lo[4], hi[4];
        __m256 dw, mw;
        src[u].block(i, lo, hi, &dw, &mw);
        for (int c = 0; c < C; ++c) {
          const Act* ab = reinterpret_cast<const Act*>(a + static_cast<size_t>(c) * ba) + i;
          // Σ of 8 int16 lanes of 2 * 15 * 127 (4-bit quants) or 4 of 2 * 31 * 127 (5-bit):
          // < 2^15 either way, no saturation.
          __m256i m[8];
          for (int k = 0; k < 4; ++k) {
            m[k] = _mm256_maddubs_epi16(lo[k], group(ab->qs + 4 * k));
            m[4 + k] = _mm256_maddubs_epi16(hi[k], group(ab->qs + 16 + 4 * k));
          }
          const __m256i plo =
              _mm256_add_epi16(_mm256_add_epi16(m[0], m[1]), _mm256_add_epi16(m[2], m[3]));
          const __m256i phi =
              _mm256_add_epi16(_mm256_add_epi16(m[4], m[5]), _mm256_add_epi16(m[6], m[7]));
          __m256i isum;
          if constexpr (W::qh_at >= 0) {
            isum = _mm256_add_epi32(_mm256_madd_epi16(plo, ones16), _mm256_madd_epi16(phi, ones16));
          } else {
            isum = _mm256_madd_epi16(_mm256_add_epi16(plo, phi), ones16);
          }
          if constexpr (W::kind == Kind::offset_q) {
            isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(offset_sums[c * nb + i]));
          }
          const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(ab->d));
          acc[u][c] = _mm256_add_ps(acc[u][c], _mm256_mul_ps(scale, _mm256_cvtepi32_ps(isum)));
          if constexpr (W::kind == Kind::affine_q) {
            acc[u][c] = _mm256_add_ps(acc[u][c], _mm256_mul_ps(mw, _mm256_set1_ps(ab->s)));
          }
        }
      }
    }
    for (int u = 0; u < S; ++u) {
      for (int c = 0; c < C; ++c) {
        alignas(32) float out[8];
        _mm256_store_ps(out, acc[u][c]);
        for (int r = 0; r < nr[u]; ++r) s[u][c * ls + r] = out[r];
      }
    }
  }

  // Eight rows in the file's layout. The rows are contiguous, so the next group is one region:
  // it is prefetched into L2 as a single stream while this group is computed.
  struct FileRows {
    const uint8_t* const* rows;
    const uint8_t* next;
    SLM_AVX2 void block(int64_t i, __m256i lo[4], __m256i hi[4], __m256* dw, __m256* mw) const {
      const uint8_t* b[8];
      for (int r = 0; r < 8; ++r) b[r] = rows[r] + static_cast<size_t>(i) * W::bytes;
      for (size_t off = 0; off < 8 * W::bytes; off += 64) {
        prefetch_stream(next + static_cast<size_t>(i) * 8 * W::bytes + off, 0);
      }
      unpack(b, lo, hi);
      *dw = halves8(b, 0);
      if constexpr (W::kind == Kind::affine_q) *mw = halves8(b, 2);
    }
  };

  template <int C>
  SLM_AVX2 static void run(int64_t n, const uint8_t* const* rows, size_t group_bytes,
                           const uint8_t* a, size_t ba, const int32_t* offset_sums, float* s,
                           int64_t ls, int nr) {
    const FileRows src[1] = {{rows, rows[0] + group_bytes}};
    float* const out[1] = {s};
    const int n_rows[1] = {nr};
    run_blocks<C>(n / k_block, src, a, ba, offset_sums, out, ls, n_rows);
  }
};

// Per column and block, offset * Σ q_a (the offset types' correction), shared by all row
// groups of a call: a grow-only buffer per thread. Null for the affine types.
template <class W>
SLM_AVX2 const int32_t* offset_sums(const uint8_t* a, size_t ba, int nc, int64_t nb) {
  if constexpr (W::kind != Kind::offset_q) {
    return nullptr;
  } else {
    thread_local std::vector<int32_t> sums;
    const size_t need = static_cast<size_t>(nb) * static_cast<size_t>(nc);
    if (sums.size() < need) sums.resize(need);
    // Σ of 32 int8: maddubs against ones gives 16 pair sums, madd 8 int32, then a horizontal
    // add (exact, as integers are).
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int c = 0; c < nc; ++c) {
      const auto* blk = reinterpret_cast<const ActBlockQ8_0*>(a + static_cast<size_t>(c) * ba);
      for (int64_t i = 0; i < nb; ++i) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[i].qs));
        const __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(1, 0, 3, 2)));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 3, 0, 1)));
        sums[static_cast<size_t>(c * nb + i)] = W::offset * _mm_cvtsi128_si32(h);
      }
    }
    return sums.data();
  }
}

// Columns two at a time, then the odd one: every (row, column) result is computed the same
// way whatever nc.
template <class W, class Group>
SLM_AVX2 void rows8_columns(int64_t n, const Group& run, const uint8_t* a, size_t ba, int nc,
                            const int32_t* sums, float* s, int64_t ls) {
  const int64_t nb = n / k_block;
  auto col_sums = [&](int c) { return sums ? sums + static_cast<int64_t>(c) * nb : nullptr; };
  int c = 0;
  for (; c + 2 <= nc; c += 2) {
    run.template operator()<2>(a + static_cast<size_t>(c) * ba, col_sums(c), s + c * ls);
  }
  if (c < nc) run.template operator()<1>(a + static_cast<size_t>(c) * ba, col_sums(c), s + c * ls);
}

// Groups of eight rows (a short last group repeats its last row and drops those lanes).
template <class W>
SLM_AVX2 void rows8_driver(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba,
                           int nc, float* s, int64_t ls) {
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  const int32_t* sums = offset_sums<W>(ab, ba, nc, n / k_block);
  for (int r0 = 0; r0 < nr; r0 += 8) {
    const int rr = std::min(8, nr - r0);
    const uint8_t* rows[8];
    for (int r = 0; r < 8; ++r) rows[r] = wb + static_cast<size_t>(r0 + std::min(r, rr - 1)) * bw;
    auto group = [&]<int C>(const uint8_t* ac, const int32_t* cs, float* sc) SLM_AVX2_LAMBDA {
      Rows8<W>::template run<C>(n, rows, 8 * bw, ac, ba, cs, sc + r0, ls, rr);
    };
    rows8_columns<W>(n, group, ab, ba, nc, sums, s, ls);
  }
}

// Q4_0 / Q5_0 rows repacked at load time in groups of eight (kernels/repack.h): per block the
// eight scales side by side and the quants already in the lanes unpack() builds, so a block
// costs four loads instead of eight loads and twelve shuffles, and the eight scales one
// conversion; Q5_0's fifth bits, stored reordered, take a shift and a mask per vector. group
// is the group holding the first row; groups are contiguous, walked as one stream.
template <class W>
struct X8Rows {
  static constexpr bool q5 = W::qh_at >= 0;
  static constexpr size_t bytes = q5 ? k_q5_0_x8_block_bytes : k_q4_0_x8_block_bytes;
  const uint8_t* group;
  SLM_AVX2 void block(int64_t i, __m256i lo[4], __m256i hi[4], __m256* dw, __m256*) const {
    const uint8_t* b = group + static_cast<size_t>(i) * bytes;
    for (size_t off = 0; off < bytes; off += 64) prefetch_stream(b + off, k_x8_prefetch);
    *dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
    x8_quants<q5>(b + 16, lo, hi);
  }
};

template <class W>
SLM_AVX2 void rows8_x8_driver(int64_t n, const void* w, size_t, int nr, const void* a, size_t ba,
                              int nc, float* s, int64_t ls) {
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  const int64_t nb = n / k_block;
  const size_t group_bytes = static_cast<size_t>(nb) * X8Rows<W>::bytes;
  const int32_t* sums = offset_sums<W>(ab, ba, nc, nb);
  const int groups = (nr + 7) / 8;
  auto src = [&](int g) { return X8Rows<W>{wb + static_cast<size_t>(g) * group_bytes}; };
  auto rows_of = [&](int g) { return std::min(8, nr - 8 * g); };
  if (nc == 1) {
    // Decode: group g beside group g + h, two streams half the range apart (as the float and
    // Q8_0 decode tiles do: one core reads two far-apart streams faster than one), then the
    // middle group of an odd count alone.
    const int h = (groups + 1) / 2;
    for (int g = 0; g < h; ++g) {
      if (g + h < groups) {
        const X8Rows<W> pair[2] = {src(g), src(g + h)};
        float* const out[2] = {s + 8 * g, s + 8 * (g + h)};
        const int n_rows[2] = {rows_of(g), rows_of(g + h)};
        Rows8<W>::template run_blocks<1>(nb, pair, ab, ba, sums, out, ls, n_rows);
      } else {
        const X8Rows<W> one[1] = {src(g)};
        float* const out[1] = {s + 8 * g};
        const int n_rows[1] = {rows_of(g)};
        Rows8<W>::template run_blocks<1>(nb, one, ab, ba, sums, out, ls, n_rows);
      }
    }
    return;
  }
  for (int g = 0; g < groups; ++g) {
    const X8Rows<W> one[1] = {src(g)};
    const int n_rows[1] = {rows_of(g)};
    auto group = [&]<int C>(const uint8_t* ac, const int32_t* cs, float* sc) SLM_AVX2_LAMBDA {
      float* const out[1] = {sc + 8 * g};
      Rows8<W>::template run_blocks<C>(nb, one, ac, ba, cs, out, ls, n_rows);
    };
    rows8_columns<W>(n, group, ab, ba, nc, sums, s, ls);
  }
}

// ---- float tile: F32 / F16 / BF16 weights with F32 activations --------------------------------

template <DType T>
SLM_AVX2 inline __m256 load8(const uint8_t* p, int64_t k) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + k);
  } else if constexpr (T == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * k)));
  } else {
    const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * k)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
  }
}

template <DType T>
inline float load1(const uint8_t* p, int64_t k) {
  if constexpr (T == DType::F32) {
    float f;
    std::memcpy(&f, p + 4 * k, 4);
    return f;
  } else {
    uint16_t h;
    std::memcpy(&h, p + 2 * k, 2);
    return T == DType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
  }
}

// Every (row, column) dot uses four accumulators over 32-element steps, whatever the number of
// rows and columns in the call, so a token's result does not depend on the tokens beside it.
// Rows are walked one at a time (or two at a time from far apart, below): interleaving adjacent
// rows (three, one accumulator each) left the hardware prefetcher at ~60% (Zen 3, F16: 12-20 vs
// 27-30 GB/s on 2 threads) and was latency-bound in L2.
template <DType T>
struct FloatRow {
  // R rows (w[r], results to out[r] + c * ls) x C columns.
  template <int R, int C>
  SLM_AVX2 static void run(int64_t n, const uint8_t* const* w, const uint8_t* a, size_t ba,
                           float* const* out, int64_t ls) {
    constexpr int64_t step_bytes = 32 * (T == DType::F32 ? 4 : 2);
    const float* x[C];
    for (int c = 0; c < C; ++c) x[c] = reinterpret_cast<const float*>(a + static_cast<size_t>(c) * ba);
    __m256 acc[R][C][4];
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) {
        for (int j = 0; j < 4; ++j) acc[r][c][j] = _mm256_setzero_ps();
      }
    }
    int64_t k = 0;
    for (; k + 32 <= n; k += 32) {
      for (int r = 0; r < R; ++r) {
        for (int64_t off = 0; off < step_bytes; off += 64) prefetch_stream(w[r] + k * (step_bytes / 32) + off);
      }
      for (int j = 0; j < 4; ++j) {
        for (int r = 0; r < R; ++r) {
          const __m256 wv = load8<T>(w[r], k + 8 * j);
          for (int c = 0; c < C; ++c) {
            acc[r][c][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[c] + k + 8 * j), acc[r][c][j]);
          }
        }
      }
    }
    for (; k + 8 <= n; k += 8) {
      for (int r = 0; r < R; ++r) {
        const __m256 wv = load8<T>(w[r], k);
        for (int c = 0; c < C; ++c) acc[r][c][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[c] + k), acc[r][c][0]);
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) {
        float tail = 0;
        for (int64_t j = k; j < n; ++j) tail += load1<T>(w[r], j) * x[c][j];
        const __m256 sum = _mm256_add_ps(_mm256_add_ps(acc[r][c][0], acc[r][c][1]),
                                         _mm256_add_ps(acc[r][c][2], acc[r][c][3]));
        out[r][c * ls] = hsum256(sum) + tail;
      }
    }
  }
};

// Decode (one column) pairs row i with row h + i, h = half the range: two sequential streams
// far apart per thread keep more DRAM reads in flight than one (Zen 3, F16, one thread: 19 ->
// 24 GB/s; the same holds for a plain read loop, 21 -> 24-28 GB/s with 2-4 streams).
template <DType T>
SLM_AVX2 void float_rows(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba,
                         int nc, float* s, int64_t ls) {
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  auto row = [&](int r) { return wb + static_cast<size_t>(r) * bw; };
  if (nc == 1) {
    const int h = (nr + 1) / 2;
    for (int i = 0; i < nr - h; ++i) {
      const uint8_t* wr[2] = {row(i), row(h + i)};
      float* out[2] = {s + i, s + h + i};
      FloatRow<T>::template run<2, 1>(n, wr, ab, ba, out, ls);
    }
    if (nr - h < h) {  // odd count: the middle row alone
      const uint8_t* wr[1] = {row(h - 1)};
      float* out[1] = {s + h - 1};
      FloatRow<T>::template run<1, 1>(n, wr, ab, ba, out, ls);
    }
    return;
  }
  for (int r = 0; r < nr; ++r) {
    const uint8_t* wr[1] = {row(r)};
    int c = 0;
    for (; c + 2 <= nc; c += 2) {
      float* out[1] = {s + c * ls + r};
      FloatRow<T>::template run<1, 2>(n, wr, ab + static_cast<size_t>(c) * ba, ba, out, ls);
    }
    if (c < nc) {
      float* out[1] = {s + c * ls + r};
      FloatRow<T>::template run<1, 1>(n, wr, ab + static_cast<size_t>(c) * ba, ba, out, ls);
    }
  }
}

// ---- driver: any nr x nc as register tiles plus remainders -------------------------------------

using BlockFn = void (*)(int64_t, const uint8_t*, size_t, const uint8_t*, size_t, float*, int64_t);

template <class K, int RT, int CT, size_t... I>
constexpr std::array<BlockFn, RT * CT> make_table(std::index_sequence<I...>) {
  return {{&K::template run<static_cast<int>(I) / CT + 1, static_cast<int>(I) % CT + 1>...}};
}

template <class K, int RT, int CT>
  requires(RT >= 2)
SLM_AVX2 void tile_driver(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba,
                          int nc, float* s, int64_t ls) {
  static constexpr std::array<BlockFn, RT * CT> table =
      make_table<K, RT, CT>(std::make_index_sequence<RT * CT>());
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  if (nc == 1) {
    // Decode: row i paired with row h + i (h = half the range), each read as its own sequential
    // stream: two streams far apart per thread keep more DRAM reads in flight than one, where
    // four adjacent rows interleaved ran at 0.7x of one stream (Q8_0, Zen 3). Only for kernels
    // whose per-(row, column) arithmetic is the same at every tile size, so results do not
    // depend on nc or on the pairing. The 2 x 1 tile's "row stride" is the pair's distance.
    const int h = (nr + 1) / 2;
    for (int i = 0; i < nr - h; ++i) {
      float pair[2];
      table[CT](n, wb + static_cast<size_t>(i) * bw, static_cast<size_t>(h) * bw, ab, ba, pair, 1);
      s[i] = pair[0];
      s[h + i] = pair[1];
    }
    if (nr - h < h) table[0](n, wb + static_cast<size_t>(h - 1) * bw, bw, ab, ba, s + h - 1, ls);
    return;
  }
  for (int c0 = 0; c0 < nc; c0 += k_col_chunk) {
    const int c1 = std::min(nc, c0 + k_col_chunk);
    for (int r = 0; r < nr; r += RT) {
      const int rr = std::min(RT, nr - r);
      for (int c = c0; c < c1; c += CT) {
        const int cc = std::min(CT, c1 - c);
        table[static_cast<size_t>((rr - 1) * CT + cc - 1)](
            n, wb + static_cast<size_t>(r) * bw, bw, ab + static_cast<size_t>(c) * ba, ba,
            s + static_cast<int64_t>(c) * ls + r, ls);
      }
    }
  }
}

template <class W>
constexpr DotTileFn int_tile = &tile_driver<IntTile<W>, k_int_rows, k_int_cols>;

const DotKernel k_avx2[] = {
    {DType::F32, ActType::f32, nullptr, &float_rows<DType::F32>, 1, 2, "avx2"},
    {DType::F16, ActType::f32, nullptr, &float_rows<DType::F16>, 1, 2, "avx2"},
    {DType::BF16, ActType::f32, nullptr, &float_rows<DType::BF16>, 1, 2,
     "avx2"},
    {DType::Q8_0, ActType::q8_0, &quantize_q8_0, int_tile<WQ8_0>, k_int_rows, k_int_cols, "avx2"},
    {DType::Q4_0, ActType::q8_0, &quantize_q8_0, &rows8_driver<WQ4_0>, 8, 2, "avx2",
     &rows8_x8_driver<WQ4_0>},
    {DType::Q5_0, ActType::q8_0, &quantize_q8_0, &rows8_driver<WQ5_0>, 8, 2, "avx2",
     &rows8_x8_driver<WQ5_0>},
    {DType::Q4_1, ActType::q8_1, &quantize_q8_1, &rows8_driver<WQ4_1>, 8, 2, "avx2"},
    {DType::Q5_1, ActType::q8_1, &quantize_q8_1, &rows8_driver<WQ5_1>, 8, 2, "avx2"},
};

// ---- dequantizers (bit-exact with dequantize_row) ---------------------------------------------

// value = (float)(q - offset) * d [+ m]: the integer subtraction is exact, then one rounded
// multiply and (affine types) one rounded add, as in the scalar code.
template <class W>
SLM_AVX2 void dequant_blocks(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += W::bytes, y += k_block) {
    const __m256i q = W::quants(b);
    const __m256 d = _mm256_set1_ps(half_at(b));
    const __m256 m = _mm256_set1_ps(W::kind == Kind::affine_q ? half_at(b + 2) : 0.0f);
    const __m128i halves[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
    for (int k = 0; k < 4; ++k) {
      const __m128i h = halves[k / 2];
      __m256i i32 = _mm256_cvtepi8_epi32(k % 2 ? _mm_srli_si128(h, 8) : h);
      if constexpr (W::offset != 0) i32 = _mm256_sub_epi32(i32, _mm256_set1_epi32(W::offset));
      __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(i32), d);
      if constexpr (W::kind == Kind::affine_q) v = _mm256_add_ps(v, m);
      _mm256_storeu_ps(y + 8 * k, v);
    }
  }
}

// vcvtph2ps quiets signaling NaNs (sets float bit 22); fp16_to_fp32 keeps the payload as it
// is. Lanes that are NaN while the half's quiet bit (bit 9) was clear get bit 22 cleared.
SLM_AVX2 inline __m256 keep_snan(__m256 f, const uint8_t* p) {
  const __m256 nan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
  if (_mm256_movemask_ps(nan) == 0) return f;
  const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i signaling = _mm256_and_si256(
      _mm256_castps_si256(nan),
      _mm256_cmpeq_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x200)), _mm256_setzero_si256()));
  const __m256i bit = _mm256_and_si256(signaling, _mm256_set1_epi32(0x00400000));
  return _mm256_castsi256_ps(_mm256_andnot_si256(bit, _mm256_castps_si256(f)));
}

template <DType T>
SLM_AVX2 void dequant_plain(const uint8_t* b, float* y, int64_t n) {
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 v = load8<T>(b, k);
    if constexpr (T == DType::F16) v = keep_snan(v, b + 2 * k);
    _mm256_storeu_ps(y + k, v);
  }
  for (; k < n; ++k) y[k] = load1<T>(b, k);
}

}  // namespace

const DotKernel* avx2_kernel(DType w) {
  for (const DotKernel& k : k_avx2) {
    if (k.wtype == w) return &k;
  }
  return nullptr;
}

bool avx2_dequantize(DType t, const void* src, float* dst, int64_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(src);
  if (n < 0) return false;
  const int64_t nb = n / k_block;
  const bool whole = n % k_block == 0;
  switch (t) {
    case DType::F32:
      if (n) std::memcpy(dst, b, static_cast<size_t>(n) * 4);
      return true;
    case DType::F16:
      dequant_plain<DType::F16>(b, dst, n);
      return true;
    case DType::BF16:
      dequant_plain<DType::BF16>(b, dst, n);
      return true;
    case DType::Q8_0:
      if (whole) dequant_blocks<WQ8_0>(b, dst, nb);
      return whole;
    case DType::Q4_0:
      if (whole) dequant_blocks<WQ4_0>(b, dst, nb);
      return whole;
    case DType::Q5_0:
      if (whole) dequant_blocks<WQ5_0>(b, dst, nb);
      return whole;
    case DType::Q4_1:
      if (whole) dequant_blocks<WQ4_1>(b, dst, nb);
      return whole;
    case DType::Q5_1:
      if (whole) dequant_blocks<WQ5_1>(b, dst, nb);
      return whole;
    default:
      return false;
  }
}

}  // namespace slm::legacy
