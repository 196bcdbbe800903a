// Reference (scalar) dequantization of every GGUF tensor type slm reads, and reference
// round-to-nearest quantizers for the simple block types. These are the oracles for SIMD code.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace slm {

// True if dequantize_row handles t: F32, F16, BF16, F64, I8, I16, I32, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
bool can_dequantize(DType t);

// dst[0..n) = the values of n elements stored at src in type t, exactly as the ggml block
// layouts define them (each multiply and add rounded separately, no fused multiply-add).
// Preconditions (checked by the caller, e.g. from a validated TensorView): can_dequantize(t),
// n >= 0 and a multiple of t's block size, src holding n elements. Unsupported types or a bad
// n write nothing.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// Checked form of the above: an error naming the type if unsupported or n is not a multiple
// of the block size.
Status dequantize_row_checked(DType t, const void* src, float* dst, int64_t n);

// Quantizers: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 use the ggml reference formulas
// (amax or min/max scaling, round to nearest); Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K go to
// quantize_row_k (kernels/quantize_k.h: error-minimizing scale search). dst receives
// n / block_size blocks. Errors for other types, n not a multiple of the block size,
// non-finite input, or (K types) values beyond the fp16 block-scale range.
Status quantize_row(DType t, const float* src, void* dst, int64_t n);

}  // namespace slm
