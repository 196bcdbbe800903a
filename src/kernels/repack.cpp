#include "kernels/repack.h"

#include <algorithm>
#include <cstring>

namespace slm {

namespace {

constexpr size_t k_quant_bytes = 16;  // nibble bytes per block, after the scale (and qh)

size_t file_block_bytes(DType t) { return static_cast<size_t>(dtype_traits(t)->type_size); }

// Where element e's fifth bit goes in the reordered word (repack.h).
constexpr int fifth_bit_at(int e) {
  const int m = e < 16 ? e / 4 : 4 + (e - 16) / 4;
  return 8 * (e % 4) + m;
}

// The reordered bits of each possible byte of qh, per byte position: four lookups per word
// (a bit-by-bit loop was 15% of loading a 0.5B model whose matrices are mostly Q5_0).
struct FifthBitTables {
  uint32_t of[4][256];
};
constexpr FifthBitTables make_fifth_bit_tables() {
  FifthBitTables t{};
  for (int i = 0; i < 4; ++i) {
    for (int v = 0; v < 256; ++v) {
      for (int b = 0; b < 8; ++b) {
        if ((v >> b) & 1) t.of[i][v] |= uint32_t{1} << fifth_bit_at(8 * i + b);
      }
    }
  }
  return t;
}
constexpr FifthBitTables k_fifth_bits = make_fifth_bit_tables();

uint32_t reorder_fifth_bits(uint32_t qh) {
  return k_fifth_bits.of[0][qh & 0xff] | k_fifth_bits.of[1][(qh >> 8) & 0xff] |
         k_fifth_bits.of[2][(qh >> 16) & 0xff] | k_fifth_bits.of[3][qh >> 24];
}

uint32_t restore_fifth_bits(uint32_t v) {
  uint32_t qh = 0;
  for (int e = 0; e < 32; ++e) qh |= ((v >> fifth_bit_at(e)) & 1u) << e;
  return qh;
}

}  // namespace

bool x8_applies(const TensorView& w) {
  return (w.dtype == DType::Q4_0 || w.dtype == DType::Q5_0) && w.data && w.ne[2] == 1 &&
         w.ne[3] == 1 && w.ne[0] > 0 && w.ne[0] % 32 == 0 && w.ne[1] > 0 &&
         w.row_bytes() == static_cast<uint64_t>(w.ne[0] / 32) * file_block_bytes(w.dtype);
}

uint64_t x8_bytes(const TensorView& w) {
  const uint64_t groups = static_cast<uint64_t>((w.ne[1] + 7) / 8);
  return groups * 8 * w.row_bytes();
}

void repack_x8(const TensorView& w, uint8_t* dst) {
  const int64_t nb = w.ne[0] / 32, rows = w.ne[1];
  const bool q5 = w.dtype == DType::Q5_0;
  const size_t fb = file_block_bytes(w.dtype), qs_at = q5 ? 6 : 2, lanes_at = q5 ? 48 : 16;
  for (int64_t g = 0; g < (rows + 7) / 8; ++g) {
    const uint8_t* src[8];
    for (int r = 0; r < 8; ++r) src[r] = w.row(std::min(8 * g + r, rows - 1));
    for (int64_t b = 0; b < nb; ++b, dst += 8 * fb) {
      const size_t at = static_cast<size_t>(b) * fb;
      for (size_t r = 0; r < 8; ++r) {
        std::memcpy(dst + 2 * r, src[r] + at, 2);
        if (q5) {
          uint32_t qh;
          std::memcpy(&qh, src[r] + at + 2, 4);
          qh = reorder_fifth_bits(qh);
          std::memcpy(dst + 16 + 4 * r, &qh, 4);
        }
        for (size_t k = 0; k < k_quant_bytes / 4; ++k) {
          std::memcpy(dst + lanes_at + 32 * k + 4 * r, src[r] + at + qs_at + 4 * k, 4);
        }
      }
    }
  }
}

void x8_block(const TensorView& w, int64_t r, int64_t b, uint8_t out[k_x8_max_file_block]) {
  const bool q5 = w.dtype == DType::Q5_0;
  const uint8_t* blk = x8_group(w, r - r % 8) + static_cast<size_t>(b) * x8_block_bytes(w.dtype);
  const size_t lane = static_cast<size_t>(r % 8), qs_at = q5 ? 6 : 2, lanes_at = q5 ? 48 : 16;
  std::memcpy(out, blk + 2 * lane, 2);
  if (q5) {
    uint32_t v;
    std::memcpy(&v, blk + 16 + 4 * lane, 4);
    v = restore_fifth_bits(v);
    std::memcpy(out + 2, &v, 4);
  }
  for (size_t k = 0; k < k_quant_bytes / 4; ++k) {
    std::memcpy(out + qs_at + 4 * k, blk + lanes_at + 32 * k + 4 * lane, 4);
  }
}

}  // namespace slm
