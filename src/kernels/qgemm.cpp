// Int8 GEMM driver (kernels/qgemm.h): argument checks, activation quantization once per call,
// the blocked loops that hand 16-row weight panels to the AVX2 kernels, and the scalar reference.
#include "kernels/qgemm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/aligned_buffer.h"
#include "core/thread_pool.h"
#include "kernels/repack.h"
#include "kernels/simd.h"

namespace slm {

namespace {

using qgemm_detail::k_block;
using qgemm_detail::k_panel_block_bytes;
using qgemm_detail::k_panel_rows;

// K is cut into chunks of this many blocks (1024 elements): a panel's chunk (16 KiB of quants)
// stays in L1 while every token passes over it, and the activations of a chunk (T x 1152 bytes,
// 144 KiB at T = 128) stay in L2 while the panels of a row block take their turn.
constexpr int64_t k_chunk_blocks = 32;
// Rows per row block: its partial outputs (T x 64 floats, 32 KiB at T = 128) are revisited once
// per K chunk, so they should stay in L2 beside the activation chunk.
constexpr int64_t k_block_rows = 64;
static_assert(k_block_rows % k_panel_rows == 0);

Status check_weight(const TensorView& w) {
  if (!qgemm_supports(w.dtype)) {
    return error("qgemm: tensor '%s' has dtype %s (Q8_0 or Q4_0 expected)", w.name.c_str(),
                 dtype_name(w.dtype));
  }
  if (w.ne[2] != 1 || w.ne[3] != 1) {
    return error("qgemm: tensor '%s' is not 2-D (%s)", w.name.c_str(), w.shape_string().c_str());
  }
  const int64_t in = w.ne[0], out = w.ne[1];
  uint64_t row_bytes = 0;
  if (in < 0 || out < 0 || in % k_block != 0 || !dtype_row_bytes(w.dtype, in, &row_bytes) ||
      (out > 0 && w.row_bytes() != row_bytes)) {
    return error("qgemm: tensor '%s' (%s, %s) has rows that are not whole %s blocks",
                 w.name.c_str(), dtype_name(w.dtype), w.shape_string().c_str(),
                 dtype_name(w.dtype));
  }
  return Status();
}

size_t block_bytes(DType t) {
  return t == DType::Q8_0 ? 34 : 18;
}

// ---- scalar reference ------------------------------------------------------------------------

// The 32 signed quants of one weight block (Q4_0: nibble - 8) and its scale.
float unpack_block(DType t, const uint8_t* blk, int q[32]) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  if (t == DType::Q8_0) {
    for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(blk[2 + j]);
  } else {
    for (int j = 0; j < 16; ++j) {
      q[j] = (blk[2 + j] & 0x0f) - 8;
      q[j + 16] = (blk[2 + j] >> 4) - 8;
    }
  }
  return fp16_to_fp32(h);
}

// Outputs of rows [r0, r1): per block the exact integer sum, then acc = fma(d_w * d_a, sum,
// acc), the operations of the AVX2 kernel in its order.
void reference_rows(const TensorView& w, const ActBlockQ8_0* a, int64_t T, float* y, int64_t r0,
                    int64_t r1) {
  const int64_t nb = w.ne[0] / k_block, out = w.ne[1];
  const size_t bb = block_bytes(w.dtype);
  int q[32];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row(r);
    for (int64_t t = 0; t < T; ++t) {
      const ActBlockQ8_0* at = a + t * nb;
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const float dw = unpack_block(w.dtype, row + static_cast<size_t>(b) * bb, q);
        int32_t sum = 0;
        for (int j = 0; j < 32; ++j) sum += q[j] * at[b].qs[j];
        acc = std::fma(dw * at[b].d, static_cast<float>(sum), acc);
      }
      y[t * out + r] = acc;
    }
  }
}

// ---- the AVX2 path -----------------------------------------------------------------------------

// 8 * Σ q_a of every activation block: the correction that turns Q4_0's unsigned nibbles
// (0..15) back into q - 8.
void block_sums(const ActBlockQ8_0* a, int64_t n, int32_t* corr) {
  for (int64_t b = 0; b < n; ++b) {
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += a[b].qs[j];
    corr[b] = 8 * s;
  }
}

// The prefetch plan for blocks [kb, kb + nbk) of rows [r, r + nr).
qgemm_detail::PanelPrefetch panel_lines(const TensorView& w, int64_t r, int64_t nr, int64_t kb,
                                        int64_t nbk) {
  qgemm_detail::PanelPrefetch pf;
  if (w.x8) {  // the panel's one or two groups
    pf.row0 = x8_group(w, r) + static_cast<size_t>(kb) * k_q4_0_x8_block_bytes;
    pf.stride = static_cast<size_t>(w.ne[0] / k_block) * k_q4_0_x8_block_bytes;
    pf.rows = (nr + 7) / 8;
    pf.bytes = static_cast<size_t>(nbk) * k_q4_0_x8_block_bytes;
    return pf;
  }
  const size_t bb = block_bytes(w.dtype);
  pf.row0 = w.row(r) + static_cast<size_t>(kb) * bb;
  pf.stride = static_cast<size_t>(w.row_bytes());
  pf.rows = nr;
  pf.bytes = static_cast<size_t>(nbk) * bb;
  return pf;
}

// Rows [p0, p1) x 16 ∩ [0, out) of y (whole panels), on the calling thread. corr is null for
// Q8_0, which needs no correction.
void run_panels(const TensorView& w, const uint8_t* act, const int32_t* corr, int64_t T, float* y,
                int64_t p0, int64_t p1) {
  const int64_t nb = w.ne[0] / k_block, out = w.ne[1];
  const size_t ba = static_cast<size_t>(nb) * sizeof(ActBlockQ8_0);
  const size_t bw = static_cast<size_t>(w.row_bytes());
  const int64_t lc = corr ? nb : 0;
  thread_local AlignedBuffer<uint8_t> panel_buf;
  const int64_t chunk = std::min(nb, k_chunk_blocks);
  uint8_t* buf = panel_buf.get(static_cast<size_t>(chunk) *
                               (k_panel_block_bytes + k_panel_rows * sizeof(float)));
  int8_t* pq = reinterpret_cast<int8_t*>(buf);
  float* pd = reinterpret_cast<float*>(buf + static_cast<size_t>(chunk) * k_panel_block_bytes);
  const int64_t row_end = std::min(out, p1 * k_panel_rows);
  for (int64_t rb = p0 * k_panel_rows; rb < row_end; rb += k_block_rows) {
    const int64_t rb_end = std::min(row_end, rb + k_block_rows);
    for (int64_t kb = 0; kb < nb; kb += k_chunk_blocks) {
      const int64_t nbk = std::min(k_chunk_blocks, nb - kb);
      for (int64_t r = rb; r < rb_end; r += k_panel_rows) {
        const int nr = static_cast<int>(std::min(k_panel_rows, rb_end - r));
        if (w.x8) {
          const size_t group_bytes = static_cast<size_t>(nb) * k_q4_0_x8_block_bytes;
          qgemm_detail::repack_x8_avx2(x8_group(w, r), group_bytes, nr, kb, nbk, pq, pd);
        } else {
          qgemm_detail::repack_avx2(w.dtype, w.row(r), bw, nr, kb, nbk, pq, pd);
        }
        // The panel after this one in loop order: the next 16 rows, else the next K chunk of
        // this row block, else the next row block. Its weights are requested while this one
        // is multiplied (16 short runs per chunk are too many streams for the hardware
        // prefetcher to follow in time: the repack waited on memory).
        qgemm_detail::PanelPrefetch next;
        if (r + k_panel_rows < rb_end) {
          next = panel_lines(w, r + k_panel_rows, std::min(k_panel_rows, rb_end - r - k_panel_rows),
                             kb, nbk);
        } else if (kb + k_chunk_blocks < nb) {
          next = panel_lines(w, rb, std::min(k_panel_rows, rb_end - rb), kb + k_chunk_blocks,
                             std::min(k_chunk_blocks, nb - kb - k_chunk_blocks));
        } else if (rb_end < row_end) {
          next = panel_lines(w, rb_end, std::min(k_panel_rows, row_end - rb_end), 0, chunk);
        }
        qgemm_detail::tile_avx2(w.dtype, pq, pd, nbk,
                                act + static_cast<size_t>(kb) * sizeof(ActBlockQ8_0), ba,
                                corr ? corr + kb : nullptr, lc, T, y + r, out, nr, kb > 0, next);
      }
    }
  }
}

Status run(const TensorView& w, const ActBlockQ8_0* a, int64_t T, float* y, ThreadPool* pool,
           bool simd) {
  const int64_t in = w.ne[0], out = w.ne[1];
  if (T <= 0 || out == 0) return Status();
  if (in == 0) {
    std::fill(y, y + T * out, 0.0f);
    return Status();
  }
  const int64_t nb = in / k_block;
  if (!simd || !qgemm_has_simd()) {
    auto body = [&](int64_t b, int64_t e) { reference_rows(w, a, T, y, b, e); };
    if (pool) {
      pool->parallel_for(out, body, 1);
    } else {
      body(0, out);
    }
    return Status();
  }
  // Q8_0 needs no correction (the kernels never read corr for it).
  const int32_t* corr = nullptr;
  if (w.dtype == DType::Q4_0) {
    thread_local AlignedBuffer<uint8_t> corr_buf;
    auto* c = reinterpret_cast<int32_t*>(corr_buf.get(static_cast<size_t>(T * nb) * 4));
    block_sums(a, T * nb, c);
    corr = c;
  }
  const auto* act = reinterpret_cast<const uint8_t*>(a);
  const int64_t panels = (out + k_panel_rows - 1) / k_panel_rows;
  auto body = [&](int64_t b, int64_t e) { run_panels(w, act, corr, T, y, b, e); };
  if (pool) {
    pool->parallel_for(panels, body, 1);
  } else {
    body(0, panels);
  }
  return Status();
}

}  // namespace

bool qgemm_supports(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0;
}

bool qgemm_has_simd() {
  static const bool avx2 = cpu_has_avx2_fma();
  return avx2;
}

Status qgemm_quantized(const TensorView& w, const ActBlockQ8_0* a, int64_t T, float* y,
                       ThreadPool* pool, bool simd) {
  SLM_TRY(check_weight(w));
  return run(w, a, T, y, pool, simd);
}

Status qgemm(const TensorView& w, const float* x, int64_t T, float* y, ThreadPool* pool) {
  const TensorView* ws[] = {&w};
  float* ys[] = {y};
  return qgemm_many(ws, ys, 1, x, T, pool);
}

Status qgemm_many(const TensorView* const* ws, float* const* ys, int count, const float* x,
                  int64_t T, ThreadPool* pool) {
  for (int i = 0; i < count; ++i) {
    SLM_TRY(check_weight(*ws[i]));
    if (ws[i]->ne[0] != ws[0]->ne[0]) {
      return error("qgemm: tensor '%s' has rows of %lld, '%s' of %lld (they share x)",
                   ws[i]->name.c_str(), (long long)ws[i]->ne[0], ws[0]->name.c_str(),
                   (long long)ws[0]->ne[0]);
    }
  }
  if (count <= 0) return Status();
  const int64_t in = ws[0]->ne[0];
  if (T <= 0 || in == 0) {
    for (int i = 0; i < count; ++i) SLM_TRY(run(*ws[i], nullptr, T, ys[i], pool, true));
    return Status();
  }
  const DotKernel* k = dot_kernel(DType::Q8_0, qgemm_has_simd());
  const int64_t nb = in / k_block;
  const size_t ba = static_cast<size_t>(nb) * sizeof(ActBlockQ8_0);
  thread_local AlignedBuffer<uint8_t> act_buf;
  uint8_t* act = act_buf.get(ba * static_cast<size_t>(T));
  if (!act) return error("qgemm: out of memory for %lld quantized activation rows", (long long)T);
  auto quantize = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      k->quantize_act(x + t * in, act + static_cast<size_t>(t) * ba, in);
  };
  // Quantizing is ~1/200 of the multiply work; split it only when there are tokens enough.
  if (pool && T >= 8) {
    pool->parallel_for(T, quantize, 4);
  } else {
    quantize(0, T);
  }
  const auto* a = reinterpret_cast<const ActBlockQ8_0*>(act);
  if (count == 1 || !qgemm_has_simd()) {
    for (int i = 0; i < count; ++i) SLM_TRY(run(*ws[i], a, T, ys[i], pool, true));
    return Status();
  }
  // One pool job over the panels of every weight (q/k/v: one hand-off, not three; the small
  // k/v panels fill in beside q's).
  const int32_t* corr = nullptr;
  for (int i = 0; i < count && !corr; ++i) {
    if (ws[i]->dtype == DType::Q4_0) {
      thread_local AlignedBuffer<uint8_t> corr_buf;
      auto* c = reinterpret_cast<int32_t*>(corr_buf.get(static_cast<size_t>(T * nb) * 4));
      if (!c) return error("qgemm: out of memory for %lld activation block sums", (long long)T);
      block_sums(a, T * nb, c);
      corr = c;
    }
  }
  constexpr int k_max = 8;
  if (count > k_max) {
    for (int i = 0; i < count; ++i) SLM_TRY(run(*ws[i], a, T, ys[i], pool, true));
    return Status();
  }
  int64_t first[k_max + 1] = {0};
  for (int i = 0; i < count; ++i) first[i + 1] = first[i] + (ws[i]->ne[1] + k_panel_rows - 1) / k_panel_rows;
  auto body = [&](int64_t b, int64_t e) {
    for (int i = 0; i < count; ++i) {
      const int64_t pb = std::max(b, first[i]), pe = std::min(e, first[i + 1]);
      if (pb >= pe) continue;
      run_panels(*ws[i], act, ws[i]->dtype == DType::Q4_0 ? corr : nullptr, T, ys[i],
                 pb - first[i], pe - first[i]);
    }
  };
  if (pool) {
    pool->parallel_for(first[count], body, 1);
  } else {
    body(0, first[count]);
  }
  return Status();
}

}  // namespace slm
