// Private split of the legacy dot-kernel family: the scalar references (qdot_legacy.cpp) and
// the AVX2/FMA/F16C kernels (qdot_legacy_avx2.cpp) share these declarations.
#pragma once

#include <cstdint>

#include "kernels/qdot.h"

namespace slm::legacy {

// Bytes of one 32-element weight block of the legacy quant types.
constexpr int64_t k_block = 32;

// The AVX2 kernel for w, or nullptr if w has none. Only called after cpu_has_avx2_fma().
const DotKernel* avx2_kernel(DType w);

// AVX2 dequantization, bit-exact with dequantize_row; false if t is not handled here.
bool avx2_dequantize(DType t, const void* src, float* dst, int64_t n);

// Activation values are clamped to ±127 before rounding: a no-op for finite input (|x·id| is
// at most 127 up to rounding), but it keeps NaN, infinities and a denormal amax (whose 1/d
// overflows) inside int8 the same way in the scalar and SIMD quantizers. NaN maps to -127, as
// _mm256_max_ps(v, lo) returns lo when v is NaN.
inline float clamp_act(float v) {
  if (!(v >= -127.0f)) v = -127.0f;
  if (v > 127.0f) v = 127.0f;
  return v;
}

}  // namespace slm::legacy
