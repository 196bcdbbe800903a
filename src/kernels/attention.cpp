// Typed-KV attention: F16 rows are widened with F16C in registers, Q8_0 rows with integer
// sign extension, so the cache is read once per step at its stored size.
#include "kernels/attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/ops.h"
#include "kernels/simd.h"

namespace slm {

namespace {

constexpr int64_t k_q8 = 32;         // Q8_0 block: f16 d + 32 int8
constexpr size_t k_q8_bytes = 34;

inline uint16_t load_u16(const uint8_t* b) {
  uint16_t h;
  std::memcpy(&h, b, 2);
  return h;
}

inline float load_f32(const uint8_t* b) {
  float f;
  std::memcpy(&f, b, 4);
  return f;
}

inline float q8_scale(const uint8_t* b) { return fp16_to_fp32(load_u16(b)); }

// ---- AVX2 -----------------------------------------------------------------------------------

SLM_AVX2 float dot_row_avx2(DType t, const float* q, const uint8_t* row, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  if (t == DType::F16) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv, acc);
    }
    float s = hsum256(acc);
    for (; i < n; ++i) s += q[i] * fp16_to_fp32(load_u16(row + 2 * i));
    return s;
  }
  if (t == DType::Q8_0) {
    float s = 0;
    for (int64_t b = 0; b < n; b += k_q8, row += k_q8_bytes) {
      const int8_t* qs = reinterpret_cast<const int8_t*>(row + 2);
      __m256 blk = _mm256_setzero_ps();
      for (int j = 0; j < k_q8; j += 8) {
        __m256 kv = _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs + j))));
        blk = _mm256_fmadd_ps(_mm256_loadu_ps(q + b + j), kv, blk);
      }
      acc = _mm256_fmadd_ps(_mm256_set1_ps(q8_scale(row)), blk, acc);
    }
    return s + hsum256(acc);
  }
  // F32 rows need not be 4-byte aligned (the cache stride is the caller's): unaligned vector
  // loads and a memcpy tail, never a float* into the bytes.
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i),
                          _mm256_loadu_ps(reinterpret_cast<const float*>(row + 4 * i)), acc);
  }
  float s = hsum256(acc);
  for (; i < n; ++i) s += q[i] * load_f32(row + 4 * i);
  return s;
}

SLM_AVX2 void axpy_row_avx2(DType t, float a, const uint8_t* row, float* y, int64_t n) {
  if (t == DType::F16) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, kv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; ++i) y[i] += a * fp16_to_fp32(load_u16(row + 2 * i));
    return;
  }
  if (t == DType::Q8_0) {
    for (int64_t b = 0; b < n; b += k_q8, row += k_q8_bytes) {
      const int8_t* qs = reinterpret_cast<const int8_t*>(row + 2);
      const __m256 va = _mm256_set1_ps(a * q8_scale(row));
      for (int j = 0; j < k_q8; j += 8) {
        __m256 kv = _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs + j))));
        _mm256_storeu_ps(y + b + j, _mm256_fmadd_ps(va, kv, _mm256_loadu_ps(y + b + j)));
      }
    }
    return;
  }
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 kv = _mm256_loadu_ps(reinterpret_cast<const float*>(row + 4 * i));
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, kv, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * load_f32(row + 4 * i);
}

// Row j of a F32 or F16 cache as 8 floats at column i.
template <bool kF16>
SLM_AVX2 inline __m256 load8(const uint8_t* row, int64_t i) {
  if constexpr (kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
  } else {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row + 4 * i));
  }
}

// The sums of eight vectors: lanes 0-3 of the result are the sums of v[0..3], lanes 4-7 those
// of v[4..7]. Each sum is ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) whatever the
// vector's position, so rows reduced in fours or in eights give the same bits.
SLM_AVX2 inline __m256 sum8(const __m256 (&v)[8]) {
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// q·K[j] for rows j = 0..R-1 from r (R = 4 or 8), in lanes 0..R-1 (sum8's lane order).
template <bool kF16, int R>
SLM_AVX2 inline __m256 row_dots(const float* q, const uint8_t* r, size_t stride, int64_t D) {
  __m256 a[8];
  for (int u = 0; u < 8; ++u) a[u] = _mm256_setzero_ps();
  for (int64_t i = 0; i < D; i += 8) {
    const __m256 vq = _mm256_loadu_ps(q + i);
    for (int u = 0; u < R; ++u) a[u] = _mm256_fmadd_ps(vq, load8<kF16>(r + u * stride, i), a[u]);
  }
  return sum8(a);
}

// scores[j] = scale · q·K[j], eight rows per horizontal reduction, then four, then one at a
// time (at D = 64 one reduction per row cost as much as the dot products). D % 8 == 0.
template <bool kF16>
SLM_AVX2 void scores_avx2(const float* q, const uint8_t* k, size_t stride, int64_t n_pos,
                          int64_t D, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 8 <= n_pos; j += 8) {
    const __m256 d = row_dots<kF16, 8>(q, k + j * stride, stride, D);
    _mm256_storeu_ps(scores + j, _mm256_mul_ps(d, _mm256_set1_ps(scale)));
  }
  for (; j + 4 <= n_pos; j += 4) {
    const __m256 d = row_dots<kF16, 4>(q, k + j * stride, stride, D);
    _mm_storeu_ps(scores + j, _mm_mul_ps(_mm256_castps256_ps128(d), _mm_set1_ps(scale)));
  }
  for (; j < n_pos; ++j) {
    const uint8_t* r = k + j * stride;
    __m256 a = _mm256_setzero_ps();
    for (int64_t i = 0; i < D; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8<kF16>(r, i), a);
    scores[j] = hsum256(a) * scale;
  }
}

// scores_avx2 for two query heads over the same rows (GQA): each K vector is loaded and widened
// once for both heads. Each head's arithmetic is scores_avx2's, in the same order, so the
// results are the same bits.
template <bool kF16>
SLM_AVX2 void scores2_avx2(const float* q0, const float* q1, const uint8_t* k, size_t stride,
                           int64_t n_pos, int64_t D, float scale, float* s0, float* s1) {
  int64_t j = 0;
  for (; j + 4 <= n_pos; j += 4) {
    const uint8_t* r = k + j * stride;
    __m256 a[8];  // head 0's four rows, then head 1's
    for (int u = 0; u < 8; ++u) a[u] = _mm256_setzero_ps();
    for (int64_t i = 0; i < D; i += 8) {
      const __m256 va = _mm256_loadu_ps(q0 + i), vb = _mm256_loadu_ps(q1 + i);
      for (int u = 0; u < 4; ++u) {
        const __m256 kv = load8<kF16>(r + u * stride, i);
        a[u] = _mm256_fmadd_ps(va, kv, a[u]);
        a[4 + u] = _mm256_fmadd_ps(vb, kv, a[4 + u]);
      }
    }
    const __m256 sums = _mm256_mul_ps(sum8(a), _mm256_set1_ps(scale));
    _mm_storeu_ps(s0 + j, _mm256_castps256_ps128(sums));
    _mm_storeu_ps(s1 + j, _mm256_extractf128_ps(sums, 1));
  }
  for (; j < n_pos; ++j) {
    const uint8_t* r = k + j * stride;
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    for (int64_t i = 0; i < D; i += 8) {
      const __m256 kv = load8<kF16>(r, i);
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i), kv, a);
      b = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i), kv, b);
    }
    s0[j] = hsum256(a) * scale;
    s1[j] = hsum256(b) * scale;
  }
}

// out[c0 .. c0 + 8·NV) = Σ_j p[j] · V[j][c0 ...], the accumulators in registers across all j
// (the row-by-row axpy loaded and stored out once per row).
template <bool kF16, int NV>
SLM_AVX2 inline void weighted_sum_cols(const float* p, const uint8_t* v, size_t stride,
                                       int64_t n_pos, int64_t c0, float* out) {
  __m256 acc[NV];
  for (int u = 0; u < NV; ++u) acc[u] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n_pos; ++j) {
    const __m256 pj = _mm256_broadcast_ss(p + j);
    const uint8_t* r = v + j * stride;
    for (int u = 0; u < NV; ++u) acc[u] = _mm256_fmadd_ps(pj, load8<kF16>(r, c0 + 8 * u), acc[u]);
  }
  for (int u = 0; u < NV; ++u) _mm256_storeu_ps(out + c0 + 8 * u, acc[u]);
}

// weighted_sum_cols for two heads' weights over the same V rows: each V vector widened once.
// Every output column sums over j in order, one multiply-add per row, as in weighted_sum_cols.
template <bool kF16, int NV>
SLM_AVX2 inline void weighted_sum2_cols(const float* p0, const float* p1, const uint8_t* v,
                                        size_t stride, int64_t n_pos, int64_t c0, float* o0,
                                        float* o1) {
  __m256 a[NV], b[NV];
  for (int u = 0; u < NV; ++u) a[u] = b[u] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n_pos; ++j) {
    const __m256 pa = _mm256_broadcast_ss(p0 + j), pb = _mm256_broadcast_ss(p1 + j);
    const uint8_t* r = v + j * stride;
    for (int u = 0; u < NV; ++u) {
      const __m256 vv = load8<kF16>(r, c0 + 8 * u);
      a[u] = _mm256_fmadd_ps(pa, vv, a[u]);
      b[u] = _mm256_fmadd_ps(pb, vv, b[u]);
    }
  }
  for (int u = 0; u < NV; ++u) {
    _mm256_storeu_ps(o0 + c0 + 8 * u, a[u]);
    _mm256_storeu_ps(o1 + c0 + 8 * u, b[u]);
  }
}

template <bool kF16>
SLM_AVX2 void weighted_sum2_avx2(const float* p0, const float* p1, const uint8_t* v, size_t stride,
                                 int64_t n_pos, int64_t D, float* o0, float* o1) {
  int64_t c = 0;
  for (; c + 32 <= D; c += 32) weighted_sum2_cols<kF16, 4>(p0, p1, v, stride, n_pos, c, o0, o1);
  for (; c < D; c += 8) weighted_sum2_cols<kF16, 1>(p0, p1, v, stride, n_pos, c, o0, o1);
}

template <bool kF16>
SLM_AVX2 void weighted_sum_avx2(const float* p, const uint8_t* v, size_t stride, int64_t n_pos,
                                int64_t D, float* out) {
  int64_t c = 0;
  for (; c + 64 <= D; c += 64) weighted_sum_cols<kF16, 8>(p, v, stride, n_pos, c, out);
  for (; c + 32 <= D; c += 32) weighted_sum_cols<kF16, 4>(p, v, stride, n_pos, c, out);
  for (; c < D; c += 8) weighted_sum_cols<kF16, 1>(p, v, stride, n_pos, c, out);
}

// F32 -> F16 with F16C, round to nearest even like fp32_to_fp16 (both IEEE conversions).
SLM_AVX2 void store_f16_avx2(const float* src, uint8_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), h);
  }
  for (; i < n; ++i) {
    const uint16_t h = fp32_to_fp16(src[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

}  // namespace

bool kv_type_supported(DType t, int64_t head_dim) {
  return t == DType::F32 || t == DType::F16 || (t == DType::Q8_0 && head_dim % k_q8 == 0);
}

Status check_kv_type(DType t, int64_t head_dim) {
  if (t == DType::Q8_0 && head_dim % k_q8 != 0) {
    return error("KV cache type Q8_0 needs a head size that is a multiple of 32 (this model: %lld)",
                 (long long)head_dim);
  }
  if (!kv_type_supported(t, head_dim)) {
    return error("KV cache type %s is not supported (use F32, F16 or Q8_0)", dtype_name(t));
  }
  return Status();
}

size_t kv_row_bytes(DType t, int64_t n) {
  switch (t) {
    case DType::F16:
      return static_cast<size_t>(n) * 2;
    case DType::Q8_0:
      return static_cast<size_t>(n / k_q8) * k_q8_bytes;
    default:
      return static_cast<size_t>(n) * 4;
  }
}

void kv_store_row(DType t, const float* src, void* dst, int64_t n) {
  uint8_t* out = static_cast<uint8_t*>(dst);
  if (t == DType::F16 && ops_have_avx2()) {
    store_f16_avx2(src, out, n);
  } else if (t == DType::F16) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h = fp32_to_fp16(src[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
  } else if (t == DType::Q8_0) {
    for (int64_t b = 0; b < n; b += k_q8, out += k_q8_bytes) {
      float amax = 0;
      for (int64_t j = 0; j < k_q8; ++j) amax = std::max(amax, std::fabs(src[b + j]));
      const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
      const uint16_t h = fp32_to_fp16(d);
      std::memcpy(out, &h, 2);
      for (int64_t j = 0; j < k_q8; ++j) {
        out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(src[b + j] * id)));
      }
    }
  } else {
    std::memcpy(out, src, static_cast<size_t>(n) * 4);
  }
}

void kv_load_row(DType t, const void* src, float* dst, int64_t n) {
  const uint8_t* in = static_cast<const uint8_t*>(src);
  if (t == DType::F16) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, in + 2 * i, 2);
      dst[i] = fp16_to_fp32(h);
    }
  } else if (t == DType::Q8_0) {
    for (int64_t b = 0; b < n; b += k_q8, in += k_q8_bytes) {
      const float d = q8_scale(in);
      for (int64_t j = 0; j < k_q8; ++j) dst[b + j] = static_cast<int8_t>(in[2 + j]) * d;
    }
  } else {
    std::memcpy(dst, in, static_cast<size_t>(n) * 4);
  }
}

void attention_head_kv_ref(DType t, const float* q, const void* k, const void* v, size_t stride,
                           int64_t n_pos, int64_t head_dim, float scale, float* scores,
                           float* out) {
  std::vector<float> row(static_cast<size_t>(head_dim));
  const uint8_t* kb = static_cast<const uint8_t*>(k);
  const uint8_t* vb = static_cast<const uint8_t*>(v);
  for (int64_t j = 0; j < n_pos; ++j) {
    kv_load_row(t, kb + j * stride, row.data(), head_dim);
    scores[j] = dot_f32_ref(q, row.data(), head_dim) * scale;
  }
  softmax_ref(scores, n_pos);
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0;
  for (int64_t j = 0; j < n_pos; ++j) {
    kv_load_row(t, vb + j * stride, row.data(), head_dim);
    axpy_f32_ref(scores[j], row.data(), out, head_dim);
  }
}

void attention_head_kv(DType t, const float* q, const void* k, const void* v, size_t stride,
                       int64_t n_pos, int64_t head_dim, float scale, float* scores, float* out) {
  if (!ops_have_avx2()) {
    attention_head_kv_ref(t, q, k, v, stride, n_pos, head_dim, scale, scores, out);
    return;
  }
  const uint8_t* kb = static_cast<const uint8_t*>(k);
  const uint8_t* vb = static_cast<const uint8_t*>(v);
  if ((t == DType::F16 || t == DType::F32) && head_dim % 8 == 0) {
    const bool f16 = t == DType::F16;
    if (f16) {
      scores_avx2<true>(q, kb, stride, n_pos, head_dim, scale, scores);
    } else {
      scores_avx2<false>(q, kb, stride, n_pos, head_dim, scale, scores);
    }
    softmax(scores, n_pos);
    if (f16) {
      weighted_sum_avx2<true>(scores, vb, stride, n_pos, head_dim, out);
    } else {
      weighted_sum_avx2<false>(scores, vb, stride, n_pos, head_dim, out);
    }
    return;
  }
  for (int64_t j = 0; j < n_pos; ++j) scores[j] = dot_row_avx2(t, q, kb + j * stride, head_dim) * scale;
  softmax(scores, n_pos);
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0;
  for (int64_t j = 0; j < n_pos; ++j) axpy_row_avx2(t, scores[j], vb + j * stride, out, head_dim);
}

void attention_group_kv(DType t, const float* q, int64_t n_heads, const void* k, const void* v,
                        size_t stride, int64_t n_pos, int64_t head_dim, float scale, float* scores,
                        float* out) {
  const int64_t D = head_dim;
  const uint8_t* kb = static_cast<const uint8_t*>(k);
  const uint8_t* vb = static_cast<const uint8_t*>(v);
  int64_t h = 0;
  if (ops_have_avx2() && (t == DType::F16 || t == DType::F32) && D % 8 == 0) {
    const bool f16 = t == DType::F16;
    for (; h + 2 <= n_heads; h += 2) {
      const float* q0 = q + h * D;
      float* s0 = scores + h * n_pos;
      float* o0 = out + h * D;
      if (f16) {
        scores2_avx2<true>(q0, q0 + D, kb, stride, n_pos, D, scale, s0, s0 + n_pos);
      } else {
        scores2_avx2<false>(q0, q0 + D, kb, stride, n_pos, D, scale, s0, s0 + n_pos);
      }
      softmax(s0, n_pos);
      softmax(s0 + n_pos, n_pos);
      if (f16) {
        weighted_sum2_avx2<true>(s0, s0 + n_pos, vb, stride, n_pos, D, o0, o0 + D);
      } else {
        weighted_sum2_avx2<false>(s0, s0 + n_pos, vb, stride, n_pos, D, o0, o0 + D);
      }
    }
  }
  for (; h < n_heads; ++h) {
    attention_head_kv(t, q + h * D, k, v, stride, n_pos, D, scale, scores + h * n_pos,
                      out + h * D);
  }
}

namespace {

// Columns [c, c + 8) of the eight queries' weighted sums, dst[8 * i ...] for query i. The
// accumulators are named: as an array, GCC stored all eight to the stack every row.
template <bool kF16>
SLM_AVX2 inline void tile_weighted_cols(const float* s, const uint8_t* v, size_t stride, int64_t n,
                                        int64_t c, float* dst) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t j = 0; j < n; ++j, s += 8) {
    const __m256 vv = load8<kF16>(v + j * stride, c);
    a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(s), vv, a0);
    a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + 1), vv, a1);
    a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + 2), vv, a2);
    a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + 3), vv, a3);
    a4 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + 4), vv, a4);
    a5 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + 5), vv, a5);
    a6 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + 6), vv, a6);
    a7 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + 7), vv, a7);
  }
  _mm256_store_ps(dst, a0);
  _mm256_store_ps(dst + 8, a1);
  _mm256_store_ps(dst + 16, a2);
  _mm256_store_ps(dst + 24, a3);
  _mm256_store_ps(dst + 32, a4);
  _mm256_store_ps(dst + 40, a5);
  _mm256_store_ps(dst + 48, a6);
  _mm256_store_ps(dst + 56, a7);
}

// Row j's scores of the eight queries (lane i = query i), unscaled.
template <bool kF16>
SLM_AVX2 inline __m256 tile_scores_row(const float* const (&qi)[8], const uint8_t* r, int64_t D) {
  __m256 a[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm256_setzero_ps();
  for (int64_t c = 0; c < D; c += 8) {
    const __m256 kv = load8<kF16>(r, c);
    for (int i = 0; i < 8; ++i) a[i] = _mm256_fmadd_ps(_mm256_loadu_ps(qi[i] + c), kv, a[i]);
  }
  return sum8(a);
}

// attention_tile_kv's AVX2 body for m <= 8 queries over F32/F16 rows, D % 8 == 0. Lane i of
// every vector is query i (lanes past m repeat the last query and are discarded).
template <bool kF16>
SLM_AVX2 void attention_tile_avx2(const float* q, size_t q_stride, int m, int64_t n_first,
                                  const uint8_t* k, const uint8_t* v, size_t stride, int64_t D,
                                  float scale, float* s, float* out, size_t out_stride) {
  const float* qi[8];
  for (int i = 0; i < 8; ++i) qi[i] = q + static_cast<size_t>(std::min(i, m - 1)) * q_stride;
  const int64_t n = n_first + m - 1;
  // Row j is visible to query i when j - n_first < i: masked where j - n_first (0..7 past
  // n_first, so exact as a float) >= the lane's index.
  const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 neg_inf = _mm256_set1_ps(-INFINITY), vscale = _mm256_set1_ps(scale);
  // Scores, row j at s + 8j: each K vector is widened once for the eight queries.
  __m256 mx = neg_inf;
  for (int64_t j = 0; j < n; ++j) {
    __m256 sj = _mm256_mul_ps(tile_scores_row<kF16>(qi, k + j * stride, D), vscale);
    if (j >= n_first) {
      const __m256 past = _mm256_set1_ps(static_cast<float>(j - n_first));
      sj = _mm256_blendv_ps(sj, neg_inf, _mm256_cmp_ps(past, lane, _CMP_GE_OQ));
    }
    mx = _mm256_max_ps(mx, sj);
    _mm256_storeu_ps(s + 8 * j, sj);
  }
  // Softmax per lane; the 1 / sum is applied to the outputs (D values, not n).
  __m256 sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + 8 * j), mx));
    _mm256_storeu_ps(s + 8 * j, e);
    sum = _mm256_add_ps(sum, e);
  }
  alignas(32) float inv[8];
  _mm256_store_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.0f), sum));
  // Weighted sum, eight output columns of every query at a time: each V vector widened once.
  alignas(32) float cols[64];
  for (int64_t c = 0; c < D; c += 8) {
    tile_weighted_cols<kF16>(s, v, stride, n, c, cols);
    for (int i = 0; i < m; ++i) {
      _mm256_storeu_ps(out + static_cast<size_t>(i) * out_stride + c,
                       _mm256_mul_ps(_mm256_load_ps(cols + 8 * i), _mm256_set1_ps(inv[i])));
    }
  }
}

}  // namespace

void attention_tile_kv(DType t, const float* q, size_t q_stride, int m, int64_t n_first,
                       const void* k, const void* v, size_t stride, int64_t head_dim, float scale,
                       float* scores, float* out, size_t out_stride) {
  const uint8_t* kb = static_cast<const uint8_t*>(k);
  const uint8_t* vb = static_cast<const uint8_t*>(v);
  if (m >= 1 && m <= k_attention_tile && ops_have_avx2() &&
      (t == DType::F16 || t == DType::F32) && head_dim % 8 == 0) {
    if (t == DType::F16) {
      attention_tile_avx2<true>(q, q_stride, m, n_first, kb, vb, stride, head_dim, scale, scores,
                                out, out_stride);
    } else {
      attention_tile_avx2<false>(q, q_stride, m, n_first, kb, vb, stride, head_dim, scale, scores,
                                 out, out_stride);
    }
    return;
  }
  for (int i = 0; i < m; ++i) {
    attention_head_kv(t, q + static_cast<size_t>(i) * q_stride, k, v, stride, n_first + i,
                      head_dim, scale, scores, out + static_cast<size_t>(i) * out_stride);
  }
}

void attention_group_kv_ref(DType t, const float* q, int64_t n_heads, const void* k,
                            const void* v, size_t stride, int64_t n_pos, int64_t head_dim,
                            float scale, float* scores, float* out) {
  for (int64_t h = 0; h < n_heads; ++h) {
    attention_head_kv_ref(t, q + h * head_dim, k, v, stride, n_pos, head_dim, scale,
                          scores + h * n_pos, out + h * head_dim);
  }
}

}  // namespace slm
