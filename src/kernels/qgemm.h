// Int8 GEMM for the prompt path: Q8_0 / Q4_0 weight rows repacked into 16-row interleaved
// panels and multiplied with activation rows quantized once per call to 8-bit blocks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"
#include "kernels/qdot.h"

namespace slm {

class ThreadPool;

// True for the weight types qgemm handles: Q8_0 and Q4_0.
bool qgemm_supports(DType t);

// True when this CPU runs the AVX2 kernels. Without them qgemm still works (the scalar
// reference), but the FP32 GEMM is then the faster prompt path.
bool qgemm_has_simd();

// y (T x out, row stride out) = x (T x in) · Wᵀ for a 2-D Q8_0 or Q4_0 weight (ne = {in,
// out}). Each activation row is quantized once per call to ActBlockQ8_0 blocks (the format
// and quantizer of the dot kernels, kernels/qdot.h); then for every output and 32-element
// block the exact int32 sum Σ q_w q_a is converted to float and accumulated as
// acc = fma(d_w * d_a, sum, acc), block after block. Threads split the weight rows, so each
// weight byte is read and repacked by one thread.
// Errors: unsupported dtype, a weight that is not 2-D, ne[0] not a multiple of 32, or rows
// whose byte size does not match the dtype.
Status qgemm(const TensorView& w, const float* x, int64_t T, float* y, ThreadPool* pool);

// qgemm for several weights sharing x (q/k/v, gate/up): x quantized once, one thread-pool job
// over the panels of all of them. Each ys[i] is bit-identical to qgemm on ws[i] alone.
// Errors: those of qgemm, or weights with different ne[0].
Status qgemm_many(const TensorView* const* ws, float* const* ys, int count, const float* x,
                  int64_t T, ThreadPool* pool);

// The same on activations that are already quantized: a holds T rows of ne[0] / 32 blocks,
// with every quant in [-127, 127] (what the quantizer produces; -128 would overflow the sign
// trick of the Q8_0 kernel). simd = false runs the scalar reference, which reads the GGUF
// blocks directly and performs the same integer sums and the same float operations in the same
// order, so the two agree bit for bit. Exposed for tests and benchmarks.
Status qgemm_quantized(const TensorView& w, const ActBlockQ8_0* a, int64_t T, float* y,
                       ThreadPool* pool, bool simd = true);

namespace qgemm_detail {

// Panel layout (AVX2 kernels): 16 weight rows per panel; for each 32-element block, 16 floats
// of row scales and 512 bytes of quants as 8 steps x 2 halves x 8 rows x 4 consecutive
// elements, so one 32-byte load holds 4 elements of 8 rows (rows 0-7 at +0, rows 8-15 at +32
// of each 64-byte step). Q4_0 quants are stored unsigned (0..15), one per byte.
constexpr int64_t k_panel_rows = 16;
constexpr int64_t k_block = 32;
constexpr int64_t k_panel_block_bytes = k_panel_rows * k_block;

// Repacks blocks [b0, b0 + nbk) of nr (1..16) rows starting at w0 (row stride bw bytes) into
// panel quants q (nbk * 512 bytes, 32-byte aligned) and scales d (nbk * 16 floats, 32-byte
// aligned); rows nr..15 are zero. qgemm_avx2.cpp; call only when qgemm_has_simd().
void repack_avx2(DType t, const uint8_t* w0, size_t bw, int nr, int64_t b0, int64_t nbk, int8_t* q,
                 float* d);

// The same from a Q4_0 x8 copy (kernels/repack.h): g0 is the group of the panel's first row,
// the next group group_bytes after it. Lanes of rows past nr within a group hold a copy of the
// group's last row (the stores of tile_avx2 skip them); a missing second group is zero.
void repack_x8_avx2(const uint8_t* g0, size_t group_bytes, int nr, int64_t b0, int64_t nbk,
                    int8_t* q, float* d);

// Weight bytes to request while a panel is multiplied: `bytes` bytes from row0 in each of
// `rows` rows, `stride` bytes apart (the next panel's slice of its rows). Empty: rows = 0.
struct PanelPrefetch {
  const uint8_t* row0 = nullptr;
  size_t stride = 0;
  int64_t rows = 0;
  size_t bytes = 0;
};

// y[t * ldy + r] (+)= Σ over the nbk blocks of the panel, for nt tokens whose activation rows
// start at act + t * ba (already offset to the first block) and, for Q4_0, whose block sums
// times 8 are corr[t * lc + b]. Only rows r < nr are read or written. accumulate = false
// overwrites y. The lines of `next` are requested (into L2) a few per token group, so the
// memory reads of the next repack overlap this panel's arithmetic.
void tile_avx2(DType t, const int8_t* q, const float* d, int64_t nbk, const uint8_t* act, size_t ba,
               const int32_t* corr, int64_t lc, int64_t nt, float* y, int64_t ldy, int nr,
               bool accumulate, const PanelPrefetch& next);

}  // namespace qgemm_detail

}  // namespace slm
