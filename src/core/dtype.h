// Tensor element types (ids equal GGUF's ggml_type ids, so files map directly), their block
// geometry, half-precision conversion, and TensorView: a typed, shaped view of bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace slm {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct DTypeTraits {
  const char* name;
  int64_t block_size;  // elements per block (1 for plain types)
  int64_t type_size;   // bytes per block
};

// Returns nullptr for ids slm does not know (treat as an error naming the id).
const DTypeTraits* dtype_traits(uint32_t id);
inline const DTypeTraits* dtype_traits(DType t) { return dtype_traits(static_cast<uint32_t>(t)); }
const char* dtype_name(DType t);
// Parses "F16", "q4_k", ...; returns false if unknown.
bool dtype_from_name(std::string_view name, DType* out);

// Bytes of a row of n elements; returns false if n is not a multiple of the block size or the
// product overflows.
bool dtype_row_bytes(DType t, int64_t n, uint64_t* out);

// IEEE half <-> float (exact, scalar; SIMD conversions live in kernels).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even
inline float bf16_to_fp32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t fp32_to_bf16(float f);  // round to nearest even, NaN kept NaN

// A view of a tensor's bytes. Shapes use GGUF order: ne[0] is the contiguous (innermost)
// dimension, so a Linear weight of PyTorch shape (out, in) has ne[0] = in, ne[1] = out.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};
  const void* data = nullptr;
  uint64_t nbytes = 0;
  // Q4_0 / Q5_0 matrices loaded for inference may also carry their rows repacked in groups of 8
  // (kernels/repack.h), which matmul reads instead of data; null otherwise. It describes exactly
  // these rows: a view cut to other rows or other bytes must reset it.
  const void* x8 = nullptr;

  int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  uint64_t row_bytes() const { return rows() ? nbytes / static_cast<uint64_t>(rows()) : 0; }
  const uint8_t* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + static_cast<uint64_t>(r) * row_bytes();
  }
  std::string shape_string() const;  // "[576, 49152]"
};

}  // namespace slm
