// Attention over a typed KV cache: rows of head_dim values stored as F32, F16 or Q8_0 (GGUF
// block layout), one query head at a time. Scalar *_ref versions are the oracles.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace slm {

// True if t can hold KV rows of head_dim values (F32, F16; Q8_0 when head_dim % 32 == 0).
bool kv_type_supported(DType t, int64_t head_dim);
Status check_kv_type(DType t, int64_t head_dim);  // an error naming the type and why

// Bytes of one cached row of n values in type t.
size_t kv_row_bytes(DType t, int64_t n);

// Stores n floats as one cache row of type t (Q8_0: d = amax / 127, values rounded to nearest).
void kv_store_row(DType t, const float* src, void* dst, int64_t n);
// The stored row back as floats (exact inverse for F32, the rounded values otherwise).
void kv_load_row(DType t, const void* src, float* dst, int64_t n);

// out (head_dim) = softmax(q · Kᵀ · scale) · V over n_pos cached rows; row j of K starts at
// k + j * stride bytes, likewise V. scores holds n_pos floats.
void attention_head_kv(DType t, const float* q, const void* k, const void* v, size_t stride,
                       int64_t n_pos, int64_t head_dim, float scale, float* scores, float* out);
void attention_head_kv_ref(DType t, const float* q, const void* k, const void* v, size_t stride,
                           int64_t n_pos, int64_t head_dim, float scale, float* scores,
                           float* out);

// attention_head_kv for n_heads query heads that share one KV head (grouped-query attention):
// q and out hold n_heads rows of head_dim, scores n_heads * n_pos floats. Each head's output is
// bit for bit what attention_head_kv gives it; the F16/F32 cache rows are loaded and widened
// once per pair of heads.
void attention_group_kv(DType t, const float* q, int64_t n_heads, const void* k, const void* v,
                        size_t stride, int64_t n_pos, int64_t head_dim, float scale, float* scores,
                        float* out);
void attention_group_kv_ref(DType t, const float* q, int64_t n_heads, const void* k,
                            const void* v, size_t stride, int64_t n_pos, int64_t head_dim,
                            float scale, float* scores, float* out);

// Causal attention of m <= k_attention_tile consecutive query tokens of one head (a prompt's
// rows): query i sees cached rows [0, n_first + i) and sits at q + i * q_stride, its output at
// out + i * out_stride (in floats). scores holds 8 * (n_first + m - 1) floats. Each cached row is
// loaded and widened once for all m queries (F16/F32 caches, head_dim % 8 == 0; otherwise one
// query at a time). The result matches attention_head_kv to rounding, not bit for bit (the
// softmax's 1 / sum is applied to the outputs). A query's bits do not depend on m or on the
// other queries (the rows it cannot see add exact zeros), given finite cached values.
constexpr int k_attention_tile = 8;
void attention_tile_kv(DType t, const float* q, size_t q_stride, int m, int64_t n_first,
                       const void* k, const void* v, size_t stride, int64_t head_dim, float scale,
                       float* scores, float* out, size_t out_stride);

}  // namespace slm
