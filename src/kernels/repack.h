// Load-time weight layouts for the kernels. "x8": Q4_0 rows in groups of eight, per block the
// eight f16 scales side by side (16 bytes), then the quant bytes in the lanes the eight-row
// kernel works in: for k = 0..3 and row r = 0..7, bytes 4k..4k+3 of row r's 16 (128 bytes).
// Same size as the rows themselves (144 bytes per 8 x 32 weights); a short last group repeats
// its last row. Group g (rows 8g..8g+7) is one contiguous run of nb * 144 bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace slm {

constexpr size_t k_q4_0_x8_block_bytes = 144;

// True if w can carry an x8 copy: a 2-D Q4_0 matrix of whole blocks with data.
bool x8_applies(const TensorView& w);
// Bytes of w's x8 copy.
uint64_t x8_bytes(const TensorView& w);
// Writes w's rows in the x8 layout to dst (x8_bytes(w) bytes).
void repack_x8(const TensorView& w, uint8_t* dst);
// The group holding rows [r, r + 8) of w's x8 copy (r a multiple of 8).
inline const uint8_t* x8_group(const TensorView& w, int64_t r) {
  return static_cast<const uint8_t*>(w.x8) +
         static_cast<uint64_t>(r / 8) * static_cast<uint64_t>(w.ne[0] / 32) * k_q4_0_x8_block_bytes;
}
// Block b of row r as it was in the file (18 bytes: f16 scale, 16 quant bytes), read back from
// the x8 copy: the layout's scalar oracle, used by tests.
void x8_block(const TensorView& w, int64_t r, int64_t b, uint8_t out[18]);

}  // namespace slm
