// FP32 matrix multiply (BLAS sgemm semantics, row-major, optional transposes) in the
// Goto/BLIS style, and the prompt-path matmul that multiplies by a weight of any dtype with it.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace slm {

class ThreadPool;

// C (M x N) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C, all row-major.
// op(A) = A (M rows of K, row stride lda >= K) or, if trans_a, Aᵀ where A is K rows of M
// (lda >= M); likewise op(B) = B (K rows of N, ldb >= N) or Bᵀ (B is N rows of K, ldb >= K).
// ldc >= N. beta == 0 means C is not read (it may hold NaN). Threads split C into blocks when
// pool is non-null and the problem is big enough to pay for the hand-off. Sizes <= 0 are a
// no-op apart from the beta scaling of C when K <= 0.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, ThreadPool* pool);

// The same blocked algorithm with scalar packing and micro-kernel: the path CPUs without
// AVX2/FMA take (sgemm picks it itself); exposed so tests cover it on any machine.
void sgemm_portable(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                    float* C, int64_t ldc, ThreadPool* pool);

// Scalar oracle: every C element is one double-precision dot product. One thread.
void sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc);

// Prompt path: y (T x out, row stride out) = x (T x in) · Wᵀ for a 2-D weight w (ne = {in,
// out}) of any dtype matmul_supports (F32, F16, BF16, Q4_0 ... Q6_K). Weight rows are
// converted to F32 once per call and packed into B panels (F16/BF16 widened directly into the
// panel layout, other types through dequantize_row_fast), then multiplied by the sgemm
// micro-kernel. Threads split the weight rows, so each weight byte
// is read and converted by one thread only. On AVX2 CPUs Q8_0 and Q4_0 weights go to the int8
// GEMM instead (kernels/qgemm.h: activations quantized to 8-bit blocks, as the dot kernels do);
// the environment variable SLM_QGEMM=0 keeps them on the FP32 path.
// Errors: unsupported dtype, a weight that is not 2-D, or ne[0] not a multiple of the block size.
Status matmul_gemm(const TensorView& w, const float* x, int64_t T, float* y, ThreadPool* pool);

// ys[i] = x · ws[i]ᵀ for weights sharing the input x (q/k/v, gate/up; any count, any mix of
// dtypes): x is packed once (or, for the int8 GEMM, quantized once) for all of them and one
// thread-pool job covers every weight's output columns, instead of one call and hand-off per
// weight. Each result is what matmul_gemm computes for that weight alone (the same operations
// on each output). Errors: those of matmul_gemm, or weights with different ne[0].
Status matmul_gemm_many(const TensorView* const* ws, float* const* ys, int count, const float* x,
                        int64_t T, ThreadPool* pool);

// This machine's FP32 GEMM speed in GFLOP/s: sgemm on M = N = K = 1024 with pool's threads
// (one thread if pool is null), best of repeated runs lasting at least min_seconds in total.
double measure_sgemm_gflops(ThreadPool* pool, double min_seconds = 0.5);

}  // namespace slm
