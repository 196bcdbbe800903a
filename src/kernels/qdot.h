// Dot-product kernels per weight dtype: activations are converted once per matmul into the
// format the weight type pairs with (F32, or 8-bit blocks for integer arithmetic), then tile
// kernels dot several weight rows with several activation rows. Scalar references are oracles.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace slm {

// Activation formats. Scales are float (not half as in GGUF's Q8 types): these blocks live only
// in memory, and float scales cost no conversion in the kernels. Quantization rounds to nearest
// even, the rounding of _mm256_cvtps_epi32, so scalar and SIMD quantizers agree bit for bit.
enum class ActType { f32, q8_0, q8_1, q8_k };

struct ActBlockQ8_0 {  // 32 values = d * qs[i], d = amax / 127
  float d;
  int8_t qs[32];
};
struct ActBlockQ8_1 {  // as Q8_0, plus s = d * Σ qs (for weight types with an offset m)
  float d;
  float s;
  int8_t qs[32];
};
struct ActBlockQ8_K {  // 256 values = d * qs[i]; bsums[j] = Σ qs[16j .. 16j+15]
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};
static_assert(sizeof(ActBlockQ8_0) == 36 && sizeof(ActBlockQ8_1) == 40 &&
              sizeof(ActBlockQ8_K) == 292);

int64_t act_block_size(ActType t);  // elements per block: 1, 32, 32, 256
size_t act_row_bytes(ActType t, int64_t n);

// s[c * ls + r] = Σ_k w_r[k] · a_c[k] for r < nr, c < nc, where weight row r starts at
// w + r * bw (GGUF block layout of the kernel's weight type) and activation row c at a + c * ba
// (the kernel's ActType). n is a multiple of both block sizes. nr, nc >= 1, any size.
using DotTileFn = void (*)(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba,
                           int nc, float* s, int64_t ls);

struct DotKernel {
  DType wtype;
  ActType atype;
  // Converts n floats into activation blocks (n a multiple of the block size); null for f32,
  // whose activations are used as they are.
  void (*quantize_act)(const float* x, void* a, int64_t n);
  DotTileFn tile;
  int tile_rows;  // the register tile the kernel is fastest at (the driver's preferred split)
  int tile_cols;
  const char* isa;  // "scalar", "avx2"
  // The same tile over weights repacked at load time (TensorView::x8, kernels/repack.h): w is
  // the group holding the first row (a multiple of 8), bw unused. Null where no such layout.
  DotTileFn tile_x8 = nullptr;
};

// The kernel for weight dtype w: simd = true gives the fastest this CPU runs, false the scalar
// reference. nullptr if the type has no dot kernel (matmul then dequantizes rows to F32).
const DotKernel* dot_kernel(DType w, bool simd = true);

// dst[0..n) = the values of n elements of type t, as dequantize_row (quant.h) computes them,
// bit for bit, with SIMD where the CPU and the type allow. Falls back to dequantize_row.
void dequantize_row_fast(DType t, const void* src, float* dst, int64_t n);

// ---- per-family registries (each file owns its types) -----------------------------------------
// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (kernels/qdot_legacy.cpp).
const DotKernel* legacy_dot_kernel(DType w, bool simd);
bool legacy_dequantize_fast(DType t, const void* src, float* dst, int64_t n);
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (kernels/qdot_kquant.cpp).
const DotKernel* kquant_dot_kernel(DType w, bool simd);
bool kquant_dequantize_fast(DType t, const void* src, float* dst, int64_t n);

}  // namespace slm
