// Matrix multiplication against a weight tensor of any supported dtype: y = x · Wᵀ.
// W has `out` rows of `in` elements (GGUF ne = {in, out}); x is (T, in), y is (T, out).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace slm {

class ThreadPool;

// True if matmul and weight_row_to_f32 accept weights of this dtype.
bool matmul_supports(DType t);

// Converts row r of w (ne[0] elements) to floats. Weight dtype must be supported.
void weight_row_to_f32(const TensorView& w, int64_t r, float* out);

// y (T, out) = x (T, in) · Wᵀ, parallel over output rows when pool is non-null. Each weight
// row is read (and, for non-F32 types, converted) once per call whatever T is.
// Errors: unsupported dtype or a weight that is not 2-D.
Status matmul(const TensorView& w, const float* x, int64_t T, float* y, ThreadPool* pool);

// The scalar reference (double accumulation, one thread): the oracle for tests.
Status matmul_ref(const TensorView& w, const float* x, int64_t T, float* y);

}  // namespace slm
