// sgemm and matmul_gemm: Goto/BLIS blocking (KC x NC panels of B, MC x KC blocks of A, both
// packed into register-tile order) around a 6x16 AVX2/FMA micro-kernel, plus a scalar twin.
#include "kernels/gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/qdot.h"
#include "kernels/qgemm.h"
#include "kernels/repack.h"
#include "kernels/repack_avx2.h"
#include "kernels/simd.h"

namespace slm {

namespace {

// Register tile: 6 rows of C x 16 columns = 12 ymm accumulators, leaving 4 registers for two
// B vectors and the A broadcasts; per k step 8 loads feed 12 FMAs, within Zen 3's load ports.
constexpr int64_t k_mr = 6;
constexpr int64_t k_nr = 16;
// KC x 16 floats of B (16 KiB) stay in the 32 KiB L1d during a sweep over A's micro-panels;
// the MC x KC block of A (MC * 1 KiB) stays in the 1 MiB L2. KC is a multiple of 256 so that
// every K block of a quantized weight row starts on a block boundary (K-quants hold 256).
constexpr int64_t k_kc = 256;
constexpr int64_t k_mc = 144;
constexpr int64_t k_nc = 4096;
static_assert(k_kc % 256 == 0 && k_mc % k_mr == 0 && k_nc % k_nr == 0);
// 8x8 transposing stores may write up to 2 floats past a 6-wide panel; spare room for that.
constexpr int64_t k_slack = 16;
constexpr int64_t k_nr_pack = k_nr;  // panel width the 16-bit weight packer writes
// Below this many flops (~40 us on one core) a thread hand-off costs more than it saves.
constexpr double k_min_parallel_flops = 4e6;

// ---- per-thread packing buffers ------------------------------------------------------------

struct PackBuffers {
  AlignedBuffer<float> a;    // MC x KC block of op(A), 6-row micro-panels
  AlignedBuffer<float> b;    // KC x NC block of op(B), 16-column micro-panels
  AlignedBuffer<float> tmp;  // 16 weight rows x KC converted to F32 before transposing
};

PackBuffers& thread_buffers() {
  thread_local PackBuffers bufs;
  return bufs;
}

// ---- packing -------------------------------------------------------------------------------
// A micro-panel of width R holds, for each k, R consecutive floats: dst[k * R + r].

// Source rows are contiguous along k (A not transposed, B transposed, weight rows): row r
// starts at src + r * ld. Rows r >= n are zero. Scalar form.
template <int R>
void pack_rows_scalar(const float* src, int64_t ld, int64_t n, int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t r = 0; r < R; ++r) dst[k * R + r] = r < n ? src[r * ld + k] : 0.0f;
  }
}

// AVX2 form: 8 rows x 8 k at a time through an 8x8 transpose. For R = 6 each 8-float store
// spills 2 floats into the next k's slots, which the next store overwrites; the last one
// lands in the following panel (packed after this one) or the buffer's slack.
template <int R>
SLM_AVX2 void pack_rows_avx2(const float* src, int64_t ld, int64_t n, int64_t kc, float* dst) {
  for (int64_t g = 0; g < R; g += 8) {
    const int64_t rows = std::clamp<int64_t>(n - g, 0, 8);
    const float* base = src + g * ld;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 v[8];
      for (int64_t r = 0; r < 8; ++r) {
        v[r] = r < rows ? _mm256_loadu_ps(base + r * ld + k) : _mm256_setzero_ps();
      }
      transpose8x8(v);
      for (int64_t j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (k + j) * R + g, v[j]);
    }
    const int64_t r_end = std::min<int64_t>(R, g + 8);
    for (; k < kc; ++k) {
      for (int64_t r = g; r < r_end; ++r) dst[k * R + r] = r < n ? src[r * ld + k] : 0.0f;
    }
  }
}

// 16-bit weight rows (F16 or BF16) widened to F32 straight into a 16-column panel: 8 rows x
// 8 k per step through the 8x8 transpose, skipping the F32 staging rows a generic dtype needs
// (that round trip through L1 was ~10% of a prompt's time). Rows r >= n are zero.
template <bool kBf16>
SLM_AVX2 inline __m256 widen8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kBf16) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_cvtph_ps(h);
  }
}

template <bool kBf16>
SLM_AVX2 void pack_half16(const uint16_t* src, int64_t ld, int64_t n, int64_t kc, float* dst) {
  for (int64_t g = 0; g < k_nr_pack; g += 8) {
    const int64_t rows = std::clamp<int64_t>(n - g, 0, 8);
    const uint16_t* base = src + g * ld;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 v[8];
      for (int64_t r = 0; r < 8; ++r) {
        v[r] = r < rows ? widen8<kBf16>(base + r * ld + k) : _mm256_setzero_ps();
      }
      transpose8x8(v);
      for (int64_t j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (k + j) * k_nr_pack + g, v[j]);
    }
    for (; k < kc; ++k) {
      for (int64_t r = 0; r < 8; ++r) {
        const int64_t row = g + r;
        float f = 0.0f;
        if (row < n) {
          const uint16_t h = src[row * ld + k];
          f = kBf16 ? bf16_to_fp32(h) : fp16_to_fp32(h);
        }
        dst[k * k_nr_pack + row] = f;
      }
    }
  }
}

// Rows [j0, j0 + n) of a Q4_0 / Q5_0 weight with an x8 copy (kernels/repack.h) at k in
// [k0, k0 + kc) (k0, kc multiples of 32), dequantized straight into a 16-column panel: a group's
// lanes are its eight rows, so each element's eight values come out of one byte shuffle in
// row order. value = (q - offset) * d, as dequantize_row computes it. Rows r >= n are zero.
template <bool kQ5>
SLM_AVX2 void pack_x8(const TensorView& w, int64_t j0, int64_t n, int64_t k0, int64_t kc,
                      float* dst) {
  constexpr size_t bytes = kQ5 ? k_q5_0_x8_block_bytes : k_q4_0_x8_block_bytes;
  const __m256i offset = _mm256_set1_epi8(kQ5 ? 16 : 8);
  // Per 128-bit half: byte j of each of its four lanes into dword j.
  const __m256i by_byte = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                           0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m256i halves = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t g = 0; g < k_nr_pack / 8; ++g) {
    const int64_t rows = std::clamp<int64_t>(n - 8 * g, 0, 8);
    if (rows == 0) {
      for (int64_t k = 0; k < kc; ++k) _mm256_storeu_ps(dst + k * k_nr_pack + 8 * g, _mm256_setzero_ps());
      continue;
    }
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rows)), lane));
    const uint8_t* group = x8_group(w, j0 + 8 * g);
    for (int64_t b = 0; b < kc / 32; ++b) {
      const uint8_t* blk = group + static_cast<size_t>(k0 / 32 + b) * bytes;
      const __m256 d = _mm256_and_ps(
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk))), keep);
      __m256i v[8];
      x8_quants<kQ5>(blk + 16, v, v + 4);  // v[m]: elements 4m.. (m < 4), 16 + 4(m-4).. (m >= 4)
      for (int m = 0; m < 8; ++m) {
        const __m256i t = _mm256_permutevar8x32_epi32(
            _mm256_shuffle_epi8(_mm256_sub_epi8(v[m], offset), by_byte), halves);
        const __m128i q01 = _mm256_castsi256_si128(t), q23 = _mm256_extracti128_si256(t, 1);
        const __m128i q[4] = {q01, _mm_srli_si128(q01, 8), q23, _mm_srli_si128(q23, 8)};
        float* out = dst + (32 * b + (m < 4 ? 4 * m : 16 + 4 * (m - 4))) * k_nr_pack + 8 * g;
        for (int j = 0; j < 4; ++j) {
          const __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q[j]));
          _mm256_storeu_ps(out + j * k_nr_pack, _mm256_mul_ps(x, d));
        }
      }
    }
  }
}

// Source is k-major (A transposed, B not transposed): element (k, c) at src[k * ld + c].
// Columns c >= n are zero. Plain copies, fast enough without intrinsics.
template <int R>
void pack_cols(const float* src, int64_t ld, int64_t n, int64_t kc, float* dst) {
  if (n == R) {
    for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * R, src + k * ld, R * sizeof(float));
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    std::memcpy(dst + k * R, src + k * ld, static_cast<size_t>(n) * sizeof(float));
    std::fill(dst + k * R + n, dst + (k + 1) * R, 0.0f);
  }
}

// ---- micro-kernels ---------------------------------------------------------------------------
// c (6 x 16, row stride ldc) = alpha * Σ_k a[k*6 + i] * b[k*16 + j] + beta * c; beta == 0
// does not read c.

void kernel_scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                   float alpha, float beta) {
  float acc[k_mr][k_nr] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t i = 0; i < k_mr; ++i) {
      const float ai = a[k * k_mr + i];
      for (int64_t j = 0; j < k_nr; ++j) acc[i][j] += ai * b[k * k_nr + j];
    }
  }
  for (int64_t i = 0; i < k_mr; ++i) {
    for (int64_t j = 0; j < k_nr; ++j) {
      const float v = alpha * acc[i][j];
      c[i * ldc + j] = beta == 0.0f ? v : v + beta * c[i * ldc + j];
    }
  }
}

SLM_AVX2 inline void store_row(float* c, __m256 x0, __m256 x1, __m256 va, __m256 vb,
                               bool read_c) {
  x0 = _mm256_mul_ps(x0, va);
  x1 = _mm256_mul_ps(x1, va);
  if (read_c) {
    x0 = _mm256_fmadd_ps(_mm256_loadu_ps(c), vb, x0);
    x1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 8), vb, x1);
  }
  _mm256_storeu_ps(c, x0);
  _mm256_storeu_ps(c + 8, x1);
}

SLM_AVX2 void kernel_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                          float alpha, float beta) {
  // C rows lie a row stride apart, usually out of L1/L2 by now: start fetching them so the
  // update at the end does not stall (beta == 0 still writes them).
  for (int64_t i = 0; i < k_mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + k_nr - 1), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 ai = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(ai, b0, c00);
    c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(ai, b0, c10);
    c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(ai, b0, c20);
    c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(ai, b0, c30);
    c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(ai, b0, c40);
    c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(ai, b0, c50);
    c51 = _mm256_fmadd_ps(ai, b1, c51);
    a += k_mr;
    b += k_nr;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const bool read_c = beta != 0.0f;
  store_row(c + 0 * ldc, c00, c01, va, vb, read_c);
  store_row(c + 1 * ldc, c10, c11, va, vb, read_c);
  store_row(c + 2 * ldc, c20, c21, va, vb, read_c);
  store_row(c + 3 * ldc, c30, c31, va, vb, read_c);
  store_row(c + 4 * ldc, c40, c41, va, vb, read_c);
  store_row(c + 5 * ldc, c50, c51, va, vb, read_c);
}

// The ragged M edge (a prompt of 128 tokens is 21 tiles of 6 rows and one of 2): MR < 6 rows
// of C, computed and stored directly instead of a full 6-row tile into scratch, so the last
// tile costs MR/6 of a full one.
// Named accumulators, not an array: GCC 12 spills an __m256 array to the stack every k step.
template <int MR>
SLM_AVX2 void kernel_avx2_rows(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                               float alpha, float beta) {
  static_assert(MR >= 1 && MR < k_mr);
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00;
  int64_t k = 0;
  if constexpr (MR <= 2) {
    // 2·MR accumulator chains cannot cover the FMA latency (4 cycles, 2 per cycle): odd k go
    // to a second set of accumulators (c2x/c3x, unused at this MR), summed at the end.
    for (; k + 2 <= kc; k += 2) {
      const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
      const __m256 b2 = _mm256_load_ps(b + k_nr), b3 = _mm256_load_ps(b + k_nr + 8);
      __m256 ai = _mm256_broadcast_ss(a), aj = _mm256_broadcast_ss(a + k_mr);
      c00 = _mm256_fmadd_ps(ai, b0, c00);
      c01 = _mm256_fmadd_ps(ai, b1, c01);
      c20 = _mm256_fmadd_ps(aj, b2, c20);
      c21 = _mm256_fmadd_ps(aj, b3, c21);
      if constexpr (MR > 1) {
        ai = _mm256_broadcast_ss(a + 1);
        aj = _mm256_broadcast_ss(a + k_mr + 1);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        c30 = _mm256_fmadd_ps(aj, b2, c30);
        c31 = _mm256_fmadd_ps(aj, b3, c31);
      }
      a += 2 * k_mr;
      b += 2 * k_nr;
    }
    c00 = _mm256_add_ps(c00, c20);
    c01 = _mm256_add_ps(c01, c21);
    c10 = _mm256_add_ps(c10, c30);
    c11 = _mm256_add_ps(c11, c31);
    c20 = c21 = c30 = c31 = _mm256_setzero_ps();
  }
  for (; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 ai = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(ai, b0, c00);
    c01 = _mm256_fmadd_ps(ai, b1, c01);
    if constexpr (MR > 1) {
      ai = _mm256_broadcast_ss(a + 1);
      c10 = _mm256_fmadd_ps(ai, b0, c10);
      c11 = _mm256_fmadd_ps(ai, b1, c11);
    }
    if constexpr (MR > 2) {
      ai = _mm256_broadcast_ss(a + 2);
      c20 = _mm256_fmadd_ps(ai, b0, c20);
      c21 = _mm256_fmadd_ps(ai, b1, c21);
    }
    if constexpr (MR > 3) {
      ai = _mm256_broadcast_ss(a + 3);
      c30 = _mm256_fmadd_ps(ai, b0, c30);
      c31 = _mm256_fmadd_ps(ai, b1, c31);
    }
    if constexpr (MR > 4) {
      ai = _mm256_broadcast_ss(a + 4);
      c40 = _mm256_fmadd_ps(ai, b0, c40);
      c41 = _mm256_fmadd_ps(ai, b1, c41);
    }
    a += k_mr;  // the panel is 6 wide whatever MR is
    b += k_nr;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const bool read_c = beta != 0.0f;
  store_row(c, c00, c01, va, vb, read_c);
  if constexpr (MR > 1) store_row(c + ldc, c10, c11, va, vb, read_c);
  if constexpr (MR > 2) store_row(c + 2 * ldc, c20, c21, va, vb, read_c);
  if constexpr (MR > 3) store_row(c + 3 * ldc, c30, c31, va, vb, read_c);
  if constexpr (MR > 4) store_row(c + 4 * ldc, c40, c41, va, vb, read_c);
}

using KernelFn = void (*)(int64_t, const float*, const float*, float*, int64_t, float, float);

// One instruction set's packing routines and micro-kernel.
struct Isa {
  void (*pack_rows6)(const float*, int64_t, int64_t, int64_t, float*);
  void (*pack_rows16)(const float*, int64_t, int64_t, int64_t, float*);
  void (*kernel)(int64_t, const float*, const float*, float*, int64_t, float, float);
  // Direct F16 / BF16 weight-row packers, or null to go through dequantize_row_fast.
  void (*pack_f16)(const uint16_t*, int64_t, int64_t, int64_t, float*);
  void (*pack_bf16)(const uint16_t*, int64_t, int64_t, int64_t, float*);
  // Packers of Q4_0 / Q5_0 weights' x8 copies, or null to read the file's rows.
  void (*pack_x8_q4)(const TensorView&, int64_t, int64_t, int64_t, int64_t, float*);
  void (*pack_x8_q5)(const TensorView&, int64_t, int64_t, int64_t, int64_t, float*);
  // kernel_rows[mr] computes only the first mr (1..5) rows of a full-width tile; null: the
  // edge goes through a full tile into scratch.
  KernelFn kernel_rows[k_mr];
};

constexpr Isa k_isa_scalar = {pack_rows_scalar<6>, pack_rows_scalar<16>, kernel_scalar, nullptr,
                              nullptr, nullptr, nullptr, {}};
constexpr Isa k_isa_avx2 = {pack_rows_avx2<6>,
                            pack_rows_avx2<16>,
                            kernel_avx2,
                            pack_half16<false>,
                            pack_half16<true>,
                            pack_x8<false>,
                            pack_x8<true>,
                            {nullptr, kernel_avx2_rows<1>, kernel_avx2_rows<2>,
                             kernel_avx2_rows<3>, kernel_avx2_rows<4>, kernel_avx2_rows<5>}};

const Isa& best_isa() {
  static const bool avx2 = cpu_has_avx2_fma();
  return avx2 ? k_isa_avx2 : k_isa_scalar;
}

// ---- operand sources -------------------------------------------------------------------------

// op(A) as a float matrix: packs rows [i0, i0+mr) x k in [k0, k0+kc) into a 6-row panel.
struct ASource {
  const float* a;
  int64_t lda;
  bool trans;

  void pack(const Isa& isa, int64_t i0, int64_t mr, int64_t k0, int64_t kc, float* dst) const {
    if (trans) {
      pack_cols<k_mr>(a + k0 * lda + i0, lda, mr, kc, dst);
    } else {
      isa.pack_rows6(a + i0 * lda + k0, lda, mr, kc, dst);
    }
  }
};

// op(B): a float matrix, or the transpose of a weight tensor of any dtype (B(k, j) = W[j][k]).
// Packs columns [j0, j0+nr) x k in [k0, k0+kc) into a 16-column panel.
struct BSource {
  const float* b = nullptr;  // float matrix (also F32 weights that are float-aligned)
  int64_t ldb = 0;
  bool trans = false;
  const TensorView* w = nullptr;  // converted weight rows when b is null

  void pack(const Isa& isa, int64_t j0, int64_t nr, int64_t k0, int64_t kc, float* dst) const {
    if (b && !trans) {
      pack_cols<k_nr>(b + k0 * ldb + j0, ldb, nr, kc, dst);
    } else if (b) {
      isa.pack_rows16(b + j0 * ldb + k0, ldb, nr, kc, dst);
    } else {
      const auto half = w->dtype == DType::F16    ? isa.pack_f16
                        : w->dtype == DType::BF16 ? isa.pack_bf16
                                                  : nullptr;
      // 16-bit rows are 2-byte aligned in GGUF; anything else takes the generic path.
      if (half && reinterpret_cast<uintptr_t>(w->data) % 2 == 0 && w->row_bytes() % 2 == 0) {
        const auto* base = static_cast<const uint16_t*>(w->data);
        const int64_t ld = static_cast<int64_t>(w->row_bytes() / 2);
        half(base + j0 * ld + k0, ld, nr, kc, dst);
        return;
      }
      // The x8 copy if there is one: the file's pages of it may have been dropped.
      const auto x8 = !w->x8                      ? nullptr
                      : w->dtype == DType::Q4_0 ? isa.pack_x8_q4
                      : w->dtype == DType::Q5_0 ? isa.pack_x8_q5
                                                : nullptr;
      if (x8) {
        x8(*w, j0, nr, k0, kc, dst);
        return;
      }
      // k0 is a multiple of KC, hence of the block size: the slice starts on a block.
      const DTypeTraits* tr = dtype_traits(w->dtype);
      const uint64_t offset = static_cast<uint64_t>(k0 / tr->block_size) *
                              static_cast<uint64_t>(tr->type_size);
      float* tmp = thread_buffers().tmp.get(static_cast<size_t>(k_nr * k_kc));
      for (int64_t r = 0; r < nr; ++r) {
        dequantize_row_fast(w->dtype, w->row(j0 + r) + offset, tmp + r * kc, kc);
      }
      isa.pack_rows16(tmp, kc, nr, kc, dst);
    }
  }
};

// Weight lines a B panel will read: columns [j0, j0 + nr) of op(B) = rows of w, at k in
// [k0, k0 + kc). request() issues the next n of them (into L2), so the loads of the next
// panel's packing overlap the current panel's micro-kernel calls: the packer otherwise waited
// on memory (80% of its samples sat on the weight loads; it was 10% of an F16 prompt), and
// asked for all at once the requests overflow the miss queue and are dropped.
class WeightPrefetch {
 public:
  WeightPrefetch() = default;
  WeightPrefetch(const TensorView& w, int64_t j0, int64_t nr, int64_t k0, int64_t kc) {
    const DTypeTraits* tr = dtype_traits(w.dtype);
    const uint64_t bs = static_cast<uint64_t>(tr->block_size);
    const uint64_t ts = static_cast<uint64_t>(tr->type_size);
    const uint64_t begin = static_cast<uint64_t>(k0) / bs * ts;
    const uint64_t end = (static_cast<uint64_t>(k0 + kc) + bs - 1) / bs * ts;
    if (w.x8) {  // the panel's one or two groups of the x8 copy (kernels/repack.h)
      const uint64_t xb = x8_block_bytes(w.dtype);
      row_ = reinterpret_cast<uintptr_t>(x8_group(w, j0)) + begin / ts * xb;
      stride_ = static_cast<uint64_t>(w.ne[0] / 32) * xb;
      lines_per_row_ = static_cast<int64_t>(((end - begin) / ts * xb + 63) / 64);
      lines_ = (nr + 7) / 8 * lines_per_row_;
      return;
    }
    row_ = reinterpret_cast<uintptr_t>(w.row(j0)) + begin;
    stride_ = w.row_bytes();
    lines_per_row_ = static_cast<int64_t>((end - begin + 63) / 64);
    lines_ = nr * lines_per_row_;
  }
  int64_t lines() const { return lines_; }
  // A cursor (row start, line in row) instead of a division per line: this runs between
  // micro-kernel calls.
  void request(int64_t n) {
    for (; n > 0 && next_ < lines_; --n, ++next_) {
      _mm_prefetch(reinterpret_cast<const char*>(row_ + 64 * static_cast<uintptr_t>(col_)),
                   _MM_HINT_T1);
      if (++col_ == lines_per_row_) {
        col_ = 0;
        row_ += stride_;
      }
    }
  }

 private:
  uintptr_t row_ = 0;
  uint64_t stride_ = 0;
  int64_t lines_per_row_ = 1, lines_ = 0, next_ = 0, col_ = 0;
};

// K block length: KC, or for operands that can start a block anywhere (float matrices, 16-bit
// weights) K split into equal blocks of at most KC, so K = 576 runs 3 x 192 rather than
// 256 + 256 + 64 (a short block pays the C update and the loop overhead for little work).
int64_t kc_for(int64_t K, bool any_start) {
  if (!any_start || K <= k_kc) return k_kc;
  const int64_t blocks = (K + k_kc - 1) / k_kc;
  return std::min(k_kc, ((K + blocks - 1) / blocks + 7) / 8 * 8);
}

struct Problem {
  int64_t M, N, K;
  int64_t kc_step;  // K block length (kc_for)
  float alpha, beta;
  ASource a;
  BSource b;
  float* c;
  int64_t ldc;
  const Isa* isa;
  // op(A) packed once for every job (pack_shared_a), or null: each run_block packs its own.
  const float* a_shared = nullptr;
};

// Shared packed A: K blocks of kc_step; in each, ceil(M / 6) panels of kc x 6 floats with
// k_panel_gap spare floats after each (the AVX2 packer's last store spills 2 floats past a
// panel, and neighbouring panels are packed by different threads).
constexpr int64_t k_panel_gap = 16;

int64_t shared_a_floats(int64_t M, int64_t K, int64_t kc_step) {
  const int64_t panels = (M + k_mr - 1) / k_mr, blocks = (K + kc_step - 1) / kc_step;
  return panels * (K * k_mr + blocks * k_panel_gap);
}

// Offset of panel i of the K block starting at pc (length kc) in the shared layout.
int64_t shared_a_offset(const Problem& p, int64_t pc, int64_t kc, int64_t i) {
  const int64_t panels = (p.M + k_mr - 1) / k_mr;
  return panels * (pc * k_mr + pc / p.kc_step * k_panel_gap) + i * (kc * k_mr + k_panel_gap);
}

// ---- the blocked loops -----------------------------------------------------------------------

// C[m0:m1, n0:n1] of the problem, on the calling thread. B panels are packed the first time
// the MC loop reaches them (so they are used while still in L1) and kept for later MC blocks.
void run_block(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 <= m0 || n1 <= n0) return;
  const Isa& isa = *p.isa;
  PackBuffers& bufs = thread_buffers();
  // Even MC blocks (1024 rows: 8 x 128, not 7 x 144 + 16) keep every block worth a B sweep.
  const int64_t m_blocks = (m1 - m0 + k_mc - 1) / k_mc;
  const int64_t mc_step = ((m1 - m0 + m_blocks - 1) / m_blocks + k_mr - 1) / k_mr * k_mr;
  // With one MC block each B panel is used once: pack every panel into the same 16 KiB, which
  // stays in L1, instead of streaming a KC x NC block out to L2/L3 and never reading it back.
  const bool keep_b = m_blocks > 1;
  const int64_t nc_max = std::min(k_nc, (n1 - n0 + k_nr - 1) / k_nr * k_nr);
  const int64_t kc_step = p.kc_step;
  float* ap = bufs.a.get(static_cast<size_t>(mc_step * kc_step + k_slack));
  float* bp = bufs.b.get(static_cast<size_t>(kc_step * (keep_b ? nc_max : k_nr) + k_slack));
  alignas(32) float edge[k_mr * k_nr];

  for (int64_t jc = n0; jc < n1; jc += k_nc) {
    const int64_t nc = std::min(k_nc, n1 - jc);
    for (int64_t pc = 0; pc < p.K; pc += kc_step) {
      const int64_t kc = std::min(kc_step, p.K - pc);
      // The first K block applies the caller's beta; later ones accumulate onto it.
      const float beta = pc == 0 ? p.beta : 1.0f;
      for (int64_t ic = m0; ic < m1; ic += mc_step) {
        const int64_t mc = std::min(mc_step, m1 - ic);
        // A micro-panel for rows ic + ir is at a_blk + (ir / 6) * a_stride.
        const float* a_blk = ap;
        int64_t a_stride = kc * k_mr;
        if (p.a_shared) {
          a_blk = p.a_shared + shared_a_offset(p, pc, kc, ic / k_mr);
          a_stride += k_panel_gap;
        } else {
          for (int64_t ir = 0; ir < mc; ir += k_mr) {
            p.a.pack(isa, ic + ir, std::min(k_mr, mc - ir), pc, kc, ap + ir * kc);
          }
        }
        for (int64_t jr = 0; jr < nc; jr += k_nr) {
          const int64_t nr = std::min(k_nr, nc - jr);
          float* bpanel = keep_b ? bp + jr * kc : bp;
          WeightPrefetch next;
          if (ic == m0) {
            p.b.pack(isa, jc + jr, nr, pc, kc, bpanel);
            // The next panel packed: the next 16 columns, else the first of the next K block.
            if (p.b.w && jr + k_nr < nc) {
              next = WeightPrefetch(*p.b.w, jc + jr + k_nr, std::min(k_nr, nc - jr - k_nr), pc, kc);
            } else if (p.b.w && pc + kc_step < p.K) {
              next = WeightPrefetch(*p.b.w, jc, std::min(k_nr, nc), pc + kc_step,
                                    std::min(kc_step, p.K - pc - kc_step));
            }
          }
          const int64_t calls = (mc + k_mr - 1) / k_mr;
          const int64_t per_call = (next.lines() + calls - 1) / calls;
          for (int64_t ir = 0; ir < mc; ir += k_mr) {
            next.request(per_call);
            const int64_t mr = std::min(k_mr, mc - ir);
            const float* a = a_blk + ir / k_mr * a_stride;
            float* c = p.c + (ic + ir) * p.ldc + jc + jr;
            if (mr == k_mr && nr == k_nr) {
              isa.kernel(kc, a, bpanel, c, p.ldc, p.alpha, beta);
              continue;
            }
            if (nr == k_nr && isa.kernel_rows[mr]) {
              isa.kernel_rows[mr](kc, a, bpanel, c, p.ldc, p.alpha, beta);
              continue;
            }
            // Ragged edge: full tile into a scratch tile, then the valid part into C.
            isa.kernel(kc, a, bpanel, edge, k_nr, p.alpha, 0.0f);
            for (int64_t i = 0; i < mr; ++i) {
              for (int64_t j = 0; j < nr; ++j) {
                float& dst = c[i * p.ldc + j];
                dst = beta == 0.0f ? edge[i * k_nr + j] : edge[i * k_nr + j] + beta * dst;
              }
            }
          }
        }
      }
    }
  }
}

// Splits C into jobs for the pool: along N (each job packs all of A, its own B columns) or
// along M (each job packs all of B). Two jobs per thread let a thread that was delayed by
// another process hand work to the one that was not.
void run_problem(const Problem& p, ThreadPool* pool, bool split_n_only) {
  const int nt = pool ? pool->n_threads() : 1;
  const double flops = 2.0 * static_cast<double>(p.M) * static_cast<double>(p.N) *
                       static_cast<double>(p.K);
  if (nt <= 1 || flops < k_min_parallel_flops) {
    run_block(p, 0, p.M, 0, p.N);
    return;
  }
  const bool along_n = split_n_only || p.N >= p.M;
  const int64_t extent = along_n ? p.N : p.M, unit = along_n ? k_nr : k_mr;
  const int64_t units = (extent + unit - 1) / unit;
  const int64_t want = std::min<int64_t>(units, 2 * static_cast<int64_t>(nt));
  const int64_t per = (units + want - 1) / want * unit;
  const int64_t jobs = (extent + per - 1) / per;
  pool->parallel_for(
      jobs,
      [&](int64_t jb, int64_t je) {
        for (int64_t j = jb; j < je; ++j) {
          const int64_t lo = j * per, hi = std::min(extent, lo + per);
          if (along_n) {
            run_block(p, 0, p.M, lo, hi);
          } else {
            run_block(p, lo, hi, 0, p.N);
          }
        }
      },
      1);
}

// Several problems with the same op(A) (weights sharing the input x): A is packed once, by
// all threads, into the shared layout; then one pool job covers the columns of every problem
// in 16-column units, so q/k/v (or gate/up) pay one hand-off and small matrices share jobs
// with big ones.
void run_many(Problem* ps, int count, ThreadPool* pool) {
  const int nt = pool ? pool->n_threads() : 1;
  double flops = 0;
  for (int i = 0; i < count; ++i) {
    flops += 2.0 * static_cast<double>(ps[i].M) * static_cast<double>(ps[i].N) *
             static_cast<double>(ps[i].K);
  }
  const Problem& p0 = ps[0];
  thread_local AlignedBuffer<float> shared_buf;
  float* shared = nt > 1 && flops >= k_min_parallel_flops
                      ? shared_buf.get(static_cast<size_t>(
                            shared_a_floats(p0.M, p0.K, p0.kc_step) + k_slack))
                      : nullptr;
  if (!shared) {  // one thread, a small problem, or no memory for the shared copy
    for (int i = 0; i < count; ++i) run_problem(ps[i], pool, true);
    return;
  }
  const int64_t panels = (p0.M + k_mr - 1) / k_mr, blocks = (p0.K + p0.kc_step - 1) / p0.kc_step;
  for (int i = 0; i < count; ++i) ps[i].a_shared = shared;
  pool->parallel_for(
      panels * blocks,
      [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t pc = t / panels * p0.kc_step, i = t % panels;
          const int64_t kc = std::min(p0.kc_step, p0.K - pc);
          p0.a.pack(*p0.isa, i * k_mr, std::min(k_mr, p0.M - i * k_mr), pc, kc,
                    shared + shared_a_offset(p0, pc, kc, i));
        }
      },
      4);
  constexpr int k_max = 8;
  int64_t first_unit[k_max + 1] = {0};
  for (int i = 0; i < count; ++i) first_unit[i + 1] = first_unit[i] + (ps[i].N + k_nr - 1) / k_nr;
  // Claims of 16-column units, guided (long first, one unit last): with A shared, a claim's
  // only set-up is its first B panel, and a thread ends at most one unit after the other.
  pool->parallel_for(
      first_unit[count],
      [&](int64_t ub, int64_t ue) {
        for (int i = 0; i < count; ++i) {
          const int64_t b = std::max(ub, first_unit[i]), e = std::min(ue, first_unit[i + 1]);
          if (b < e) {
            run_block(ps[i], 0, ps[i].M, (b - first_unit[i]) * k_nr,
                      std::min(ps[i].N, (e - first_unit[i]) * k_nr));
          }
        }
      },
      1);
}

// C *= beta (C = 0 when beta == 0, whatever C held): the whole result when K or alpha is 0.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* row = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
  }
}

void sgemm_with(const Isa& isa, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                float beta, float* C, int64_t ldc, ThreadPool* pool) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  Problem p{M, N, K, kc_for(K, true), alpha, beta, ASource{A, lda, trans_a}, BSource{}, C, ldc,
            &isa};
  p.b.b = B;
  p.b.ldb = ldb;
  p.b.trans = trans_b;
  run_problem(p, pool, false);
}

// Q8_0 / Q4_0 weights take the int8 GEMM (kernels/qgemm.h) on AVX2 CPUs: 1.3-2x the FP32
// path's multiply-adds per second at prompt shapes (bench/gemm_bench.cpp). SLM_QGEMM=0 keeps
// them on the FP32 path, for comparisons.
bool use_qgemm(DType t) {
  static const bool enabled = [] {
    const char* v = std::getenv("SLM_QGEMM");
    return !(v && *v == '0') && qgemm_has_simd();
  }();
  return enabled && qgemm_supports(t);
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, ThreadPool* pool) {
  sgemm_with(best_isa(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool);
}

void sgemm_portable(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                    float* C, int64_t ldc, ThreadPool* pool) {
  sgemm_with(k_isa_scalar, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
             pool);
}

void sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      const double prev = beta == 0.0f ? 0.0 : static_cast<double>(beta) * C[i * ldc + j];
      C[i * ldc + j] = static_cast<float>(static_cast<double>(alpha) * acc + prev);
    }
  }
}

namespace {

Status check_gemm_weight(const TensorView& w) {
  if (!matmul_supports(w.dtype)) {
    return error("matmul_gemm: tensor '%s' has unsupported dtype %s", w.name.c_str(),
                 dtype_name(w.dtype));
  }
  if (w.ne[2] != 1 || w.ne[3] != 1) {
    return error("matmul_gemm: tensor '%s' is not 2-D (%s)", w.name.c_str(),
                 w.shape_string().c_str());
  }
  const int64_t in = w.ne[0], out = w.ne[1];
  uint64_t row_bytes = 0;
  if (in < 0 || out < 0 || !dtype_row_bytes(w.dtype, in, &row_bytes) ||
      (out > 0 && w.row_bytes() != row_bytes)) {
    return error("matmul_gemm: tensor '%s' (%s, %s) has rows that are not whole %s blocks",
                 w.name.c_str(), dtype_name(w.dtype), w.shape_string().c_str(),
                 dtype_name(w.dtype));
  }
  return Status();
}

// The FP32-path problem y = x · wᵀ (w checked, T, in, out > 0).
Problem weight_problem(const TensorView& w, const float* x, int64_t T, float* y) {
  const int64_t in = w.ne[0], out = w.ne[1];
  const bool any_start = w.dtype == DType::F32 || w.dtype == DType::F16 || w.dtype == DType::BF16;
  Problem p{T, out, in, kc_for(in, any_start), 1.0f, 0.0f, ASource{x, in, false}, BSource{}, y,
            out, &best_isa()};
  // F32 rows are read in place when float-aligned (safetensors data need not be).
  if (w.dtype == DType::F32 && reinterpret_cast<uintptr_t>(w.data) % alignof(float) == 0) {
    p.b.b = static_cast<const float*>(w.data);
    p.b.ldb = in;
    p.b.trans = true;
  } else {
    p.b.w = &w;
  }
  return p;
}

}  // namespace

Status matmul_gemm(const TensorView& w, const float* x, int64_t T, float* y, ThreadPool* pool) {
  const TensorView* ws[] = {&w};
  float* ys[] = {y};
  return matmul_gemm_many(ws, ys, 1, x, T, pool);
}

Status matmul_gemm_many(const TensorView* const* ws, float* const* ys, int count, const float* x,
                        int64_t T, ThreadPool* pool) {
  for (int i = 0; i < count; ++i) {
    SLM_TRY(check_gemm_weight(*ws[i]));
    if (ws[i]->ne[0] != ws[0]->ne[0]) {
      return error("matmul_gemm_many: tensor '%s' has rows of %lld, '%s' of %lld (they share x)",
                   ws[i]->name.c_str(), (long long)ws[i]->ne[0], ws[0]->name.c_str(),
                   (long long)ws[0]->ne[0]);
    }
  }
  const int64_t in = count > 0 ? ws[0]->ne[0] : 0;
  if (T <= 0) return Status();
  // Integer-GEMM weights together, the rest through the FP32 path sharing one packed x.
  constexpr int k_max = 8;
  const TensorView* qw[k_max];
  float* qy[k_max];
  Problem ps[k_max];
  for (int i0 = 0; i0 < count; i0 += k_max) {
    int nq = 0, nf = 0;
    for (int i = i0; i < std::min(count, i0 + k_max); ++i) {
      const TensorView& w = *ws[i];
      if (w.ne[1] == 0) continue;
      if (in == 0) {
        std::fill(ys[i], ys[i] + T * w.ne[1], 0.0f);
      } else if (use_qgemm(w.dtype)) {
        qw[nq] = &w;
        qy[nq++] = ys[i];
      } else {
        ps[nf++] = weight_problem(w, x, T, ys[i]);
      }
    }
    if (nq > 0) SLM_TRY(qgemm_many(qw, qy, nq, x, T, pool));
    if (nf > 0) run_many(ps, nf, pool);
  }
  return Status();
}

double measure_sgemm_gflops(ThreadPool* pool, double min_seconds) {
  constexpr int64_t n = 1024;
  std::vector<float> a(n * n), b(n * n), c(n * n);
  uint32_t s = 12345;
  for (auto* v : {&a, &b}) {
    for (float& f : *v) {
      s = s * 1664525u + 1013904223u;  // any values in [-1, 1) will do
      f = static_cast<float>(s >> 8) / 8388608.0f - 1.0f;
    }
  }
  using Clock = std::chrono::steady_clock;
  double best = 1e30, total = 0.0;
  sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n, pool);
  for (int run = 0; run < 3 || total < min_seconds; ++run) {
    const auto t0 = Clock::now();
    sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n, pool);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, dt);
    total += dt;
  }
  return 2.0 * static_cast<double>(n) * n * n / best * 1e-9;
}

}  // namespace slm
