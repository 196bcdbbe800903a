// AVX2 tile kernels for Q2_K..Q6_K weights with Q8_K activations: integer dot products
// (maddubs: unsigned weight quant x signed activation; madd: x sub-block scale) per super-block.
//
// Shapes: a weight row is nb = n / 256 super-blocks; an activation row nb ActBlockQ8_K. Each
// super-block is decoded once into eight 32-byte vectors of unsigned quants (chunk c = elements
// 32c..32c+31) and dotted with up to four activation columns, so prompt batches reuse the decode.
// Integer ranges: maddubs pairs stay below 2 * 63 * 127 = 16002 (no int16 saturation), and the
// int32 super-block sums below 2^28, so only the final per-super-block scaling is in float.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/qdot_kquant_internal.h"

namespace slm::kquant {

namespace {

SLM_AVX2 inline __m256i dot_chunk(__m256i q, const int8_t* a, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(q, loadu256(a)), scale16);
}

// Byte-shuffle controls selecting one int16 of each 128-bit lane and repeating it across the
// lane. For 16-element sub-blocks (two per chunk, one per lane): chunk s of a half uses scales
// 2s (low lane) and 2s+1 (high lane) of the half's eight. For 32-element sub-blocks (Q4_K,
// Q5_K) both lanes take scale c.
SLM_AVX2 inline __m256i pair_ctrl(int s) {
  const __m128i lo = _mm_set1_epi16(static_cast<int16_t>(((4 * s + 1) << 8) | (4 * s)));
  const __m128i hi = _mm_set1_epi16(static_cast<int16_t>(((4 * s + 3) << 8) | (4 * s + 2)));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}
SLM_AVX2 inline __m256i single_ctrl(int c) {
  return _mm256_set1_epi16(static_cast<int16_t>(((2 * c + 1) << 8) | (2 * c)));
}

SLM_AVX2 inline float half_to_float(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }

// Decode streams a row: every line of the super-block Ahead bytes on is requested into L2
// (Zen 3: 13 -> 15.5 GB/s per core for Q4_K at 4864-wide rows with 1 KiB; the hardware
// prefetcher alone lags behind the kernel; Zen 5, SmolLM2-135M Q4_K_M generation: 1 KiB 436.5
// tok/s, 2 KiB 446, 4 KiB 454). Integer arithmetic: past the end of the weights the address is
// never dereferenced, and a prefetch does not fault.
template <size_t Bytes, size_t Ahead = 4096>
SLM_AVX2 inline void prefetch_super_block(const uint8_t* w) {
  for (size_t off = 0; off < Bytes; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(w) + Ahead + off),
                 _MM_HINT_T1);
  }
}

// 16 int16 scales [s0..s7 | s8..s15] -> the eight per-chunk scale vectors.
SLM_AVX2 inline void scales16_to_chunks(__m256i s16, __m256i sc[8]) {
  const __m256i lo = _mm256_permute2x128_si256(s16, s16, 0x00);
  const __m256i hi = _mm256_permute2x128_si256(s16, s16, 0x11);
  for (int s = 0; s < 4; ++s) {
    sc[s] = _mm256_shuffle_epi8(lo, pair_ctrl(s));
    sc[4 + s] = _mm256_shuffle_epi8(hi, pair_ctrl(s));
  }
}

SLM_AVX2 inline __m256i load_bsums(const ActBlockQ8_K* ab) { return loadu256(ab->bsums); }

// ---- per-type parts: prepare (decode quants + scales), finish (float scaling) ---------------

struct Q2K {
  static constexpr size_t bytes = k_q2_k_bytes;
  struct Prep {
    __m256i sc[8];
    __m256i mins;  // 16 int16, one per sub-block
    float d, dmin;
  };
  SLM_AVX2 static void prepare(const uint8_t* b, __m256i q[8], Prep* p) {
    decode_q2_k(b, q);
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
    const __m128i m4 = _mm_set1_epi8(0x0f);
    scales16_to_chunks(_mm256_cvtepu8_epi16(_mm_and_si128(raw, m4)), p->sc);
    p->mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
    p->d = half_to_float(b + 80);
    p->dmin = half_to_float(b + 82);
  }
  SLM_AVX2 static __m256 finish(const Prep& p, const ActBlockQ8_K* ab, __m256i sumi, __m256 acc) {
    const __m256i msum = _mm256_madd_epi16(load_bsums(ab), p.mins);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(p.d * ab->d), acc);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(-p.dmin * ab->d), acc);
  }
};

// Q3_K and Q6_K store q - offset with signed scales: Σ sc (q - off) a = Σ sc q a - off Σ sc bsum.
template <int Offset>
struct SignedPrep {
  __m256i sc[8];
  __m256i sc16;  // 16 int16 scales, for the offset term
  float d;
};
template <int Offset>
SLM_AVX2 inline __m256 finish_signed(const SignedPrep<Offset>& p, const ActBlockQ8_K* ab,
                                     __m256i sumi, __m256 acc) {
  const __m256i corr = _mm256_madd_epi16(load_bsums(ab), p.sc16);
  sumi = _mm256_sub_epi32(sumi, _mm256_mullo_epi32(corr, _mm256_set1_epi32(Offset)));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(p.d * ab->d), acc);
}

struct Q3K {
  static constexpr size_t bytes = k_q3_k_bytes;
  using Prep = SignedPrep<4>;
  SLM_AVX2 static void prepare(const uint8_t* b, __m256i q[8], Prep* p) {
    decode_q3_k(b, q);
    int8_t sc[16];
    unpack_scales_q3_k(b + 96, sc);
    p->sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    scales16_to_chunks(p->sc16, p->sc);
    p->d = half_to_float(b + 108);
  }
  SLM_AVX2 static __m256 finish(const Prep& p, const ActBlockQ8_K* ab, __m256i sumi, __m256 acc) {
    return finish_signed(p, ab, sumi, acc);
  }
};

struct Q6K {
  static constexpr size_t bytes = k_q6_k_bytes;
  using Prep = SignedPrep<32>;
  SLM_AVX2 static void prepare(const uint8_t* b, __m256i q[8], Prep* p) {
    decode_q6_k(b, q);
    p->sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
    scales16_to_chunks(p->sc16, p->sc);
    p->d = half_to_float(b + 208);
  }
  SLM_AVX2 static __m256 finish(const Prep& p, const ActBlockQ8_K* ab, __m256i sumi, __m256 acc) {
    return finish_signed(p, ab, sumi, acc);
  }
};

// Q4_K and Q5_K: eight 32-element sub-blocks with 6-bit scales and mins.
struct K4Prep {
  __m256i sc[8];
  __m128i mins;  // 8 int16
  float d, dmin;
};
SLM_AVX2 inline void prepare_k4_scales(const uint8_t* b, K4Prep* p) {
  uint8_t sm[16];
  unpack_scales_k4(b + 4, sm);
  const __m256i s16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sm)));
  const __m256i scales = _mm256_permute2x128_si256(s16, s16, 0x00);
  for (int c = 0; c < 8; ++c) p->sc[c] = _mm256_shuffle_epi8(scales, single_ctrl(c));
  p->mins = _mm256_extracti128_si256(s16, 1);
  p->d = half_to_float(b);
  p->dmin = half_to_float(b + 2);
}
// Sub-block j's activation sum is bsums[2j] + bsums[2j+1] (at most 2 * 16 * 127 in int16).
SLM_AVX2 inline __m128i pair_sums_k4(const ActBlockQ8_K* ab) {
  return _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ab->bsums)),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(ab->bsums + 8)));
}
// acc + sumi * (d * d_a) - (Σ_j mins_j * sums_j) * (dmin * d_a); dd = [d * d_a, dmin * d_a].
SLM_AVX2 inline __m256 finish_k4_dd(__m128i sums, __m128i mins, __m128 dd, __m256i sumi,
                                    __m256 acc) {
  const __m128i msum = _mm_madd_epi16(sums, mins);
  const __m256 dmin = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dd), _mm256_set1_epi32(1));
  acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_broadcastss_ps(dd), acc);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_zextsi128_si256(msum)),
                         _mm256_xor_ps(dmin, _mm256_set1_ps(-0.0f)), acc);
}
SLM_AVX2 inline __m256 finish_k4(const K4Prep& p, const ActBlockQ8_K* ab, __m256i sumi,
                                 __m256 acc) {
  const __m128 dd = _mm_mul_ps(_mm_setr_ps(p.d, p.dmin, 0.0f, 0.0f), _mm_set1_ps(ab->d));
  return finish_k4_dd(pair_sums_k4(ab), p.mins, dd, sumi, acc);
}

struct Q4K {
  static constexpr size_t bytes = k_q4_k_bytes;
  using Prep = K4Prep;
  SLM_AVX2 static void prepare(const uint8_t* b, __m256i q[8], Prep* p) {
    decode_q4_k(b, q);
    prepare_k4_scales(b, p);
  }
  SLM_AVX2 static __m256 finish(const Prep& p, const ActBlockQ8_K* ab, __m256i sumi, __m256 acc) {
    return finish_k4(p, ab, sumi, acc);
  }
};

struct Q5K {
  static constexpr size_t bytes = k_q5_k_bytes;
  using Prep = K4Prep;
  SLM_AVX2 static void prepare(const uint8_t* b, __m256i q[8], Prep* p) {
    decode_q5_k(b, q);
    prepare_k4_scales(b, p);
  }
  SLM_AVX2 static __m256 finish(const Prep& p, const ActBlockQ8_K* ab, __m256i sumi, __m256 acc) {
    return finish_k4(p, ab, sumi, acc);
  }
};

// ---- generic row x NC-columns kernel and the tile driver --------------------------------------

// out[c] = dot(weight row w, activation row c) for c < NC; activation rows at a + c * ba.
template <class T, int NC>
SLM_AVX2 void row_dot(int64_t nb, const uint8_t* w, const uint8_t* a, size_t ba, float* out) {
  const ActBlockQ8_K* act[NC];
  __m256 acc[NC];
  for (int c = 0; c < NC; ++c) {
    act[c] = reinterpret_cast<const ActBlockQ8_K*>(a + static_cast<size_t>(c) * ba);
    acc[c] = _mm256_setzero_ps();
  }
  for (int64_t i = 0; i < nb; ++i, w += T::bytes) {
    __m256i q[8];
    typename T::Prep p;
    T::prepare(w, q, &p);
    __m256i sumi[NC];
    for (int c = 0; c < NC; ++c) sumi[c] = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
      for (int c = 0; c < NC; ++c) {
        sumi[c] = _mm256_add_epi32(sumi[c], dot_chunk(q[k], act[c][i].qs + 32 * k, p.sc[k]));
      }
    }
    for (int c = 0; c < NC; ++c) acc[c] = T::finish(p, act[c] + i, sumi[c], acc[c]);
  }
  for (int c = 0; c < NC; ++c) out[c] = hsum256(acc[c]);
}

// ---- nc = 1 (decode): stream each super-block chunk by chunk -----------------------------------
// row_dot<T, 1> decodes all eight chunks and their scale vectors before the dot products: 16
// live vectors, more than the 16 ymm registers, so the compiler spills. These versions decode,
// scale and dot one chunk at a time, straight from the loaded bytes. The integer sums are exact,
// so adding the chunks in another order gives the same int32 lanes, and T::finish does the same
// float work as row_dot: a column computed here is bit-identical to one computed at nc > 1.

// unpack_scales_k4 in SSE: v = the 12 scale bytes as words [w0, w1, w2, -]. The 16-byte load
// reads 4 bytes of quants too (inside the super-block), which the shuffles drop; copying the
// 12 bytes to the stack first would stall on store forwarding.
SLM_AVX2 inline __m128i unpack_scales_k4_sse(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i a = _mm_srlv_epi32(_mm_shuffle_epi32(v, 0x98), _mm_setr_epi32(0, 0, 0, 4));
  const __m128i b = _mm_srli_epi32(_mm_shuffle_epi32(v, 0x50), 2);  // [w0, w0, w1, w1] >> 2
  const __m128i m_lo = _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f);
  const __m128i m_hi = _mm_setr_epi32(0, 0x30303030, 0, 0x30303030);
  return _mm_or_si128(_mm_and_si128(a, m_lo), _mm_and_si128(b, m_hi));
}

SLM_AVX2 inline __m256i dot_chunk_ctrl(__m256i q, const int8_t* a, __m256i scales,
                                       __m256i ctrl) {
  return dot_chunk(q, a, _mm256_shuffle_epi8(scales, ctrl));
}

// R rows at once (R = 2 at decode: two streams far apart, which one core reads faster than
// one): out[r] = the sum over row r's super-blocks of block(w, ab, i, acc) (w super-block i,
// ab its activation block), each row's arithmetic the same whatever R.
template <size_t Bytes, int R, class Block>
SLM_AVX2 void stream_rows(int64_t nb, const uint8_t* const (&rows)[R], const ActBlockQ8_K* ab,
                          float (&out)[R], Block block) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i, ++ab) {
    for (int r = 0; r < R; ++r) {
      const uint8_t* w = rows[r] + static_cast<size_t>(i) * Bytes;
      prefetch_super_block<Bytes>(w);
      acc[r] = block(w, ab, i, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum256(acc[r]);
}

// sums + 8i = pair_sums_k4(ab + i): the activation's per-sub-block sums, the same for every row.
template <bool Q5, int R>
SLM_AVX2 void rows_dot1_k4(int64_t nb, const uint8_t* const (&rows)[R], const ActBlockQ8_K* ab,
                           const int16_t* sums, float (&out)[R]) {
  constexpr size_t qs_off = Q5 ? 48 : 16;
  const __m256i m4 = _mm256_set1_epi8(0x0f), m16 = _mm256_set1_epi8(0x10);
  auto block = [&](const uint8_t* w, const ActBlockQ8_K* a, int64_t i,
                   __m256 acc) SLM_AVX2_LAMBDA {
    const __m128i sm = unpack_scales_k4_sse(w + 4);
    const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
    const __m128i mins = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
    // d and dmin in one conversion, each times the activation's d as finish_k4 multiplies them.
    uint32_t d_dmin;
    std::memcpy(&d_dmin, w, 4);
    const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(d_dmin))),
                                 _mm_set1_ps(a->d));
    __m256i h = Q5 ? loadu256(w + 16) : _mm256_setzero_si256();
    __m256i sumi = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      const __m256i v = loadu256(w + qs_off + 32 * k);
      __m256i lo = _mm256_and_si256(v, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      if (Q5) {
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(h, 4), m16));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(h, 3), m16));
        h = _mm256_srli_epi16(h, 2);
      }
      sumi = _mm256_add_epi32(sumi, dot_chunk_ctrl(lo, a->qs + 64 * k, scales,
                                                   single_ctrl(2 * k)));
      sumi = _mm256_add_epi32(sumi, dot_chunk_ctrl(hi, a->qs + 64 * k + 32, scales,
                                                   single_ctrl(2 * k + 1)));
    }
    const __m128i si = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sums + 8 * i));
    return finish_k4_dd(si, mins, dd, sumi, acc);
  };
  stream_rows<Q5 ? k_q5_k_bytes : k_q4_k_bytes>(nb, rows, ab, out, block);
}

template <int R>
SLM_AVX2 void rows_dot1_q6_k(int64_t nb, const uint8_t* const (&rows)[R], const ActBlockQ8_K* ab,
                             float (&out)[R]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3),
                m12 = _mm256_set1_epi8(0x0c), m48 = _mm256_set1_epi8(0x30);
  auto block = [&](const uint8_t* w, const ActBlockQ8_K* ab1, int64_t,
                   __m256 acc) SLM_AVX2_LAMBDA {
    Q6K::Prep p;  // sc[] unused here: scales are shuffled per chunk
    p.sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 192)));
    p.d = half_to_float(w + 208);
    const __m256i sc_half[2] = {_mm256_permute4x64_epi64(p.sc16, 0x44),   // scales 0-7
                                _mm256_permute4x64_epi64(p.sc16, 0xee)};  // scales 8-15
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i sc = sc_half[h];
      const __m256i la = loadu256(w + 64 * h), lb = loadu256(w + 64 * h + 32);
      const __m256i hv = loadu256(w + 128 + 32 * h);
      const int8_t* a = ab1->qs + 128 * h;
      const __m256i q0 = _mm256_or_si256(_mm256_and_si256(la, m4),
                                         _mm256_slli_epi16(_mm256_and_si256(hv, m3), 4));
      sumi = _mm256_add_epi32(sumi, dot_chunk_ctrl(q0, a, sc, pair_ctrl(0)));
      const __m256i q1 = _mm256_or_si256(_mm256_and_si256(lb, m4),
                                         _mm256_slli_epi16(_mm256_and_si256(hv, m12), 2));
      sumi = _mm256_add_epi32(sumi, dot_chunk_ctrl(q1, a + 32, sc, pair_ctrl(1)));
      const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4),
                                         _mm256_and_si256(hv, m48));
      sumi = _mm256_add_epi32(sumi, dot_chunk_ctrl(q2, a + 64, sc, pair_ctrl(2)));
      const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(hv, 2), m48));
      sumi = _mm256_add_epi32(sumi, dot_chunk_ctrl(q3, a + 96, sc, pair_ctrl(3)));
    }
    return Q6K::finish(p, ab1, sumi, acc);
  };
  stream_rows<k_q6_k_bytes>(nb, rows, ab, out, block);
}

// The nc = 1 kernel of T over R rows (R = 1 or 2), or row_dot<T, 1> per row for the types
// without a streaming version.
template <class T, int R>
SLM_AVX2 void rows_dot1(int64_t nb, const uint8_t* const (&rows)[R], const uint8_t* a,
                        const int16_t* sums, float (&out)[R]) {
  const auto* ab = reinterpret_cast<const ActBlockQ8_K*>(a);
  if constexpr (std::is_same_v<T, Q4K> || std::is_same_v<T, Q5K>) {
    rows_dot1_k4<std::is_same_v<T, Q5K>, R>(nb, rows, ab, sums, out);
  } else if constexpr (std::is_same_v<T, Q6K>) {
    rows_dot1_q6_k<R>(nb, rows, ab, out);
  } else {
    for (int r = 0; r < R; ++r) {
      float one[1];
      row_dot<T, 1>(nb, rows[r], a, 0, one);
      out[r] = one[0];
    }
  }
}

// For Q4_K / Q5_K, activation row a's per-sub-block sums (pair_sums_k4 of each super-block),
// once per call rather than once per row: a grow-only buffer per thread. Null for other types.
template <class T>
SLM_AVX2 const int16_t* k4_sums(int64_t nb, const uint8_t* a) {
  if constexpr (std::is_same_v<T, Q4K> || std::is_same_v<T, Q5K>) {
    thread_local std::vector<int16_t> buf;
    if (buf.size() < static_cast<size_t>(8 * nb)) buf.resize(static_cast<size_t>(8 * nb));
    const auto* ab = reinterpret_cast<const ActBlockQ8_K*>(a);
    for (int64_t i = 0; i < nb; ++i) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(buf.data() + 8 * i), pair_sums_k4(ab + i));
    }
    return buf.data();
  } else {
    (void)nb;
    (void)a;
    return nullptr;
  }
}

// Rows outer within each group of up to four columns: every weight super-block is decoded once
// per group.
template <class T>
SLM_AVX2 void tile(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba, int nc,
                   float* s, int64_t ls) {
  const int64_t nb = n / k_qk;
  const auto* wb = static_cast<const uint8_t*>(w);
  constexpr bool streams = std::is_same_v<T, Q4K> || std::is_same_v<T, Q5K> || std::is_same_v<T, Q6K>;
  if (streams && nc == 1) {
    // Decode: row i beside row i + h (h = half the range), two streams far apart, as the legacy
    // decode tiles do (Q4_K at 2048-wide rows: 13.7 -> 16.6 GB/s on one core, 26 -> 32 on two).
    const int h = (nr + 1) / 2;
    const int16_t* sums = k4_sums<T>(nb, static_cast<const uint8_t*>(a));
    for (int i = 0; i < nr - h; ++i) {
      const uint8_t* const rows[2] = {wb + static_cast<size_t>(i) * bw,
                                      wb + static_cast<size_t>(i + h) * bw};
      float out[2];
      rows_dot1<T, 2>(nb, rows, static_cast<const uint8_t*>(a), sums, out);
      s[i] = out[0];
      s[i + h] = out[1];
    }
    if (nr - h < h) {
      const uint8_t* const rows[1] = {wb + static_cast<size_t>(h - 1) * bw};
      float out[1];
      rows_dot1<T, 1>(nb, rows, static_cast<const uint8_t*>(a), sums, out);
      s[h - 1] = out[0];
    }
    return;
  }
  for (int c0 = 0; c0 < nc; c0 += 4) {
    const int m = std::min(4, nc - c0);
    const auto* ac = static_cast<const uint8_t*>(a) + static_cast<size_t>(c0) * ba;
    const int16_t* sums = streams && m == 1 ? k4_sums<T>(nb, ac) : nullptr;
    for (int r = 0; r < nr; ++r) {
      const uint8_t* wr = wb + static_cast<size_t>(r) * bw;
      float out[4];
      switch (m) {
        case 1: {
          const uint8_t* const rows[1] = {wr};
          float one[1];
          rows_dot1<T, 1>(nb, rows, ac, sums, one);
          out[0] = one[0];
          break;
        }
        case 2:
          row_dot<T, 2>(nb, wr, ac, ba, out);
          break;
        case 3:
          row_dot<T, 3>(nb, wr, ac, ba, out);
          break;
        default:
          row_dot<T, 4>(nb, wr, ac, ba, out);
          break;
      }
      for (int c = 0; c < m; ++c) s[(c0 + c) * ls + r] = out[c];
    }
  }
}

}  // namespace

SLM_AVX2 void tile_q2_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a,
                             size_t ba, int nc, float* s, int64_t ls) {
  tile<Q2K>(n, w, bw, nr, a, ba, nc, s, ls);
}
SLM_AVX2 void tile_q3_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a,
                             size_t ba, int nc, float* s, int64_t ls) {
  tile<Q3K>(n, w, bw, nr, a, ba, nc, s, ls);
}
SLM_AVX2 void tile_q4_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a,
                             size_t ba, int nc, float* s, int64_t ls) {
  tile<Q4K>(n, w, bw, nr, a, ba, nc, s, ls);
}
SLM_AVX2 void tile_q5_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a,
                             size_t ba, int nc, float* s, int64_t ls) {
  tile<Q5K>(n, w, bw, nr, a, ba, nc, s, ls);
}
SLM_AVX2 void tile_q6_k_avx2(int64_t n, const void* w, size_t bw, int nr, const void* a,
                             size_t ba, int nc, float* s, int64_t ls) {
  tile<Q6K>(n, w, bw, nr, a, ba, nc, s, ls);
}

}  // namespace slm::kquant
