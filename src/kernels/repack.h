// Load-time weight layouts for the kernels. "x8": Q4_0 or Q5_0 rows in groups of eight. Per
// 32-weight block a group holds the eight f16 scales side by side (16 bytes); for Q5_0 then the
// eight rows' fifth bits (32 bytes, see below); then the quant bytes in the lanes the eight-row
// kernel works in: for k = 0..3 and row r = 0..7, bytes 4k..4k+3 of row r's 16 (128 bytes).
// Same size as the rows themselves (8 x 18 = 144 or 8 x 22 = 176 bytes per 8 x 32 weights); a
// short last group repeats its last row. Group g (rows 8g..8g+7) is one contiguous run of nb
// blocks.
//
// Fifth bits (Q5_0): 32-bit lane r holds row r's 32 bits reordered so that bit 8j + m is the
// fifth bit of byte j of the kernel's quant vector m (m = 0..3: the low nibbles of lane bytes
// 4m..4m+3, elements 4m + j; m = 4..7: the high nibbles of bytes 4(m-4).., elements 16 +
// 4(m-4) + j). One shift and one mask per vector then put each bit at 0x10 of its byte.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace slm {

constexpr size_t k_q4_0_x8_block_bytes = 144;
constexpr size_t k_q5_0_x8_block_bytes = 176;
// Bytes of one block of a group (t is Q4_0 or Q5_0).
constexpr size_t x8_block_bytes(DType t) {
  return t == DType::Q5_0 ? k_q5_0_x8_block_bytes : k_q4_0_x8_block_bytes;
}

// True if w can carry an x8 copy: a 2-D Q4_0 or Q5_0 matrix of whole blocks with data.
bool x8_applies(const TensorView& w);
// Bytes of w's x8 copy.
uint64_t x8_bytes(const TensorView& w);
// Writes w's rows in the x8 layout to dst (x8_bytes(w) bytes).
void repack_x8(const TensorView& w, uint8_t* dst);
// The group holding rows [r, r + 8) of w's x8 copy (r a multiple of 8).
inline const uint8_t* x8_group(const TensorView& w, int64_t r) {
  return static_cast<const uint8_t*>(w.x8) + static_cast<uint64_t>(r / 8) *
                                                 static_cast<uint64_t>(w.ne[0] / 32) *
                                                 x8_block_bytes(w.dtype);
}
// Block b of row r as it was in the file (18 or 22 bytes), read back from the x8 copy: the
// layout's scalar oracle.
constexpr size_t k_x8_max_file_block = 22;
void x8_block(const TensorView& w, int64_t r, int64_t b, uint8_t out[k_x8_max_file_block]);

}  // namespace slm
