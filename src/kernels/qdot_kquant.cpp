// Dot kernels of the K-quant weight family (Q2_K..Q6_K with Q8_K activations): the Q8_K
// activation quantizer (scalar and AVX2, bit-identical), the scalar reference tiles, the registry.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/qdot_kquant_internal.h"

namespace slm {

namespace kquant {
namespace {

// ---- Q8_K activation quantizer ----------------------------------------------------------------
// Per 256 values: amax = max |x| (NaNs ignored), d = amax / 127, q = nearbyint(clamp(x / d,
// -127, 127)) (round to nearest even). Dividing by d rather than multiplying by 1/d keeps
// q = 0 for x = 0 even when d is so small that 1/d overflows; the clamp maps a NaN to -127 in
// both versions (max_ps returns its second operand for a NaN, like std::fmax). amax == 0 (or d
// underflowing to 0) gives d = 0 and all-zero quants. Quantizing activations is O(n) per
// matmul against O(n * rows) for the dot products, so the division costs nothing that matters.

void fill_bsums(ActBlockQ8_K* b) {
  for (int j = 0; j < 16; ++j) {
    int s = 0;
    for (int l = 0; l < 16; ++l) s += b->qs[16 * j + l];
    b->bsums[j] = static_cast<int16_t>(s);
  }
}

void quantize_q8_k_scalar(const float* x, void* a, int64_t n) {
  auto* blocks = static_cast<ActBlockQ8_K*>(a);
  for (int64_t i = 0; i < n / k_qk; ++i, x += k_qk) {
    ActBlockQ8_K* b = blocks + i;
    float amax = 0;
    for (int j = 0; j < k_qk; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    b->d = d;
    if (d == 0) {
      std::memset(b->qs, 0, sizeof(b->qs));
      std::memset(b->bsums, 0, sizeof(b->bsums));
      continue;
    }
    for (int j = 0; j < k_qk; ++j) {
      const float v = std::fmin(std::fmax(x[j] / d, -127.0f), 127.0f);
      b->qs[j] = static_cast<int8_t>(static_cast<int>(std::nearbyint(v)));
    }
    fill_bsums(b);
  }
}

SLM_AVX2 void quantize_q8_k_avx2(const float* x, void* a, int64_t n) {
  auto* blocks = static_cast<ActBlockQ8_K*>(a);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t i = 0; i < n / k_qk; ++i, x += k_qk) {
    ActBlockQ8_K* b = blocks + i;
    __m256 mx = _mm256_setzero_ps();
    for (int j = 0; j < k_qk; j += 8) {
      mx = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), mx);
    }
    const float amax = hmax256(mx);
    const float d = amax / 127.0f;
    b->d = d;
    if (d == 0) {
      std::memset(b->qs, 0, sizeof(b->qs));
      std::memset(b->bsums, 0, sizeof(b->bsums));
      continue;
    }
    const __m256 vd = _mm256_set1_ps(d);
    for (int g = 0; g < k_qk; g += 32) {
      __m256i v[4];
      for (int k = 0; k < 4; ++k) {
        const __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + g + 8 * k), vd);
        v[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(q, lo), hi));
      }
      // packs work per 128-bit lane; the permute restores element order.
      const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]),
                                           _mm256_packs_epi32(v[2], v[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b->qs + g),
                          _mm256_permutevar8x32_epi32(p, order));
    }
    fill_bsums(b);
  }
}

// ---- scalar reference tiles --------------------------------------------------------------------
// One weight row against one activation row. Per super-block the integer sum over each
// sub-block is multiplied by its integer scale; offsets that do not depend on the weight quant
// (the mins of Q2_K/Q4_K/Q5_K) come from the activation's bsums. Float scaling happens once per
// super-block: sum += (d * a.d) * isum - (dmin * a.d) * msum.

inline float half_at(const uint8_t* p) { return fp16_to_fp32(load_u16(p)); }

float dot_q2_k_ref(const uint8_t* w, const ActBlockQ8_K* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i, w += k_q2_k_bytes, ++a) {
    const uint8_t* qs = w + 16;
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 16; ++j) {  // sub-block j = 8h + 2s + part, elements 16j..16j+15
      const int h = j / 8, shift = 2 * ((j % 8) / 2), part = j % 2;
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) s += ((qs[32 * h + 16 * part + l] >> shift) & 3) * a->qs[16 * j + l];
      isum += (w[j] & 0x0f) * s;
      msum += (w[j] >> 4) * a->bsums[j];
    }
    const float d = half_at(w + 80), dmin = half_at(w + 82);
    sum += (d * a->d) * static_cast<float>(isum) - (dmin * a->d) * static_cast<float>(msum);
  }
  return sum;
}

float dot_q3_k_ref(const uint8_t* w, const ActBlockQ8_K* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i, w += k_q3_k_bytes, ++a) {
    const uint8_t* hmask = w;
    const uint8_t* qs = w + 32;
    int8_t sc[16];
    unpack_scales_q3_k(w + 96, sc);
    int32_t isum = 0;
    for (int j = 0; j < 16; ++j) {
      const int h = j / 8, step = (j % 8) / 2, part = j % 2;
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) {
        int q = (qs[32 * h + 16 * part + l] >> (2 * step)) & 3;
        if (!((hmask[16 * part + l] >> (4 * h + step)) & 1)) q -= 4;
        s += q * a->qs[16 * j + l];
      }
      isum += sc[j] * s;
    }
    sum += (half_at(w + 108) * a->d) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_K and Q5_K share everything but the 5th bit (five: Q5_K, whose qh precedes qs).
float dot_q45_k_ref(const uint8_t* w, const ActBlockQ8_K* a, int64_t nb, bool five) {
  const size_t bytes = five ? k_q5_k_bytes : k_q4_k_bytes;
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i, w += bytes, ++a) {
    uint8_t sm[16];
    unpack_scales_k4(w + 4, sm);
    const uint8_t* qh = w + 16;
    const uint8_t* qs = w + (five ? 48 : 16);
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {  // sub-block j: elements 32j..32j+31
      const uint8_t* src = qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) {
        int q = (src[l] >> shift) & 0x0f;
        if (five) q += ((qh[l] >> j) & 1) << 4;
        s += q * a->qs[32 * j + l];
      }
      isum += sm[j] * s;
      msum += sm[8 + j] * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
    }
    const float d = half_at(w), dmin = half_at(w + 2);
    sum += (d * a->d) * static_cast<float>(isum) - (dmin * a->d) * static_cast<float>(msum);
  }
  return sum;
}

float dot_q4_k_ref(const uint8_t* w, const ActBlockQ8_K* a, int64_t nb) {
  return dot_q45_k_ref(w, a, nb, false);
}
float dot_q5_k_ref(const uint8_t* w, const ActBlockQ8_K* a, int64_t nb) {
  return dot_q45_k_ref(w, a, nb, true);
}

float dot_q6_k_ref(const uint8_t* w, const ActBlockQ8_K* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i, w += k_q6_k_bytes, ++a) {
    const uint8_t* ql = w;
    const uint8_t* qh = w + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(w + 192);
    int32_t isum = 0;
    for (int j = 0; j < 16; ++j) {
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) {
        const int e = 16 * j + l, h = e / 128, quarter = (e % 128) / 32, k = e % 32;
        const uint8_t low = ql[64 * h + 32 * (quarter & 1) + k];
        const int nib = quarter >= 2 ? low >> 4 : low & 0x0f;
        const int q = (nib | (((qh[32 * h + k] >> (2 * quarter)) & 3) << 4)) - 32;
        s += q * a->qs[e];
      }
      isum += sc[j] * s;
    }
    sum += (half_at(w + 208) * a->d) * static_cast<float>(isum);
  }
  return sum;
}

using RowDot = float (*)(const uint8_t*, const ActBlockQ8_K*, int64_t);

template <RowDot F>
void tile_ref(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba, int nc,
              float* s, int64_t ls) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  for (int c = 0; c < nc; ++c) {
    const auto* act = reinterpret_cast<const ActBlockQ8_K*>(ab + static_cast<size_t>(c) * ba);
    for (int r = 0; r < nr; ++r) {
      s[c * ls + r] = F(wb + static_cast<size_t>(r) * bw, act, n / k_qk);
    }
  }
}

// tile_rows = 4 keeps a row tile in L1 while the driver walks the column groups over it;
// tile_cols = 4 matches the AVX2 kernels, which decode each weight super-block once per four
// activation columns.
constexpr DotKernel k_scalar[] = {
    {DType::Q2_K, ActType::q8_k, quantize_q8_k_scalar, tile_ref<dot_q2_k_ref>, 4, 4, "scalar"},
    {DType::Q3_K, ActType::q8_k, quantize_q8_k_scalar, tile_ref<dot_q3_k_ref>, 4, 4, "scalar"},
    {DType::Q4_K, ActType::q8_k, quantize_q8_k_scalar, tile_ref<dot_q4_k_ref>, 4, 4, "scalar"},
    {DType::Q5_K, ActType::q8_k, quantize_q8_k_scalar, tile_ref<dot_q5_k_ref>, 4, 4, "scalar"},
    {DType::Q6_K, ActType::q8_k, quantize_q8_k_scalar, tile_ref<dot_q6_k_ref>, 4, 4, "scalar"},
};
constexpr DotKernel k_avx2[] = {
    {DType::Q2_K, ActType::q8_k, quantize_q8_k_avx2, tile_q2_k_avx2, 4, 4, "avx2"},
    {DType::Q3_K, ActType::q8_k, quantize_q8_k_avx2, tile_q3_k_avx2, 4, 4, "avx2"},
    {DType::Q4_K, ActType::q8_k, quantize_q8_k_avx2, tile_q4_k_avx2, 4, 4, "avx2"},
    {DType::Q5_K, ActType::q8_k, quantize_q8_k_avx2, tile_q5_k_avx2, 4, 4, "avx2"},
    {DType::Q6_K, ActType::q8_k, quantize_q8_k_avx2, tile_q6_k_avx2, 4, 4, "avx2"},
};

bool have_avx2() {
  static const bool yes = cpu_has_avx2_fma();
  return yes;
}

}  // namespace
}  // namespace kquant

const DotKernel* kquant_dot_kernel(DType w, bool simd) {
  const DotKernel* table = simd && kquant::have_avx2() ? kquant::k_avx2 : kquant::k_scalar;
  for (int i = 0; i < 5; ++i) {
    if (table[i].wtype == w) return &table[i];
  }
  return nullptr;
}

bool kquant_dequantize_fast(DType t, const void* src, float* dst, int64_t n) {
  if (!kquant::have_avx2()) return false;
  return kquant::dequantize_avx2(t, src, dst, n);
}

}  // namespace slm
