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

}  // namespace slm
