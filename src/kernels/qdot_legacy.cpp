// Dot kernels of the legacy weight family (F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_1, Q5_1): the
// scalar reference quantizers and tile kernels (the oracles), and run-time selection of AVX2.
#include "kernels/qdot.h"

#include <cmath>
#include <cstring>

#include "kernels/qdot_legacy_impl.h"
#include "kernels/simd.h"

// The AVX2 quantizers must match these bit for bit, so each multiply rounds on its own.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace slm {

namespace {

using legacy::clamp_act;
using legacy::k_block;

// ---- activation quantizers: d = amax / 127, q = round-to-nearest-even(x / d) ---------------

// One block: returns d and writes qs; *sum (if given) receives Σ qs.
float quantize_block(const float* x, int8_t* qs, int* sum) {
  float amax = 0;
  for (int j = 0; j < k_block; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  int s = 0;
  for (int j = 0; j < k_block; ++j) {
    const int q = static_cast<int>(std::nearbyint(clamp_act(x[j] * id)));
    qs[j] = static_cast<int8_t>(q);
    s += q;
  }
  if (sum) *sum = s;
  return d;
}

void quantize_q8_0_scalar(const float* x, void* a, int64_t n) {
  ActBlockQ8_0* b = static_cast<ActBlockQ8_0*>(a);
  for (int64_t i = 0; i < n / k_block; ++i) b[i].d = quantize_block(x + i * k_block, b[i].qs, nullptr);
}

void quantize_q8_1_scalar(const float* x, void* a, int64_t n) {
  ActBlockQ8_1* b = static_cast<ActBlockQ8_1*>(a);
  for (int64_t i = 0; i < n / k_block; ++i) {
    int sum = 0;
    b[i].d = quantize_block(x + i * k_block, b[i].qs, &sum);
    b[i].s = b[i].d * static_cast<float>(sum);
  }
}

// ---- weight blocks as integers -----------------------------------------------------------------

inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// The 32 integer quants of one weight block (offset already removed for Q4_0/Q5_0), its scale
// d and (Q4_1/Q5_1) its offset m: value = d * q + m.
struct IntBlock {
  int q[32];
  float d;
  float m;
};

void unpack_nibbles(const uint8_t* qs, uint32_t qh, int offset, int* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = (qs[j] & 0x0f) + static_cast<int>(((qh >> j) & 1) << 4) - offset;
    q[j + 16] = (qs[j] >> 4) + static_cast<int>(((qh >> (j + 16)) & 1) << 4) - offset;
  }
}

void unpack_block(DType t, const uint8_t* b, IntBlock* out) {
  out->d = half_at(b);
  out->m = 0;
  uint32_t qh = 0;
  switch (t) {
    case DType::Q8_0:
      for (int j = 0; j < 32; ++j) out->q[j] = static_cast<int8_t>(b[2 + j]);
      return;
    case DType::Q4_0:
      unpack_nibbles(b + 2, 0, 8, out->q);
      return;
    case DType::Q5_0:
      std::memcpy(&qh, b + 2, 4);
      unpack_nibbles(b + 6, qh, 16, out->q);
      return;
    case DType::Q4_1:
      out->m = half_at(b + 2);
      unpack_nibbles(b + 4, 0, 0, out->q);
      return;
    case DType::Q5_1:
      out->m = half_at(b + 2);
      std::memcpy(&qh, b + 4, 4);
      unpack_nibbles(b + 8, qh, 0, out->q);
      return;
    default:
      return;
  }
}

// ---- scalar tile kernels (oracles) -----------------------------------------------------------

// Per block: integer Σ q_w q_a, then acc += (d_w d_a) isum (+ m_w s_a for the affine types).
template <DType W, class Act>
void tile_quant_scalar(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba,
                       int nc, float* s, int64_t ls) {
  const size_t wbytes = static_cast<size_t>(dtype_traits(W)->type_size);
  const int64_t nb = n / k_block;
  for (int r = 0; r < nr; ++r) {
    const uint8_t* wr = static_cast<const uint8_t*>(w) + static_cast<size_t>(r) * bw;
    for (int c = 0; c < nc; ++c) {
      const Act* ac = reinterpret_cast<const Act*>(static_cast<const uint8_t*>(a) +
                                                   static_cast<size_t>(c) * ba);
      float acc = 0;
      for (int64_t i = 0; i < nb; ++i) {
        IntBlock blk;
        unpack_block(W, wr + static_cast<size_t>(i) * wbytes, &blk);
        int isum = 0;
        for (int j = 0; j < k_block; ++j) isum += blk.q[j] * ac[i].qs[j];
        acc += blk.d * ac[i].d * static_cast<float>(isum);
        if constexpr (sizeof(Act) == sizeof(ActBlockQ8_1)) acc += blk.m * ac[i].s;
      }
      s[c * ls + r] = acc;
    }
  }
}

inline float float_at(DType t, const uint8_t* p, int64_t k) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, p + 4 * k, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * k, 2);
  return t == DType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
}

template <DType W>
void tile_float_scalar(int64_t n, const void* w, size_t bw, int nr, const void* a, size_t ba,
                       int nc, float* s, int64_t ls) {
  for (int r = 0; r < nr; ++r) {
    const uint8_t* wr = static_cast<const uint8_t*>(w) + static_cast<size_t>(r) * bw;
    for (int c = 0; c < nc; ++c) {
      const uint8_t* ac = static_cast<const uint8_t*>(a) + static_cast<size_t>(c) * ba;
      float acc = 0;
      for (int64_t k = 0; k < n; ++k) acc += float_at(W, wr, k) * float_at(DType::F32, ac, k);
      s[c * ls + r] = acc;
    }
  }
}

const DotKernel k_scalar[] = {
    {DType::F32, ActType::f32, nullptr, &tile_float_scalar<DType::F32>, 1, 1, "scalar"},
    {DType::F16, ActType::f32, nullptr, &tile_float_scalar<DType::F16>, 1, 1, "scalar"},
    {DType::BF16, ActType::f32, nullptr, &tile_float_scalar<DType::BF16>, 1, 1, "scalar"},
    {DType::Q8_0, ActType::q8_0, &quantize_q8_0_scalar,
     &tile_quant_scalar<DType::Q8_0, ActBlockQ8_0>, 1, 1, "scalar"},
    {DType::Q4_0, ActType::q8_0, &quantize_q8_0_scalar,
     &tile_quant_scalar<DType::Q4_0, ActBlockQ8_0>, 1, 1, "scalar"},
    {DType::Q5_0, ActType::q8_0, &quantize_q8_0_scalar,
     &tile_quant_scalar<DType::Q5_0, ActBlockQ8_0>, 1, 1, "scalar"},
    {DType::Q4_1, ActType::q8_1, &quantize_q8_1_scalar,
     &tile_quant_scalar<DType::Q4_1, ActBlockQ8_1>, 1, 1, "scalar"},
    {DType::Q5_1, ActType::q8_1, &quantize_q8_1_scalar,
     &tile_quant_scalar<DType::Q5_1, ActBlockQ8_1>, 1, 1, "scalar"},
};

bool have_avx2() {
  static const bool ok = cpu_has_avx2_fma();
  return ok;
}

}  // namespace

const DotKernel* legacy_dot_kernel(DType w, bool simd) {
  if (simd && have_avx2()) {
    if (const DotKernel* k = legacy::avx2_kernel(w)) return k;
  }
  for (const DotKernel& k : k_scalar) {
    if (k.wtype == w) return &k;
  }
  return nullptr;
}

bool legacy_dequantize_fast(DType t, const void* src, float* dst, int64_t n) {
  return have_avx2() && legacy::avx2_dequantize(t, src, dst, n);
}

}  // namespace slm
