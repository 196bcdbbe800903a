// Quantizers for the K family (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and Q8_K: per 256-element
// super-block, a search for sub-block scales (and mins) that minimize squared error.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace slm {

// True for the types quantize_row_k writes: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
bool is_k_quant(DType t);

// Quantizes x[0..n) into n / 256 super-blocks of type t at dst, choosing for each sub-block
// the scale (and, for Q2_K/Q4_K/Q5_K, the min) with the smallest squared error among a small
// set of candidates refined by least squares; then the 4/6/8-bit scale codes and the fp16
// super-block scales are fitted the same way. Errors: t not a K type, n not a multiple of 256,
// a non-finite element, or values so large the fp16 super-block scale would overflow.
Status quantize_row_k(DType t, const float* x, void* dst, int64_t n);

// The naive baseline the tests compare against: sub-block scale = amax / nmax (mins = the
// sub-block minimum), scale codes by plain rounding, no search. Same layouts and errors.
Status quantize_row_k_naive(DType t, const float* x, void* dst, int64_t n);

}  // namespace slm
