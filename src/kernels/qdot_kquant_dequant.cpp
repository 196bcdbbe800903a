// AVX2 dequantizers of Q2_K..Q6_K to F32, bit-identical to dequantize_row (quant.h): the same
// per-sub-block float factors (d * scale, dmin * min) and one rounded multiply, then one subtract.
#include "kernels/qdot_kquant_internal.h"

// A fused multiply-add would round once instead of twice and change the last bit.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

namespace slm::kquant {

namespace {

// y[0..256) = dl[e / Sub] * q[e] (- ml[e / Sub] when HasMin), q the signed quants of a block.
template <int Sub, bool HasMin>
SLM_AVX2 void emit(const int8_t* q, const float* dl, const float* ml, float* y) {
  for (int g = 0; g < 32; ++g) {
    const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8 * g));
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
    const int is = 8 * g / Sub;
    __m256 r = _mm256_mul_ps(_mm256_set1_ps(dl[is]), v);
    if (HasMin) r = _mm256_sub_ps(r, _mm256_set1_ps(ml[is]));
    _mm256_storeu_ps(y + 8 * g, r);
  }
}

SLM_AVX2 void store_quants(const __m256i q[8], int8_t offset, int8_t* out) {
  const __m256i off = _mm256_set1_epi8(offset);
  for (int c = 0; c < 8; ++c) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * c), _mm256_sub_epi8(q[c], off));
  }
}

inline float half_at(const uint8_t* p) { return fp16_to_fp32(load_u16(p)); }

SLM_AVX2 void dequant_q2_k(const uint8_t* b, float* y) {
  __m256i q[8];
  decode_q2_k(b, q);
  alignas(32) int8_t qs[256];
  store_quants(q, 0, qs);
  const float d = half_at(b + 80), dmin = half_at(b + 82);
  float dl[16], ml[16];
  for (int j = 0; j < 16; ++j) {
    dl[j] = d * static_cast<float>(b[j] & 0x0f);
    ml[j] = dmin * static_cast<float>(b[j] >> 4);
  }
  emit<16, true>(qs, dl, ml, y);
}

SLM_AVX2 void dequant_q3_k(const uint8_t* b, float* y) {
  __m256i q[8];
  decode_q3_k(b, q);
  alignas(32) int8_t qs[256];
  store_quants(q, 4, qs);
  int8_t sc[16];
  unpack_scales_q3_k(b + 96, sc);
  const float d = half_at(b + 108);
  float dl[16];
  for (int j = 0; j < 16; ++j) dl[j] = d * static_cast<float>(sc[j]);
  emit<16, false>(qs, dl, nullptr, y);
}

template <bool Five>
SLM_AVX2 void dequant_q45_k(const uint8_t* b, float* y) {
  __m256i q[8];
  if (Five) {
    decode_q5_k(b, q);
  } else {
    decode_q4_k(b, q);
  }
  alignas(32) int8_t qs[256];
  store_quants(q, 0, qs);
  uint8_t sm[16];
  unpack_scales_k4(b + 4, sm);
  const float d = half_at(b), dmin = half_at(b + 2);
  float dl[8], ml[8];
  for (int j = 0; j < 8; ++j) {
    dl[j] = d * static_cast<float>(sm[j]);
    ml[j] = dmin * static_cast<float>(sm[8 + j]);
  }
  emit<32, true>(qs, dl, ml, y);
}

SLM_AVX2 void dequant_q6_k(const uint8_t* b, float* y) {
  __m256i q[8];
  decode_q6_k(b, q);
  alignas(32) int8_t qs[256];
  store_quants(q, 32, qs);
  const float d = half_at(b + 208);
  float dl[16];
  for (int j = 0; j < 16; ++j) dl[j] = d * static_cast<float>(static_cast<int8_t>(b[192 + j]));
  emit<16, false>(qs, dl, nullptr, y);
}

}  // namespace

SLM_AVX2 bool dequantize_avx2(DType t, const void* src, float* dst, int64_t n) {
  void (*fn)(const uint8_t*, float*) = nullptr;
  size_t bytes = 0;
  switch (t) {
    case DType::Q2_K:
      fn = dequant_q2_k, bytes = k_q2_k_bytes;
      break;
    case DType::Q3_K:
      fn = dequant_q3_k, bytes = k_q3_k_bytes;
      break;
    case DType::Q4_K:
      fn = dequant_q45_k<false>, bytes = k_q4_k_bytes;
      break;
    case DType::Q5_K:
      fn = dequant_q45_k<true>, bytes = k_q5_k_bytes;
      break;
    case DType::Q6_K:
      fn = dequant_q6_k, bytes = k_q6_k_bytes;
      break;
    default:
      return false;
  }
  // A bad n is the caller's bug (dequantize_row writes nothing then); do the same.
  if (n < 0 || n % k_qk != 0) return true;
  const auto* b = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n / k_qk; ++i) fn(b + static_cast<size_t>(i) * bytes, dst + i * k_qk);
  return true;
}

}  // namespace slm::kquant
