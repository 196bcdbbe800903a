#include "kernels/repack.h"

#include <algorithm>
#include <cstring>

namespace slm {

bool x8_applies(const TensorView& w) {
  return w.dtype == DType::Q4_0 && w.data && w.ne[2] == 1 && w.ne[3] == 1 && w.ne[0] > 0 &&
         w.ne[0] % 32 == 0 && w.ne[1] > 0 &&
         w.row_bytes() == static_cast<uint64_t>(w.ne[0] / 32) * 18;
}

uint64_t x8_bytes(const TensorView& w) {
  const uint64_t groups = static_cast<uint64_t>((w.ne[1] + 7) / 8);
  return groups * 8 * w.row_bytes();
}

void repack_x8(const TensorView& w, uint8_t* dst) {
  const int64_t nb = w.ne[0] / 32, rows = w.ne[1];
  for (int64_t g = 0; g < (rows + 7) / 8; ++g) {
    const uint8_t* src[8];
    for (int r = 0; r < 8; ++r) src[r] = w.row(std::min(8 * g + r, rows - 1));
    for (int64_t b = 0; b < nb; ++b, dst += k_q4_0_x8_block_bytes) {
      const size_t at = static_cast<size_t>(b) * 18;
      for (int r = 0; r < 8; ++r) std::memcpy(dst + 2 * r, src[r] + at, 2);
      for (int k = 0; k < 4; ++k) {
        for (int r = 0; r < 8; ++r)
          std::memcpy(dst + 16 + 32 * k + 4 * r, src[r] + at + 2 + 4 * k, 4);
      }
    }
  }
}

void x8_block(const TensorView& w, int64_t r, int64_t b, uint8_t out[18]) {
  const uint8_t* blk = x8_group(w, r - r % 8) + static_cast<size_t>(b) * k_q4_0_x8_block_bytes;
  const int lane = static_cast<int>(r % 8);
  std::memcpy(out, blk + 2 * lane, 2);
  for (int k = 0; k < 4; ++k) std::memcpy(out + 2 + 4 * k, blk + 16 + 32 * k + 4 * lane, 4);
}

}  // namespace slm
