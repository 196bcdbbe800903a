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

// Converts row r of w (ne[0] elements) to floats (from its x8 copy if it has one, kernels/
// repack.h). Weight dtype must be supported.
void weight_row_to_f32(const TensorView& w, int64_t r, float* out);

// fast: the dot kernels of kernels/qdot.h (quantized weights meet 8-bit activations);
// float_activations: weight rows dequantized to F32 and dotted with the F32 activations, the
// arithmetic a float reference framework does on dequantized weights (slower; for parity).
// fast_invariant: the dot kernels whatever T (never the GEMM), so each output row is computed
// the same way however many tokens share the call: multi-sequence decode batches use it to keep
// every sequence's result independent of its neighbours (serve/engine.h).
enum class MatmulMode { fast, float_activations, fast_invariant };
constexpr int64_t k_gemm_min_tokens = 32;

// y (T, out) = x (T, in) · Wᵀ, parallel over output rows when pool is non-null. Each weight
// row is read once per call whatever T is. fast mode: batches of k_gemm_min_tokens or more go
// to the packed FP32 GEMM (kernels/gemm.h, weights converted once per call); smaller ones to
// the dot-kernel tiles, where every output is computed the same way whatever the thread count
// and T, so a token's result does not depend on the other tokens of a small batch.
// Errors: unsupported dtype or a weight that is not 2-D.
Status matmul(const TensorView& w, const float* x, int64_t T, float* y, ThreadPool* pool,
              MatmulMode mode = MatmulMode::fast);

// True if matmul sends T tokens in this mode to the GEMM, whose per-token results depend on the
// batch (callers keep their other per-token arithmetic batch-independent below that size).
bool matmul_uses_gemm(int64_t T, MatmulMode mode);

// ys[i] (T, ws[i].ne[1]) = x · ws[i]ᵀ for up to four weights sharing the input x (q/k/v,
// gate/up): in the dot-kernel modes one thread-pool job covers all their rows, so small
// matrices do not each pay a hand-off, and x is converted once per activation format. Each
// result equals matmul's bit for bit. Otherwise (GEMM-sized batches, float_activations, one
// thread, weights without a dot kernel) it is matmul on each weight.
Status matmul_many(const TensorView* const* ws, float* const* ys, int count, const float* x,
                   int64_t T, ThreadPool* pool, MatmulMode mode = MatmulMode::fast);

// The same through a given dot kernel (kernels/qdot.h), e.g. the scalar reference one: tests
// compare kernels on whole matrices with it. Errors: kernel/tensor type mismatch.
struct DotKernel;
Status matmul_with(const DotKernel& k, const TensorView& w, const float* x, int64_t T, float* y,
                   ThreadPool* pool);

// The scalar reference (double accumulation, one thread): the oracle for tests.
Status matmul_ref(const TensorView& w, const float* x, int64_t T, float* y);

}  // namespace slm
