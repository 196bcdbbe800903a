// Legacy dot kernels (F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_1, Q5_1): SIMD vs scalar quantizers
// byte for byte, tiles vs a double-precision oracle built on dequantize_row, fast dequantizers.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <ctime>
#include <vector>

#include "kernels/qdot.h"
#include "kernels/quant.h"
#include "kernels/simd.h"

namespace slm {
namespace {

const DType k_types[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,
                         DType::Q4_0, DType::Q5_0, DType::Q4_1, DType::Q5_1};

bool is_float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

size_t row_bytes(DType t, int64_t n) {
  uint64_t rb = 0;
  EXPECT_TRUE(dtype_row_bytes(t, n, &rb));
  return static_cast<size_t>(rb);
}

std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// nr weight rows of n elements in type t, quantized from Gaussian floats with the reference
// quantizer, stored with row stride bw at an odd address (weights may be unaligned).
struct Rows {
  std::vector<uint8_t> buf;
  size_t bw = 0;
  const uint8_t* data() const { return buf.data() + 1; }
  uint8_t* data() { return buf.data() + 1; }
};

Rows make_rows(DType t, int nr, int64_t n, size_t pad, std::mt19937& rng) {
  Rows w;
  w.bw = row_bytes(t, n) + pad;
  w.buf.assign(w.bw * static_cast<size_t>(nr) + 1, 0xcd);
  for (int r = 0; r < nr; ++r) {
    // Rows of different magnitude, so the tile cannot mix rows up unnoticed.
    auto f = randn(static_cast<size_t>(n), rng, 0.5f + static_cast<float>(r));
    EXPECT_TRUE(quantize_row(t, f.data(), w.data() + static_cast<size_t>(r) * w.bw, n).ok());
  }
  return w;
}

// Activation rows for kernel k: floats x (nc rows of n) converted with k's quantizer.
struct Acts {
  std::vector<float> x;
  std::vector<uint8_t> buf;
  size_t ba = 0;
};

Acts make_acts(const DotKernel& k, int nc, int64_t n, std::mt19937& rng) {
  Acts a;
  a.x = randn(static_cast<size_t>(nc) * static_cast<size_t>(n), rng);
  for (int c = 0; c < nc; ++c) {  // columns of different magnitude, as the rows
    for (int64_t j = 0; j < n; ++j) a.x[static_cast<size_t>(c * n + j)] *= 1.0f + 0.25f * static_cast<float>(c);
  }
  a.ba = act_row_bytes(k.atype, n);
  a.buf.assign(a.ba * static_cast<size_t>(nc), 0);
  for (int c = 0; c < nc; ++c) {
    const float* xc = a.x.data() + static_cast<size_t>(c) * static_cast<size_t>(n);
    if (k.quantize_act) {
      k.quantize_act(xc, a.buf.data() + static_cast<size_t>(c) * a.ba, n);
    } else {
      std::memcpy(a.buf.data() + static_cast<size_t>(c) * a.ba, xc, static_cast<size_t>(n) * 4);
    }
  }
  return a;
}

// The values an activation row stands for, computed here from the block definitions.
std::vector<double> act_values(ActType t, const uint8_t* a, int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (t == ActType::f32) {
      float f;
      std::memcpy(&f, a + 4 * i, 4);
      v[static_cast<size_t>(i)] = f;
    } else {
      const size_t bs = t == ActType::q8_0 ? sizeof(ActBlockQ8_0) : sizeof(ActBlockQ8_1);
      const uint8_t* b = a + static_cast<size_t>(i / 32) * bs;
      float d;
      std::memcpy(&d, b, 4);
      const int8_t q = static_cast<int8_t>(b[bs - 32 + static_cast<size_t>(i % 32)]);
      v[static_cast<size_t>(i)] = static_cast<double>(d) * q;
    }
  }
  return v;
}

std::vector<double> weight_values(DType t, const uint8_t* w, int64_t n) {
  std::vector<float> f(static_cast<size_t>(n));
  dequantize_row(t, w, f.data(), n);
  return std::vector<double>(f.begin(), f.end());
}

double nmse(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? num / den : num;
}

// Runs k's tile on (nr x nc) with output stride ls; entries outside the tile must stay as
// they were (a sentinel).
std::vector<float> run_tile(const DotKernel& k, int64_t n, const Rows& w, int nr, const Acts& a,
                            int nc, int64_t ls) {
  std::vector<float> s(static_cast<size_t>(ls) * static_cast<size_t>(nc), -1234.5f);
  k.tile(n, w.data(), w.bw, nr, a.buf.data(), a.ba, nc, s.data(), ls);
  for (int c = 0; c < nc; ++c) {
    for (int64_t r = nr; r < ls; ++r) EXPECT_EQ(s[static_cast<size_t>(c * ls + r)], -1234.5f);
  }
  std::vector<float> out;
  for (int c = 0; c < nc; ++c) {
    for (int r = 0; r < nr; ++r) out.push_back(s[static_cast<size_t>(c * ls + r)]);
  }
  return out;
}

TEST(QdotLegacy, RegistryHasEveryType) {
  ASSERT_TRUE(cpu_has_avx2_fma()) << "this suite expects an AVX2/FMA/F16C machine";
  for (DType t : k_types) {
    const DotKernel* s = dot_kernel(t, false);
    const DotKernel* v = dot_kernel(t, true);
    ASSERT_TRUE(s && v) << dtype_name(t);
    EXPECT_EQ(s->wtype, t);
    EXPECT_EQ(v->wtype, t);
    EXPECT_STREQ(s->isa, "scalar");
    EXPECT_STREQ(v->isa, "avx2");
    EXPECT_EQ(s->atype, v->atype);
    const ActType want = is_float_type(t)                            ? ActType::f32
                         : (t == DType::Q4_1 || t == DType::Q5_1) ? ActType::q8_1
                                                                     : ActType::q8_0;
    EXPECT_EQ(v->atype, want) << dtype_name(t);
    EXPECT_EQ(v->quantize_act == nullptr, want == ActType::f32);
    EXPECT_GE(v->tile_rows, 1);
    EXPECT_GE(v->tile_cols, 1);
    EXPECT_EQ(dot_kernel(t, true), v);  // a static, not rebuilt per call
  }
  EXPECT_EQ(dot_kernel(DType::Q8_K, true), nullptr);
  EXPECT_EQ(dot_kernel(DType::I32, false), nullptr);
}

// Input blocks that exercise the quantizer's edges: zeros, exact .5 ties (amax 127 makes
// d = 1), tiny and huge magnitudes, denormals, and non-finite values.
std::vector<float> quantizer_inputs(std::mt19937& rng) {
  std::vector<float> x = randn(32 * 40, rng, 3.0f);
  auto block = [&](int i) { return x.data() + 32 * i; };
  std::fill(block(0), block(1), 0.0f);
  for (int j = 0; j < 32; ++j) block(1)[j] = static_cast<float>(j) - 15.5f;  // ties at d = 1
  block(1)[0] = 127.0f;
  for (int j = 0; j < 32; ++j) block(2)[j] *= 1e-30f;
  for (int j = 0; j < 32; ++j) block(3)[j] *= 1e30f;
  for (int j = 0; j < 32; ++j) block(4)[j] = (j % 2 ? 1 : -1) * 1e-40f * static_cast<float>(j);
  block(5)[3] = INFINITY;
  block(6)[7] = -INFINITY;
  block(7)[9] = NAN;
  block(8)[0] = -0.0f;
  for (int j = 0; j < 32; ++j) block(9)[j] = -2.5f * static_cast<float>(j % 4);  // ties
  block(9)[31] = -127.0f;
  return x;
}

TEST(QdotLegacy, SimdActivationQuantizerIsBitExact) {
  std::mt19937 rng(11);
  const std::vector<float> x = quantizer_inputs(rng);
  const int64_t n = static_cast<int64_t>(x.size());
  for (DType t : {DType::Q8_0, DType::Q4_1}) {
    const DotKernel* s = dot_kernel(t, false);
    const DotKernel* v = dot_kernel(t, true);
    const size_t bytes = act_row_bytes(s->atype, n);
    std::vector<uint8_t> a(bytes, 0), b(bytes, 0xff);
    s->quantize_act(x.data(), a.data(), n);
    v->quantize_act(x.data(), b.data(), n);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), bytes), 0) << dtype_name(t);
    // The blocks follow the definition: d = amax / 127, |d q - x| <= d / 2 for finite blocks,
    // and s = d Σ q for q8_1.
    const size_t bs = bytes / static_cast<size_t>(n / 32);
    for (int64_t i = 0; i < n / 32; ++i) {
      const float* xb = x.data() + 32 * i;
      bool finite = true;
      float amax = 0;
      for (int j = 0; j < 32; ++j) {
        finite = finite && std::isfinite(xb[j]);
        amax = std::max(amax, std::fabs(xb[j]));
      }
      if (!finite) continue;
      const uint8_t* blk = a.data() + static_cast<size_t>(i) * bs;
      float d;
      std::memcpy(&d, blk, 4);
      EXPECT_EQ(d, amax / 127.0f) << "block " << i;
      const int8_t* qs = reinterpret_cast<const int8_t*>(blk + bs - 32);
      int sum = 0;
      for (int j = 0; j < 32; ++j) {
        sum += qs[j];
        if (d > 1e-37f) {  // 1/d is finite
          EXPECT_LE(std::fabs(static_cast<double>(d) * qs[j] - xb[j]), 0.5000001 * d)
              << "block " << i << " elem " << j;
        }
      }
      if (i == 1) {
        EXPECT_EQ(qs[1], -14);  // -14.5 rounds to even
      }
      if (i == 9) {
        EXPECT_EQ(qs[1], -2);  // -2.5 rounds to even
      }
      if (s->atype == ActType::q8_1) {
        float sa;
        std::memcpy(&sa, blk + 4, 4);
        EXPECT_EQ(sa, d * static_cast<float>(sum));
      }
    }
  }
}

// Random ragged tiles: SIMD vs scalar (NMSE), both vs the double oracle (rigorous float
// summation bound), with odd strides and unaligned weights.
TEST(QdotLegacy, TilesMatchScalarAndOracle) {
  std::mt19937 rng(5);
  for (DType t : k_types) {
    const DotKernel* ks = dot_kernel(t, false);
    const DotKernel* kv = dot_kernel(t, true);
    for (int trial = 0; trial < 12; ++trial) {
      // Up to 20 rows: several eight-row groups of the Q4_0/Q4_1 kernel plus a short one.
      const int nr = 1 + static_cast<int>(rng() % 20), nc = 1 + static_cast<int>(rng() % 6);
      int64_t n = 32 * (1 + static_cast<int64_t>(rng() % 128));
      if (is_float_type(t) && trial % 2) n += 1 + static_cast<int64_t>(rng() % 31);
      const Rows w = make_rows(t, nr, n, trial % 3, rng);
      const Acts a = make_acts(*kv, nc, n, rng);
      const int64_t ls = nr + trial % 3;
      const auto sv = run_tile(*kv, n, w, nr, a, nc, ls);
      const auto ss = run_tile(*ks, n, w, nr, a, nc, ls);
      std::vector<double> ref, ss_d(ss.begin(), ss.end());
      std::vector<double> bound;
      for (int c = 0; c < nc; ++c) {
        const auto av = act_values(kv->atype, a.buf.data() + static_cast<size_t>(c) * a.ba, n);
        for (int r = 0; r < nr; ++r) {
          const auto wv = weight_values(t, w.data() + static_cast<size_t>(r) * w.bw, n);
          double dot = 0, mag = 0;
          for (size_t j = 0; j < wv.size(); ++j) {
            dot += wv[j] * av[j];
            mag += std::fabs(wv[j] * av[j]);
          }
          ref.push_back(dot);
          // Float summation of N terms errs by at most (N + 2) u Σ|terms| (u = 2^-24); a block
          // term d_w d_a isum carries two more roundings, the m s_a term three.
          bound.push_back((static_cast<double>(n) + 8) * std::ldexp(1.0, -24) * mag);
        }
      }
      const std::string where = std::string(dtype_name(t)) + " nr=" + std::to_string(nr) +
                                " nc=" + std::to_string(nc) + " n=" + std::to_string(n);
      EXPECT_LT(nmse(sv, ss_d), 1e-7) << where;
      for (size_t i = 0; i < ref.size(); ++i) {
        EXPECT_LE(std::fabs(ss[i] - ref[i]), bound[i]) << where << " scalar out " << i;
        EXPECT_LE(std::fabs(sv[i] - ref[i]), bound[i]) << where << " simd out " << i;
      }
    }
  }
}

// A (row, column) result must not depend on the other columns of the call nor on the tile
// height: the server's batched decode relies on it (a sequence's tokens are the same alone or
// beside others). Each column alone (nc = 1, the decode path) vs all columns in one call, and
// each row alone vs all rows, bit for bit.
TEST(QdotLegacy, ResultsDoNotDependOnTileShape) {
  std::mt19937 rng(13);
  for (DType t : k_types) {
    const DotKernel* kv = dot_kernel(t, true);
    for (int trial = 0; trial < 6; ++trial) {
      const int nr = 1 + static_cast<int>(rng() % 19), nc = 2 + static_cast<int>(rng() % 6);
      int64_t n = 32 * (1 + static_cast<int64_t>(rng() % 64));
      if (is_float_type(t) && trial % 2) n += 1 + static_cast<int64_t>(rng() % 31);
      const Rows w = make_rows(t, nr, n, trial % 3, rng);
      const Acts a = make_acts(*kv, nc, n, rng);
      const auto all = run_tile(*kv, n, w, nr, a, nc, nr);
      for (int c = 0; c < nc; ++c) {
        std::vector<float> one(static_cast<size_t>(nr));
        kv->tile(n, w.data(), w.bw, nr, a.buf.data() + static_cast<size_t>(c) * a.ba, a.ba, 1,
                 one.data(), nr);
        for (int r = 0; r < nr; ++r) {
          float single = 0;
          kv->tile(n, w.data() + static_cast<size_t>(r) * w.bw, w.bw, 1,
                   a.buf.data() + static_cast<size_t>(c) * a.ba, a.ba, 1, &single, 1);
          const float both = all[static_cast<size_t>(c * nr + r)];
          EXPECT_EQ(std::memcmp(&one[static_cast<size_t>(r)], &both, 4), 0)
              << dtype_name(t) << " nr=" << nr << " nc=" << nc << " r=" << r << " c=" << c;
          EXPECT_EQ(std::memcmp(&single, &both, 4), 0)
              << dtype_name(t) << " row alone, nr=" << nr << " r=" << r << " c=" << c;
        }
      }
    }
  }
}

// The eight-row Q4_0/Q4_1/Q5_0/Q5_1 kernel does the scalar reference's arithmetic exactly (integer block
// sums, then d_w * d_a * isum added with separate roundings): equal bit for bit on any input.
TEST(QdotLegacy, EightRowKernelIsBitExactWithScalar) {
  std::mt19937 rng(17);
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
    const DotKernel* ks = dot_kernel(t, false);
    const DotKernel* kv = dot_kernel(t, true);
    for (int trial = 0; trial < 8; ++trial) {
      const int nr = 1 + static_cast<int>(rng() % 25), nc = 1 + static_cast<int>(rng() % 5);
      const int64_t n = 32 * (1 + static_cast<int64_t>(rng() % 100));
      const Rows w = make_rows(t, nr, n, trial % 3, rng);
      const Acts a = make_acts(*kv, nc, n, rng);
      const auto sv = run_tile(*kv, n, w, nr, a, nc, nr + 1);
      const auto ss = run_tile(*ks, n, w, nr, a, nc, nr + 1);
      ASSERT_EQ(sv.size(), ss.size());
      EXPECT_EQ(std::memcmp(sv.data(), ss.data(), sv.size() * 4), 0)
          << dtype_name(t) << " nr=" << nr << " nc=" << nc << " n=" << n;
    }
  }
}

// Weights and activations whose scales are powers of two and whose quants are small, so every
// partial sum is exact in float: then SIMD and scalar must agree bit for bit, which shows the
// integer path computes exactly Σ q_w q_a (and the float path exactly Σ w a).
TEST(QdotLegacy, ExactInputsGiveBitEqualResults) {
  std::mt19937 rng(9);
  const float pow2[] = {0.5f, 1.0f, 2.0f};
  for (DType t : k_types) {
    const DotKernel* ks = dot_kernel(t, false);
    const DotKernel* kv = dot_kernel(t, true);
    const size_t tb = static_cast<size_t>(dtype_traits(t)->type_size);
    for (int trial = 0; trial < 6; ++trial) {
      const int nr = 1 + static_cast<int>(rng() % 7), nc = 1 + static_cast<int>(rng() % 6);
      const int64_t n = 32 * (1 + static_cast<int64_t>(rng() % 16));
      Rows w;
      w.bw = row_bytes(t, n);
      w.buf.assign(w.bw * static_cast<size_t>(nr) + 1, 0);
      for (int r = 0; r < nr; ++r) {
        uint8_t* row = w.data() + static_cast<size_t>(r) * w.bw;
        if (is_float_type(t)) {
          for (int64_t j = 0; j < n; ++j) {
            const float v = static_cast<float>(static_cast<int>(rng() % 33) - 16) * 0.25f;
            if (t == DType::F32) {
              std::memcpy(row + 4 * j, &v, 4);
            } else {
              const uint16_t h = t == DType::F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
              std::memcpy(row + 2 * j, &h, 2);
            }
          }
          continue;
        }
        for (size_t i = 0; i < static_cast<size_t>(n / 32); ++i) {
          uint8_t* b = row + i * tb;
          for (size_t j = 0; j < tb; ++j) b[j] = static_cast<uint8_t>(rng());
          const uint16_t d = fp32_to_fp16(pow2[rng() % 3]);
          std::memcpy(b, &d, 2);
          if (t == DType::Q4_1 || t == DType::Q5_1) {
            const uint16_t m = fp32_to_fp16(static_cast<float>(static_cast<int>(rng() % 9) - 4));
            std::memcpy(b + 2, &m, 2);
          }
          if (t == DType::Q8_0) {  // |q| <= 31, plus the extremes -128 and 127
            for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int>(rng() % 63) - 31);
            if (i == 0) b[2] = 0x80, b[3] = 127;
          }
        }
      }
      Acts a;
      a.ba = act_row_bytes(kv->atype, n) + 8;  // a padded activation stride
      a.buf.assign(a.ba * static_cast<size_t>(nc), 0);
      for (int c = 0; c < nc; ++c) {
        uint8_t* row = a.buf.data() + static_cast<size_t>(c) * a.ba;
        if (kv->atype == ActType::f32) {
          for (int64_t j = 0; j < n; ++j) {
            const float v = static_cast<float>(static_cast<int>(rng() % 33) - 16);
            std::memcpy(row + 4 * j, &v, 4);
          }
          continue;
        }
        const size_t bs = kv->atype == ActType::q8_0 ? sizeof(ActBlockQ8_0) : sizeof(ActBlockQ8_1);
        for (size_t i = 0; i < static_cast<size_t>(n / 32); ++i) {
          uint8_t* b = row + i * bs;
          const float d = pow2[rng() % 3];
          std::memcpy(b, &d, 4);
          int sum = 0;
          for (int j = 0; j < 32; ++j) {
            const int q = static_cast<int>(rng() % 15) - 7;
            b[bs - 32 + static_cast<size_t>(j)] = static_cast<uint8_t>(static_cast<int8_t>(q));
            sum += q;
          }
          if (bs == sizeof(ActBlockQ8_1)) {
            const float s = d * static_cast<float>(sum);
            std::memcpy(b + 4, &s, 4);
          }
        }
      }
      const auto sv = run_tile(*kv, n, w, nr, a, nc, nr);
      const auto ss = run_tile(*ks, n, w, nr, a, nc, nr);
      for (size_t i = 0; i < sv.size(); ++i) {
        EXPECT_EQ(sv[i], ss[i]) << dtype_name(t) << " n=" << n << " out " << i;
      }
      // And both equal the exact value.
      for (int c = 0; c < nc; ++c) {
        const auto av = act_values(kv->atype, a.buf.data() + static_cast<size_t>(c) * a.ba, n);
        for (int r = 0; r < nr; ++r) {
          const auto wv = weight_values(t, w.data() + static_cast<size_t>(r) * w.bw, n);
          double dot = 0;
          for (size_t j = 0; j < wv.size(); ++j) dot += wv[j] * av[j];
          EXPECT_EQ(static_cast<double>(ss[static_cast<size_t>(c * nr + r)]), dot) << dtype_name(t);
        }
      }
    }
  }
}

// The whole pipeline (quantize the activation, then dot) against the float dot of the
// dequantized weights with the original x, in double. 8-bit activations with per-block amax
// scaling err by about d/sqrt(12) per element; measured NMSE is ~1e-5, bound 1e-4.
TEST(QdotLegacy, PipelineMatchesFloatDot) {
  std::mt19937 rng(3);
  for (DType t : k_types) {
    const DotKernel* kv = dot_kernel(t, true);
    const int nr = 16, nc = 3;
    const int64_t n = 2048;
    const Rows w = make_rows(t, nr, n, 0, rng);
    const Acts a = make_acts(*kv, nc, n, rng);
    const auto sv = run_tile(*kv, n, w, nr, a, nc, nr);
    std::vector<double> ref;
    for (int c = 0; c < nc; ++c) {
      for (int r = 0; r < nr; ++r) {
        const auto wv = weight_values(t, w.data() + static_cast<size_t>(r) * w.bw, n);
        double dot = 0;
        for (size_t j = 0; j < wv.size(); ++j) dot += wv[j] * a.x[static_cast<size_t>(c * n) + j];
        ref.push_back(dot);
      }
    }
    const double e = nmse(sv, ref);
    EXPECT_LT(e, is_float_type(t) ? 1e-10 : 1e-4) << dtype_name(t);
    std::printf("pipeline NMSE %-5s %.3g\n", dtype_name(t), e);
  }
}

TEST(QdotLegacy, FastDequantizeIsBitExact) {
  std::mt19937 rng(21);
  for (DType t : k_types) {
    for (int64_t n : {int64_t{32}, int64_t{96}, int64_t{4096}}) {
      // Valid blocks from the reference quantizer, then raw random bytes (NaN/inf scales,
      // any quant bits): both must match dequantize_row bit for bit.
      for (int raw = 0; raw < 2; ++raw) {
        Rows w = make_rows(t, 1, n, 0, rng);
        if (raw) {
          for (size_t j = 0; j < w.bw; ++j) w.data()[j] = static_cast<uint8_t>(rng());
        }
        std::vector<float> a(static_cast<size_t>(n), 1.0f), b(static_cast<size_t>(n), 2.0f);
        dequantize_row(t, w.data(), a.data(), n);
        dequantize_row_fast(t, w.data(), b.data(), n);
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
            << dtype_name(t) << " n=" << n << " raw=" << raw;
      }
    }
  }
  // Every half and bfloat16 bit pattern, at an odd length (SIMD body plus scalar tail).
  for (DType t : {DType::F16, DType::BF16}) {
    std::vector<uint16_t> h(65536 + 5);
    for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i * 40503u);
    const int64_t n = static_cast<int64_t>(h.size());
    std::vector<float> a(h.size()), b(h.size());
    dequantize_row(t, h.data(), a.data(), n);
    dequantize_row_fast(t, h.data(), b.data(), n);
    size_t bad = 0;
    for (size_t i = 0; i < h.size(); ++i) bad += std::memcmp(&a[i], &b[i], 4) != 0;
    EXPECT_EQ(bad, 0u) << dtype_name(t);
  }
}

// ---- microbenchmark (run with --gtest_also_run_disabled_tests --gtest_filter=*Bench*) ------

// Thread CPU time, not wall time: the build machine is shared, so wall time measures the load.
struct ThreadClock {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<ThreadClock>;
  static time_point now() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return time_point(duration(int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec));
  }
};

TEST(QdotLegacy, DISABLED_Bench) {
  using clock = ThreadClock;
  std::mt19937 rng(1);
  for (DType t : k_types) {
    const DotKernel* k = dot_kernel(t, true);
    // Decode: a matrix larger than L3 (32 MiB) streamed once per call at nc = 1.
    const int64_t n = 4096;
    const size_t rb = row_bytes(t, n);
    const int rows = static_cast<int>(std::max<size_t>(4096, (96u << 20) / rb));
    std::vector<float> f = randn(static_cast<size_t>(n), rng);
    std::vector<uint8_t> w(rb * static_cast<size_t>(rows));
    for (int r = 0; r < rows; ++r) {
      EXPECT_TRUE(quantize_row(t, f.data(), w.data() + static_cast<size_t>(r) * rb, n).ok());
    }
    Acts a = make_acts(*k, 4, n, rng);
    std::vector<float> s(static_cast<size_t>(rows) * 4);
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = clock::now();
      k->tile(n, w.data(), rb, rows, a.buf.data(), a.ba, 1, s.data(), rows);
      best = std::min(best, std::chrono::duration<double>(clock::now() - t0).count());
    }
    const double gbs = static_cast<double>(w.size()) / best / 1e9;
    // Prompt: about 256 KiB of weight rows (in L2) x nc = 4 columns, repeated.
    const int pr = static_cast<int>(std::clamp<size_t>((256u << 10) / rb, 8, 64));
    const int iters = 40;
    double dt = 1e30;
    for (int rep = 0; rep < 7; ++rep) {
      const auto t0 = clock::now();
      for (int it = 0; it < iters; ++it) {
        k->tile(n, w.data(), rb, pr, a.buf.data(), a.ba, 4, s.data(), pr);
      }
      dt = std::min(dt, std::chrono::duration<double>(clock::now() - t0).count());
    }
    const double gmac = static_cast<double>(pr) * 4 * static_cast<double>(n) * iters / dt / 1e9;
    std::printf("%-5s decode nc=1: %6.2f GB/s (%d x %lld, %.1f MiB)   nc=4 in L2: %6.2f GMAC/s\n",
                dtype_name(t), gbs, rows, static_cast<long long>(n),
                static_cast<double>(w.size()) / (1 << 20), gmac);
  }
}

}  // namespace
}  // namespace slm
