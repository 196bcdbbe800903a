// Scalar reference dequantizers for the ggml block formats and the simple reference quantizers.
// Blocks are read byte-wise (memcpy for multi-byte fields) since tensor data may be unaligned.
#include "kernels/quant.h"

#include "kernels/quantize_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

// Every multiply and add must round on its own so results are bit-exact against the format's
// definition (and the numpy reference); fused multiply-add would change the last bit.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace slm {

namespace {

constexpr int64_t k_qk = 32;    // block size of the Q4_0..Q8_0 family
constexpr int64_t k_qkk = 256;  // super-block size of the K family

inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// ---- 32-element blocks ----------------------------------------------------------------------

// Q4_0 (18 bytes): f16 d; qs[16]. Element j < 16 is the low nibble of qs[j], j >= 16 the high
// nibble of qs[j-16]; value = (q - 8) * d.
void dequant_q4_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 18, y += k_qk) {
    const float d = half_at(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
      y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

// Q4_1 (20 bytes): f16 d; f16 m; qs[16]. value = q * d + m.
void dequant_q4_1(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 20, y += k_qk) {
    const float d = half_at(b), m = half_at(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(qs[j] & 0x0f) * d + m;
      y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

// Q5_0 (22 bytes): f16 d; qh[4] (u32 LE, bit j = 5th bit of element j); qs[16].
// value = (q - 16) * d.
void dequant_q5_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 22, y += k_qk) {
    const float d = half_at(b);
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
      int q0 = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1) << 4);
      int q1 = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = static_cast<float>(q0 - 16) * d;
      y[j + 16] = static_cast<float>(q1 - 16) * d;
    }
  }
}

// Q5_1 (24 bytes): f16 d; f16 m; qh[4]; qs[16]. value = q * d + m.
void dequant_q5_1(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 24, y += k_qk) {
    const float d = half_at(b), m = half_at(b + 2);
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
      int q0 = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1) << 4);
      int q1 = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = static_cast<float>(q0) * d + m;
      y[j + 16] = static_cast<float>(q1) * d + m;
    }
  }
}

// Q8_0 (34 bytes): f16 d; int8 qs[32]. value = q * d.
void dequant_q8_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 34, y += k_qk) {
    const float d = half_at(b);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
  }
}

// ---- 256-element super-blocks -----------------------------------------------------------------

// Q2_K (84 bytes): scales[16] (low nibble scale, high nibble min, per 16 elements); qs[64]
// (2-bit quants); f16 d; f16 dmin. Each 128-element half uses 32 qs bytes: element
// 32*s + l (s = 0..3 shift step, l < 32) is (qs[l] >> 2s) & 3. value = d*sc * q - dmin*m.
void dequant_q2_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 84) {
    const uint8_t* scales = b;
    const uint8_t* qs = b + 16;
    const float d = half_at(b + 80), dmin = half_at(b + 82);
    int is = 0;
    for (int half = 0; half < 2; ++half, qs += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part, ++is) {
          const float dl = d * static_cast<float>(scales[is] & 0x0f);
          const float ml = dmin * static_cast<float>(scales[is] >> 4);
          for (int l = 0; l < 16; ++l) {
            *y++ = dl * static_cast<float>((qs[16 * part + l] >> shift) & 3) - ml;
          }
        }
      }
    }
  }
}

// Q3_K (110 bytes): hmask[32] (3rd bit, cleared means subtract 4); qs[64] (low 2 bits);
// scales[12] (16 six-bit scales, biased by 32); f16 d. Layout of the quants as in Q2_K, the
// hmask bit for shift step s of half h is bit (4h + s) of hmask[l].
void unpack_q3_k_scales(const uint8_t* p, int8_t out[16]) {
  // Scale k: its low 4 bits are the low nibble of byte k (k < 8) or the high nibble of byte
  // k - 8; its high 2 bits are bits 2*(k/4)..2*(k/4)+1 of byte 8 + k % 4.
  for (int k = 0; k < 16; ++k) {
    int low = k < 8 ? (p[k] & 0x0f) : (p[k - 8] >> 4);
    int high = (p[8 + (k % 4)] >> (2 * (k / 4))) & 3;
    out[k] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

void dequant_q3_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 110) {
    const uint8_t* hmask = b;
    const uint8_t* qs = b + 32;
    int8_t sc[16];
    unpack_q3_k_scales(b + 96, sc);
    const float d = half_at(b + 108);
    int is = 0;
    uint8_t m = 1;
    for (int half = 0; half < 2; ++half, qs += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
        for (int part = 0; part < 2; ++part, ++is) {
          const float dl = d * static_cast<float>(sc[is]);
          for (int l = 0; l < 16; ++l) {
            int q = (qs[16 * part + l] >> shift) & 3;
            if (!(hmask[16 * part + l] & m)) q -= 4;
            *y++ = dl * static_cast<float>(q);
          }
        }
      }
    }
  }
}

// The 6-bit scale and min of sub-block j (0..7) packed in 12 bytes (Q4_K, Q5_K): j < 4 keep
// them in the low 6 bits of bytes j and j+4; j >= 4 put the low 4 bits in byte j+4 (scale low
// nibble, min high nibble) and the top 2 bits in the top bits of bytes j-4 and j.
void scale_min_k4(int j, const uint8_t* q, int* sc, int* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K (144 bytes): f16 d; f16 dmin; scales[12]; qs[128]. Each 64 elements use 32 qs bytes:
// low nibbles are the first 32 (sub-block 2k), high nibbles the next 32 (sub-block 2k+1).
// value = (d*sc) * q - (dmin*m).
void dequant_q4_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 144) {
    const float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qs = b + 16;
    for (int k = 0; k < 4; ++k, qs += 32) {
      int sc, mn;
      scale_min_k4(2 * k, scales, &sc, &mn);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
      scale_min_k4(2 * k + 1, scales, &sc, &mn);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(qs[l] & 0x0f) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(qs[l] >> 4) - m2;
    }
  }
}

// Q5_K (176 bytes): f16 d; f16 dmin; scales[12]; qh[32]; qs[128]. As Q4_K plus a 5th bit:
// sub-block s takes bit s of qh[l] (adds 16).
void dequant_q5_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 176) {
    const float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48;
    for (int k = 0; k < 4; ++k, qs += 32) {
      int sc, mn;
      scale_min_k4(2 * k, scales, &sc, &mn);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
      scale_min_k4(2 * k + 1, scales, &sc, &mn);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
      const int b1 = 2 * k, b2 = 2 * k + 1;
      for (int l = 0; l < 32; ++l) {
        int q = (qs[l] & 0x0f) + (((qh[l] >> b1) & 1) << 4);
        *y++ = d1 * static_cast<float>(q) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        int q = (qs[l] >> 4) + (((qh[l] >> b2) & 1) << 4);
        *y++ = d2 * static_cast<float>(q) - m2;
      }
    }
  }
}

// Q6_K (210 bytes): ql[128] (low 4 bits); qh[64] (high 2 bits); int8 scales[16]; f16 d.
// Per 128-element half (ql += 64, qh += 32, scales += 8), for l < 32:
//   element l      : low nibble of ql[l],      qh bits 0-1
//   element l + 32 : low nibble of ql[l + 32], qh bits 2-3
//   element l + 64 : high nibble of ql[l],     qh bits 4-5
//   element l + 96 : high nibble of ql[l + 32], qh bits 6-7
// value = (d * scale) * (q - 32), scale index = l / 16 + 2 * quarter.
void dequant_q6_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 210) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = half_at(b + 208);
    for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, y += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

// Q8_K (292 bytes): f32 d; int8 qs[256]; int16 bsums[16] (sums for dot products, unused here).
void dequant_q8_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 292, y += k_qkk) {
    float d;
    std::memcpy(&d, b, 4);
    for (int j = 0; j < 256; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[4 + j]));
  }
}

template <class T>
void convert_plain(const uint8_t* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, b + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
    y[i] = static_cast<float>(v);
  }
}

// ---- quantizers -------------------------------------------------------------------------------

// The element of largest magnitude, keeping its sign (first one wins on ties).
float signed_absmax(const float* x) {
  float amax = 0, max = 0;
  for (int j = 0; j < k_qk; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void put_half(uint8_t* p, float f) {
  uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, 2);
}

void quant_q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < k_qk; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  put_half(b, d);
  for (int j = 0; j < k_qk; ++j) {
    b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
  }
}

// Q4_0 / Q5_0: d = max / -(2^(bits-1)) so the extreme maps to q = 0; q = trunc(x/d + off + 0.5)
// clamped to the top code.
void quant_sym(const float* x, uint8_t* b, int bits) {
  const float half_range = static_cast<float>(1 << (bits - 1));
  const int top = (1 << bits) - 1;
  const float d = signed_absmax(x) / -half_range;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  put_half(b, d);
  uint8_t* qs = b + (bits == 4 ? 2 : 6);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const float x0 = x[j] * id, x1 = x[j + 16] * id;
    const int q0 = std::min(top, static_cast<int>(static_cast<int8_t>(x0 + (half_range + 0.5f))));
    const int q1 = std::min(top, static_cast<int>(static_cast<int8_t>(x1 + (half_range + 0.5f))));
    qs[j] = static_cast<uint8_t>((q0 & 0x0f) | ((q1 & 0x0f) << 4));
    qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 2, &qh, 4);
}

// Q4_1 / Q5_1: d = (max - min) / (2^bits - 1), m = min, q = trunc((x - min)/d + 0.5).
void quant_affine(const float* x, uint8_t* b, int bits) {
  // Strict comparisons keep the first of equal values (this fixes the sign of a zero min).
  float mn = x[0], mx = x[0];
  for (int j = 1; j < k_qk; ++j) {
    if (x[j] < mn) mn = x[j];
    if (x[j] > mx) mx = x[j];
  }
  const int top = (1 << bits) - 1;
  const float d = (mx - mn) / static_cast<float>(top);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  put_half(b, d);
  put_half(b + 2, mn);
  uint8_t* qs = b + (bits == 4 ? 4 : 8);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const float x0 = (x[j] - mn) * id, x1 = (x[j + 16] - mn) * id;
    // As in the ggml reference: Q4_1 clamps to 15, Q5_1 relies on x/d <= 31 by construction.
    int q0, q1;
    if (bits == 4) {
      q0 = std::min(top, static_cast<int>(static_cast<int8_t>(x0 + 0.5f)));
      q1 = std::min(top, static_cast<int>(static_cast<int8_t>(x1 + 0.5f)));
    } else {
      q0 = static_cast<uint8_t>(x0 + 0.5f);
      q1 = static_cast<uint8_t>(x1 + 0.5f);
    }
    qs[j] = static_cast<uint8_t>((q0 & 0x0f) | ((q1 & 0x0f) << 4));
    qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 4, &qh, 4);
}

}  // namespace

bool can_dequantize(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::F64:
    case DType::I8:
    case DType::I16:
    case DType::I32:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K:
      return true;
    default:
      return false;
  }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const DTypeTraits* tr = dtype_traits(t);
  if (!tr || n < 0 || n % tr->block_size != 0) return;
  const uint8_t* b = static_cast<const uint8_t*>(src);
  const int64_t nb = n / tr->block_size;
  switch (t) {
    case DType::F32:
      if (n) std::memcpy(dst, b, static_cast<size_t>(n) * 4);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_at(b + 2 * i);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        dst[i] = bf16_to_fp32(h);
      }
      return;
    case DType::F64:
      convert_plain<double>(b, dst, n);
      return;
    case DType::I8:
      convert_plain<int8_t>(b, dst, n);
      return;
    case DType::I16:
      convert_plain<int16_t>(b, dst, n);
      return;
    case DType::I32:
      convert_plain<int32_t>(b, dst, n);
      return;
    case DType::Q4_0:
      dequant_q4_0(b, dst, nb);
      return;
    case DType::Q4_1:
      dequant_q4_1(b, dst, nb);
      return;
    case DType::Q5_0:
      dequant_q5_0(b, dst, nb);
      return;
    case DType::Q5_1:
      dequant_q5_1(b, dst, nb);
      return;
    case DType::Q8_0:
      dequant_q8_0(b, dst, nb);
      return;
    case DType::Q2_K:
      dequant_q2_k(b, dst, nb);
      return;
    case DType::Q3_K:
      dequant_q3_k(b, dst, nb);
      return;
    case DType::Q4_K:
      dequant_q4_k(b, dst, nb);
      return;
    case DType::Q5_K:
      dequant_q5_k(b, dst, nb);
      return;
    case DType::Q6_K:
      dequant_q6_k(b, dst, nb);
      return;
    case DType::Q8_K:
      dequant_q8_k(b, dst, nb);
      return;
    default:
      return;
  }
}

Status dequantize_row_checked(DType t, const void* src, float* dst, int64_t n) {
  if (!can_dequantize(t)) return error("dequantize: type %s is not supported", dtype_name(t));
  const DTypeTraits* tr = dtype_traits(t);
  if (n < 0 || n % tr->block_size != 0) {
    return error("dequantize: %s row of %lld elements is not a multiple of the block size %lld",
                 tr->name, static_cast<long long>(n), static_cast<long long>(tr->block_size));
  }
  dequantize_row(t, src, dst, n);
  return Status();
}

Status quantize_row(DType t, const float* src, void* dst, int64_t n) {
  const DTypeTraits* tr = dtype_traits(t);
  if (!tr) return error("quantize: unknown type id %u", static_cast<unsigned>(t));
  if (is_k_quant(t)) return quantize_row_k(t, src, dst, n);
  uint8_t* out = static_cast<uint8_t*>(dst);
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
      break;
    default:
      return error("quantize: type %s is not supported (no reference quantizer yet)", tr->name);
  }
  if (n < 0 || n % tr->block_size != 0) {
    return error("quantize: %s row of %lld elements is not a multiple of the block size %lld",
                 tr->name, static_cast<long long>(n), static_cast<long long>(tr->block_size));
  }
  if (t == DType::F32) {
    if (n) std::memcpy(out, src, static_cast<size_t>(n) * 4);
    return Status();
  }
  if (t == DType::F16 || t == DType::BF16) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h = t == DType::F16 ? fp32_to_fp16(src[i]) : fp32_to_bf16(src[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
    return Status();
  }
  // The block formulas convert float to int: reject what would make that undefined.
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(src[i])) {
      return error("quantize: %s: element %lld is not finite", tr->name, static_cast<long long>(i));
    }
  }
  const int64_t nb = n / k_qk;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * k_qk;
    uint8_t* b = out + i * tr->type_size;
    switch (t) {
      case DType::Q8_0:
        quant_q8_0(x, b);
        break;
      case DType::Q4_0:
        quant_sym(x, b, 4);
        break;
      case DType::Q5_0:
        quant_sym(x, b, 5);
        break;
      case DType::Q4_1:
        quant_affine(x, b, 4);
        break;
      case DType::Q5_1:
        quant_affine(x, b, 5);
        break;
      default:
        break;
    }
  }
  return Status();
}

}  // namespace slm
