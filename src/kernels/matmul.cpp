// matmul: y = x · Wᵀ over weight rows of any supported dtype. Rows are taken four at a time;
// F32 rows are used in place, other dtypes are converted into a per-thread buffer once per
// call, then dotted with every activation row.
#include "kernels/matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "kernels/qdot.h"
#include "kernels/quant.h"
#include "kernels/repack.h"
#include "kernels/simd.h"

namespace slm {

namespace {

constexpr int64_t k_tile_rows = 4;
// Weight bytes a dot-kernel claim streams at least when decoding one token (T tokens: T / 4
// times fewer, each byte then feeding T dot products). A claim costs a few cross-core
// cache-line transfers (the cursor, the done count), and a thread alone streams more than half
// of what two do (Zen 5: 37 of 45 GB/s), so an uneven last claim costs less than more claims:
// SmolLM2-135M decode, 32 -> 128 KiB, Q4_0 504 -> 522 tok/s, Q8_0 289 -> 309, Q4_K_M 358 ->
// 374; 64 and 256 KiB were slower than 128; 0.5B / 1B no change.
constexpr int64_t k_claim_bytes = int64_t{128} << 10;

// ---- row conversion -------------------------------------------------------------------------

// 16-bit rows may sit at odd addresses (safetensors data has no alignment): every element is
// read through memcpy, never through a uint16_t pointer.
inline uint16_t u16_at(const uint8_t* p, int64_t i) {
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return h;
}

SLM_AVX2 void f16_row_avx2(const uint8_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) dst[i] = fp16_to_fp32(u16_at(src, i));
}

void f16_row(const uint8_t* src, float* dst, int64_t n) {
  if (ops_have_avx2()) {
    f16_row_avx2(src, dst, n);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(u16_at(src, i));
  }
}

void bf16_row(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(u16_at(src, i));
}

// ---- dot of four weight rows with one activation row ---------------------------------------

SLM_AVX2 void dot4_avx2(const float* const* w, const float* x, int64_t n, float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 vx = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w[0] + i), vx, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w[1] + i), vx, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w[2] + i), vx, a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w[3] + i), vx, a3);
  }
  out[0] = hsum256(a0);
  out[1] = hsum256(a1);
  out[2] = hsum256(a2);
  out[3] = hsum256(a3);
  for (; i < n; ++i) {
    for (int r = 0; r < 4; ++r) out[r] += w[r][i] * x[i];
  }
}

void dot4(const float* const* w, const float* x, int64_t n, float* out) {
  if (ops_have_avx2()) {
    dot4_avx2(w, x, n, out);
  } else {
    for (int r = 0; r < 4; ++r) out[r] = dot_f32_ref(w[r], x, n);
  }
}

Status check_weight(const TensorView& w) {
  if (!matmul_supports(w.dtype)) {
    return error("matmul: tensor '%s' has unsupported dtype %s", w.name.c_str(),
                 dtype_name(w.dtype));
  }
  if (w.ne[2] != 1 || w.ne[3] != 1) {
    return error("matmul: tensor '%s' is not 2-D (%s)", w.name.c_str(), w.shape_string().c_str());
  }
  return Status();
}

}  // namespace

bool matmul_supports(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return true;
    case DType::I8:
    case DType::I16:
    case DType::I32:
    case DType::I64:
      return false;  // integer tensors are not weights
    default:
      return can_dequantize(t);
  }
}

void weight_row_to_f32(const TensorView& w, int64_t r, float* out) {
  if (w.x8) {
    // Read from the x8 copy: the file's pages of it may have been dropped (model/loader.cpp).
    uint8_t blk[k_x8_max_file_block];
    for (int64_t b = 0; b < w.ne[0] / 32; ++b) {
      x8_block(w, r, b, blk);
      dequantize_row(w.dtype, blk, out + 32 * b, 32);
    }
    return;
  }
  const uint8_t* src = w.row(r);
  switch (w.dtype) {
    case DType::F32:
      std::memcpy(out, src, static_cast<size_t>(w.ne[0]) * sizeof(float));  // may be unaligned
      break;
    case DType::F16:
      f16_row(src, out, w.ne[0]);
      break;
    case DType::BF16:
      bf16_row(src, out, w.ne[0]);
      break;
    default:
      dequantize_row(w.dtype, src, out, w.ne[0]);
      break;
  }
}

namespace {

// Fallback for weight types without a dot kernel: rows converted to F32 four at a time.
void matmul_rows_f32(const TensorView& w, const float* x, int64_t T, float* y, ThreadPool* pool) {
  const int64_t in = w.ne[0], out = w.ne[1];
  const int64_t n_tiles = (out + k_tile_rows - 1) / k_tile_rows;
  // F32 rows are read in place when they are float-aligned (safetensors data need not be).
  const bool direct =
      w.dtype == DType::F32 && reinterpret_cast<uintptr_t>(w.data) % alignof(float) == 0;

  auto body = [&](int64_t tb, int64_t te) {
    // Per-thread conversion buffer for one tile of rows; grows once, then is reused.
    thread_local std::vector<float> buf;
    if (!direct && buf.size() < static_cast<size_t>(k_tile_rows * in)) {
      buf.resize(static_cast<size_t>(k_tile_rows * in));
    }
    for (int64_t tile = tb; tile < te; ++tile) {
      const int64_t r0 = tile * k_tile_rows;
      const int64_t nr = std::min(k_tile_rows, out - r0);
      const float* rows[k_tile_rows];
      for (int64_t r = 0; r < k_tile_rows; ++r) {
        int64_t rr = r0 + std::min(r, nr - 1);  // pad a short last tile by repeating a row
        if (direct) {
          rows[r] = reinterpret_cast<const float*>(w.row(rr));
        } else {
          float* dst = buf.data() + r * in;
          if (r < nr) weight_row_to_f32(w, rr, dst);
          rows[r] = r < nr ? dst : rows[nr - 1];
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        float acc[k_tile_rows];
        dot4(rows, x + t * in, in, acc);
        for (int64_t r = 0; r < nr; ++r) y[t * out + r0 + r] = acc[r];
      }
    }
  };
  // Each chunk should carry enough multiply-adds (~64K) to be worth a hand-off.
  int64_t work_per_tile = std::max<int64_t>(1, k_tile_rows * in * T);
  int64_t min_chunk = std::max<int64_t>(1, (int64_t{1} << 16) / work_per_tile);
  if (pool) {
    pool->parallel_for(n_tiles, body, min_chunk);
  } else {
    body(0, n_tiles);
  }
}

// Activations converted to the kernel's format into a grow-only buffer per calling thread and
// activation format, so a forward pass allocates nothing once warm and the weights of one
// matmul_many call that pair with different formats (a Q4_K_M mix) each keep theirs.
const uint8_t* prepare_activations(const DotKernel& k, const float* x, int64_t T, int64_t in,
                                   size_t* row_bytes) {
  *row_bytes = act_row_bytes(k.atype, in);
  if (k.atype == ActType::f32) return reinterpret_cast<const uint8_t*>(x);
  thread_local std::vector<uint8_t> bufs[4];
  std::vector<uint8_t>& buf = bufs[static_cast<int>(k.atype) & 3];
  const size_t need = *row_bytes * static_cast<size_t>(T);
  if (buf.size() < need) buf.resize(need);
  for (int64_t t = 0; t < T; ++t) k.quantize_act(x + t * in, buf.data() + t * *row_bytes, in);
  return buf.data();
}

// Prompt-sized batches go to the packed FP32 GEMM from k_gemm_min_tokens on: at 128 tokens it
// beat the dot-kernel tiles for F16 (214 vs 138 tok/s, SmolLM2-135M shapes, 1 thread) and Q4_0
// (262 vs 233) and tied for Q4_K_M. SLM_GEMM_MIN_TOKENS overrides it for such measurements
// (0: never).
int64_t gemm_min_tokens() {
  static const int64_t forced = [] {
    const char* v = std::getenv("SLM_GEMM_MIN_TOKENS");
    return v && *v ? std::atoll(v) : int64_t{-1};
  }();
  if (forced >= 0) return forced == 0 ? INT64_MAX : forced;
  return k_gemm_min_tokens;
}

// Output rows [r0, r1) of y (T x w.ne[1]) through kernel k, activations already converted.
void dot_rows(const DotKernel& k, const TensorView& w, const uint8_t* act, size_t abytes,
              int64_t T, float* y, int64_t r0, int64_t r1) {
  const int64_t in = w.ne[0], out = w.ne[1];
  const size_t wbytes = static_cast<size_t>(w.row_bytes());
  // Weights repacked at load time go to the kernel for their layout; the callers' row ranges
  // start at multiples of the tile height (8 for the kernels that have one).
  const bool x8 = w.x8 && k.tile_x8 && r0 % 8 == 0;
  const DotTileFn tile = x8 ? k.tile_x8 : k.tile;
  auto rows_at = [&](int64_t r) { return x8 ? x8_group(w, r) : w.row(r); };
  if (T == 1) {
    // Decode: the whole range in one call, so per-call set-up (activation sums, the next row
    // group's prefetch) is paid once per range rather than once per row tile.
    tile(in, rows_at(r0), wbytes, static_cast<int>(r1 - r0), act, abytes, 1, y + r0, out);
    return;
  }
  const int64_t R = std::max(1, k.tile_rows), C = std::max(1, k.tile_cols);
  // Columns outer within a range would re-stream its weights T/C times; rows outer keeps a
  // row tile in L1 while every column group passes over it.
  for (int64_t r = r0; r < r1; r += R) {
    const int nr = static_cast<int>(std::min(R, r1 - r));
    for (int64_t c = 0; c < T; c += C) {
      const int nc = static_cast<int>(std::min(C, T - c));
      tile(in, rows_at(r), wbytes, nr, act + static_cast<size_t>(c) * abytes, abytes, nc,
           y + c * out + r, out);
    }
  }
}

}  // namespace

Status matmul_with(const DotKernel& k, const TensorView& w, const float* x, int64_t T, float* y,
                   ThreadPool* pool) {
  SLM_TRY(check_weight(w));
  if (k.wtype != w.dtype) {
    return error("matmul: kernel for %s given tensor '%s' of type %s", dtype_name(k.wtype),
                 w.name.c_str(), dtype_name(w.dtype));
  }
  const int64_t in = w.ne[0], out = w.ne[1];
  if (in % act_block_size(k.atype) != 0) {
    return error("matmul: tensor '%s' row length %lld is not a multiple of %lld", w.name.c_str(),
                 (long long)in, (long long)act_block_size(k.atype));
  }
  size_t abytes = 0;
  const uint8_t* act = prepare_activations(k, x, T, in, &abytes);
  const size_t wbytes = static_cast<size_t>(w.row_bytes());
  const int64_t R = std::max(1, k.tile_rows);
  const int64_t n_tiles = (out + R - 1) / R;
  auto body = [&](int64_t tb, int64_t te) {
    dot_rows(k, w, act, abytes, T, y, tb * R, std::min(out, te * R));
  };
  // A chunk streams at least k_claim_bytes of weights.
  const int64_t tile_bytes = std::max<int64_t>(1, R * static_cast<int64_t>(wbytes) * std::max<int64_t>(1, T / 4));
  const int64_t min_chunk = std::max<int64_t>(1, k_claim_bytes / tile_bytes);
  if (pool) {
    pool->parallel_for(n_tiles, body, min_chunk);
  } else {
    body(0, n_tiles);
  }
  return Status();
}

bool matmul_uses_gemm(int64_t T, MatmulMode mode) {
  return mode == MatmulMode::fast && T >= gemm_min_tokens();
}

Status matmul(const TensorView& w, const float* x, int64_t T, float* y, ThreadPool* pool,
              MatmulMode mode) {
  SLM_TRY(check_weight(w));
  if (matmul_uses_gemm(T, mode)) {
    return matmul_gemm(w, x, T, y, pool);
  }
  const DotKernel* k = mode != MatmulMode::float_activations ? dot_kernel(w.dtype) : nullptr;
  if (k && w.ne[0] % act_block_size(k->atype) == 0) return matmul_with(*k, w, x, T, y, pool);
  matmul_rows_f32(w, x, T, y, pool);
  return Status();
}

Status matmul_many(const TensorView* const* ws, float* const* ys, int count, const float* x,
                   int64_t T, ThreadPool* pool, MatmulMode mode) {
  constexpr int k_max = 4;
  const DotKernel* ks[k_max];
  bool fused = count >= 2 && count <= k_max && pool && pool->n_threads() > 1 &&
               mode != MatmulMode::float_activations &&
               !matmul_uses_gemm(T, mode);
  for (int i = 0; fused && i < count; ++i) {
    SLM_TRY(check_weight(*ws[i]));
    ks[i] = dot_kernel(ws[i]->dtype);
    fused = ks[i] && ws[i]->ne[0] == ws[0]->ne[0] && ws[i]->ne[0] % act_block_size(ks[i]->atype) == 0;
  }
  if (!fused) {
    for (int i = 0; i < count; ++i) SLM_TRY(matmul(*ws[i], x, T, ys[i], pool, mode));
    return Status();
  }
  // One job over all the weights' rows in units of k_unit rows (a multiple of every kernel's
  // tile height), so a chunk may span two weights; each weight's rows are computed as
  // matmul_with computes them, whatever the chunking.
  constexpr int64_t k_unit = 8;
  const int64_t in = ws[0]->ne[0];
  const uint8_t* act[k_max];
  size_t abytes[k_max];
  int64_t first_unit[k_max + 1] = {0};
  int64_t total_bytes = 0;
  for (int i = 0; i < count; ++i) {
    int same = -1;  // an earlier weight with the same activation format converts x once
    for (int j = 0; j < i && same < 0; ++j) same = ks[j]->atype == ks[i]->atype ? j : -1;
    if (same >= 0) {
      act[i] = act[same];
      abytes[i] = abytes[same];
    } else {
      act[i] = prepare_activations(*ks[i], x, T, in, &abytes[i]);
    }
    first_unit[i + 1] = first_unit[i] + (ws[i]->ne[1] + k_unit - 1) / k_unit;
    total_bytes += static_cast<int64_t>(ws[i]->nbytes);
  }
  const int64_t n_units = first_unit[count];
  auto body = [&](int64_t ub, int64_t ue) {
    for (int i = 0; i < count; ++i) {
      const int64_t b = std::max(ub, first_unit[i]), e = std::min(ue, first_unit[i + 1]);
      if (b >= e) continue;
      const int64_t out = ws[i]->ne[1];
      dot_rows(*ks[i], *ws[i], act[i], abytes[i], T, ys[i], (b - first_unit[i]) * k_unit,
               std::min(out, (e - first_unit[i]) * k_unit));
    }
  };
  const int64_t unit_bytes = std::max<int64_t>(1, total_bytes / std::max<int64_t>(1, n_units));
  const int64_t min_chunk =
      std::max<int64_t>(1, k_claim_bytes / (unit_bytes * std::max<int64_t>(1, T / 4)));
  pool->parallel_for(n_units, body, min_chunk);
  return Status();
}

Status matmul_ref(const TensorView& w, const float* x, int64_t T, float* y) {
  SLM_TRY(check_weight(w));
  const int64_t in = w.ne[0], out = w.ne[1];
  std::vector<float> row(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) {
    weight_row_to_f32(w, o, row.data());
    for (int64_t t = 0; t < T; ++t) y[t * out + o] = dot_f32_ref(row.data(), x + t * in, in);
  }
  return Status();
}

}  // namespace slm
