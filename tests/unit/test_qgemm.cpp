// The int8 GEMM (kernels/qgemm.h) for Q8_0 / Q4_0 weights: AVX2 kernels against the scalar
// reference (bit for bit), exact integer sums against an int64 oracle, float results against a
// double-precision oracle on the dequantized operands, and matmul_gemm's use of it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "kernels/qdot.h"
#include "kernels/qgemm.h"
#include "kernels/quant.h"

namespace slm {
namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double nmse(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i]))
      return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den > 0 ? num / den : num;
}

size_t block_bytes(DType t) {
  return t == DType::Q8_0 ? 34 : 18;
}

// Weight bytes with `offset` spare leading bytes, so the rows can start at any address.
struct Weight {
  std::vector<uint8_t> bytes;
  TensorView view;
};

Weight wrap(DType dt, int64_t in, int64_t out, size_t offset) {
  uint64_t rb = 0;
  EXPECT_TRUE(dtype_row_bytes(dt, in, &rb));
  Weight w;
  w.bytes.assign(rb * static_cast<uint64_t>(out) + offset, 0);
  w.view.name = std::string("w.") + dtype_name(dt);
  w.view.dtype = dt;
  w.view.n_dims = 2;
  w.view.ne[0] = in;
  w.view.ne[1] = out;
  w.view.data = w.bytes.data() + offset;
  w.view.nbytes = rb * static_cast<uint64_t>(out);
  return w;
}

// Gaussian rows through the reference quantizer.
Weight make_weight(DType dt, int64_t in, int64_t out, uint32_t seed, size_t offset = 0) {
  Weight w = wrap(dt, in, out, offset);
  auto f = randn(static_cast<size_t>(in * out), seed);
  auto* data = const_cast<uint8_t*>(static_cast<const uint8_t*>(w.view.data));
  for (int64_t r = 0; r < out; ++r) {
    EXPECT_TRUE(quantize_row(dt, f.data() + r * in, data + r * w.view.row_bytes(), in).ok());
  }
  return w;
}

// Activations quantized by the scalar reference quantizer of the dot kernels.
std::vector<ActBlockQ8_0> quantize_acts(const float* x, int64_t T, int64_t in) {
  std::vector<ActBlockQ8_0> a(static_cast<size_t>(T * in / 32));
  const DotKernel* k = dot_kernel(DType::Q8_0, /*simd=*/false);
  for (int64_t t = 0; t < T; ++t) k->quantize_act(x + t * in, a.data() + t * (in / 32), in);
  return a;
}

// Signed integer quant j of a weight block (Q4_0: nibble - 8), decoded from the GGUF layout.
int weight_quant(DType dt, const uint8_t* blk, int j) {
  if (dt == DType::Q8_0) return static_cast<int8_t>(blk[2 + j]);
  const uint8_t b = blk[2 + (j % 16)];
  return (j < 16 ? (b & 0x0f) : (b >> 4)) - 8;
}

double weight_scale(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return fp16_to_fp32(h);
}

// ---- SIMD against the scalar reference --------------------------------------------------------

void expect_bit_equal(const std::vector<float>& a, const std::vector<float>& b,
                      const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && bad++ < 3) {
      ADD_FAILURE() << what << " element " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  EXPECT_EQ(bad, 0u) << what;
  EXPECT_LT(nmse(a.data(), b.data(), a.size()), 1e-7) << what;
}

TEST(Qgemm, SimdMatchesScalarReferenceRaggedShapes) {
  // Without AVX2 both calls run the reference (qgemm_has_simd() is false); CI has AVX2.
  ThreadPool pool(2);
  uint32_t seed = 1;
  struct Shape {
    int64_t in, out, T;
  };
  // K = 1056 and 4096 cross the kernel's 1024-element K chunks; out = 1, 7, 9, 13, 17, 24, 70
  // leave ragged 16-row panels (and 8-row halves); T = 1..9 and 130 the token remainders of
  // the 2- and 3-token tiles.
  const Shape shapes[] = {{32, 1, 1},    {32, 16, 4}, {64, 7, 3},    {96, 9, 5},   {160, 13, 9},
                          {1024, 17, 2}, {64, 24, 8}, {1056, 70, 7}, {4096, 9, 5}, {256, 70, 130}};
  for (DType dt : {DType::Q8_0, DType::Q4_0}) {
    for (const Shape& s : shapes) {
      for (size_t offset : {size_t{0}, size_t{3}}) {
        Weight w = make_weight(dt, s.in, s.out, seed++, offset);
        auto x = randn(static_cast<size_t>(s.T * s.in), seed++);
        auto a = quantize_acts(x.data(), s.T, s.in);
        std::vector<float> ys(static_cast<size_t>(s.T * s.out), NAN), y1 = ys, y2 = ys;
        ASSERT_TRUE(qgemm_quantized(w.view, a.data(), s.T, ys.data(), nullptr, false).ok());
        ASSERT_TRUE(qgemm_quantized(w.view, a.data(), s.T, y1.data(), nullptr, true).ok());
        ASSERT_TRUE(qgemm_quantized(w.view, a.data(), s.T, y2.data(), &pool, true).ok());
        const std::string what = std::string(dtype_name(dt)) + " in=" + std::to_string(s.in) +
                                 " out=" + std::to_string(s.out) + " T=" + std::to_string(s.T) +
                                 " offset=" + std::to_string(offset);
        expect_bit_equal(y1, ys, what + " (1 thread)");
        expect_bit_equal(y2, ys, what + " (2 threads)");
      }
    }
  }
}

// Unit scales make every output an integer: with K <= 1024 every partial sum is below
// 1024 * 128 * 127 < 2^24, so the float result is exact and must equal the int64 oracle. The
// quants include the extremes that would overflow int16 in a careless kernel: Q8_0's -128
// and, for Q4_0, long runs of 15 (and 0, i.e. -8) against ±127.
TEST(Qgemm, IntegerSumsExactWithUnitScales) {
  ThreadPool pool(2);
  std::mt19937 rng(7);
  const uint16_t one = 0x3C00;  // 1.0 in fp16
  for (DType dt : {DType::Q8_0, DType::Q4_0}) {
    for (int64_t in : {32, 288, 1024}) {
      const int64_t out = 11, T = 6, nb = in / 32;
      Weight w = wrap(dt, in, out, 1);
      auto* data = const_cast<uint8_t*>(static_cast<const uint8_t*>(w.view.data));
      for (int64_t r = 0; r < out; ++r) {
        for (int64_t b = 0; b < nb; ++b) {
          uint8_t* blk = data + r * w.view.row_bytes() + b * block_bytes(dt);
          std::memcpy(blk, &one, 2);
          for (size_t j = 2; j < block_bytes(dt); ++j) {
            // Rows 0-2 hold the extremes (Q8_0: -128 / 127; Q4_0: 15|15 / 0|0), the rest random.
            blk[j] = r == 0   ? 0x80
                     : r == 1 ? 0x7F
                     : r == 2 ? (dt == DType::Q8_0 ? 0x81 : 0xFF)
                     : r == 3 ? 0x00
                              : static_cast<uint8_t>(rng());
          }
        }
      }
      std::vector<ActBlockQ8_0> a(static_cast<size_t>(T * nb));
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t b = 0; b < nb; ++b) {
          ActBlockQ8_0& blk = a[t * nb + b];
          blk.d = 1.0f;
          for (int j = 0; j < 32; ++j) {
            const int v = t == 0 ? 127 : t == 1 ? -127 : static_cast<int>(rng() % 255) - 127;
            blk.qs[j] = static_cast<int8_t>(v);
          }
        }
      }
      std::vector<float> ys(static_cast<size_t>(T * out)), y1 = ys, y2 = ys;
      ASSERT_TRUE(qgemm_quantized(w.view, a.data(), T, ys.data(), nullptr, false).ok());
      ASSERT_TRUE(qgemm_quantized(w.view, a.data(), T, y1.data(), nullptr, true).ok());
      ASSERT_TRUE(qgemm_quantized(w.view, a.data(), T, y2.data(), &pool, true).ok());
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t r = 0; r < out; ++r) {
          int64_t exact = 0;
          for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* blk = data + r * w.view.row_bytes() + b * block_bytes(dt);
            for (int j = 0; j < 32; ++j) exact += weight_quant(dt, blk, j) * a[t * nb + b].qs[j];
          }
          const float want = static_cast<float>(exact);
          ASSERT_EQ(static_cast<double>(want), static_cast<double>(exact));  // representable
          const size_t i = static_cast<size_t>(t * out + r);
          EXPECT_EQ(ys[i], want) << dtype_name(dt) << " scalar in=" << in << " t=" << t
                                 << " r=" << r;
          EXPECT_EQ(y1[i], want) << dtype_name(dt) << " simd in=" << in << " t=" << t << " r=" << r;
          EXPECT_EQ(y2[i], want) << dtype_name(dt) << " threads in=" << in << " t=" << t
                                 << " r=" << r;
        }
      }
    }
  }
}

// Against double precision on the dequantized operands (d_w q_w) · (d_a q_a): the kernel's
// float work is one product of scales and one fma per block, so the error is at most about
// (blocks + 2) units of roundoff (2^-24) times Σ_b |d_w d_a Σ q_w q_a|.
TEST(Qgemm, WithinFloatBoundOfDoubleOracle) {
  ThreadPool pool(2);
  uint32_t seed = 900;
  for (DType dt : {DType::Q8_0, DType::Q4_0}) {
    for (int64_t in : {32, 800, 4096}) {
      const int64_t out = 10, T = 5, nb = in / 32;
      Weight w = make_weight(dt, in, out, seed++, 1);
      auto x = randn(static_cast<size_t>(T * in), seed++);
      auto a = quantize_acts(x.data(), T, in);
      std::vector<float> y(static_cast<size_t>(T * out));
      ASSERT_TRUE(qgemm_quantized(w.view, a.data(), T, y.data(), &pool).ok());
      const auto* data = static_cast<const uint8_t*>(w.view.data);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t r = 0; r < out; ++r) {
          double exact = 0, magnitude = 0;
          for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* blk = data + r * w.view.row_bytes() + b * block_bytes(dt);
            const ActBlockQ8_0& ab = a[t * nb + b];
            double block = 0;
            for (int j = 0; j < 32; ++j) {
              block += (weight_scale(blk) * weight_quant(dt, blk, j)) *
                       (static_cast<double>(ab.d) * ab.qs[j]);
            }
            exact += block;
            magnitude += std::fabs(block);
          }
          const double bound = (static_cast<double>(nb) + 2) * std::ldexp(1.0, -24) * magnitude;
          EXPECT_LE(std::fabs(y[t * out + r] - exact), bound)
              << dtype_name(dt) << " in=" << in << " t=" << t << " r=" << r;
        }
      }
    }
  }
}

// ---- the float entry points ------------------------------------------------------------------

// qgemm quantizes with the dot kernels' quantizer (SIMD and scalar agree bit for bit), so it
// equals qgemm_quantized on activations from the scalar quantizer; matmul_gemm hands Q8_0 /
// Q4_0 to it on AVX2 CPUs. Against matmul_ref (F32 activations, double accumulation) the
// difference is the 8-bit activation rounding: NMSE about 3e-5 on Gaussian data, below 1e-4.
TEST(Qgemm, FloatEntryPointsAndMatmulGemm) {
  ThreadPool pool(2);
  uint32_t seed = 50;
  for (DType dt : {DType::Q8_0, DType::Q4_0}) {
    for (int64_t T : {1, 33, 130}) {
      Weight w = make_weight(dt, 768, 70, seed++);
      const int64_t in = 768, out = 70;
      auto x = randn(static_cast<size_t>(T * in), seed++);
      auto a = quantize_acts(x.data(), T, in);
      std::vector<float> yq(static_cast<size_t>(T * out), NAN), yf = yq, yg = yq, yr = yq;
      ASSERT_TRUE(qgemm_quantized(w.view, a.data(), T, yq.data(), nullptr, false).ok());
      ASSERT_TRUE(qgemm(w.view, x.data(), T, yf.data(), &pool).ok());
      ASSERT_TRUE(matmul_gemm(w.view, x.data(), T, yg.data(), &pool).ok());
      ASSERT_TRUE(matmul_ref(w.view, x.data(), T, yr.data()).ok());
      const std::string what = std::string(dtype_name(dt)) + " T=" + std::to_string(T);
      expect_bit_equal(yf, yq, what + " qgemm vs quantized reference");
      if (qgemm_has_simd()) expect_bit_equal(yg, yf, what + " matmul_gemm vs qgemm");
      EXPECT_LT(nmse(yf.data(), yr.data(), yr.size()), 1e-4) << what;
      EXPECT_GT(nmse(yf.data(), yr.data(), yr.size()), 0.0) << what << " (8-bit activations)";
    }
  }
}

TEST(Qgemm, DegenerateSizes) {
  Weight w = make_weight(DType::Q4_0, 64, 9, 3);
  std::vector<float> x(64 * 2, 1.0f), y(18, 5.0f);
  ASSERT_TRUE(qgemm(w.view, x.data(), 0, y.data(), nullptr).ok());  // T = 0 writes nothing
  EXPECT_EQ(y[0], 5.0f);
  Weight empty = wrap(DType::Q8_0, 0, 3, 0);
  ASSERT_TRUE(qgemm(empty.view, x.data(), 2, y.data(), nullptr).ok());  // in = 0: zeros
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], 0.0f);
  Weight no_rows = wrap(DType::Q8_0, 64, 0, 0);
  ASSERT_TRUE(qgemm(no_rows.view, x.data(), 2, y.data(), nullptr).ok());
}

TEST(Qgemm, RejectsBadWeights) {
  std::vector<float> x(64, 0.0f), y(64);
  Weight f16 = wrap(DType::F16, 32, 2, 0);
  Status s = qgemm(f16.view, x.data(), 1, y.data(), nullptr);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("w.F16"), std::string::npos) << s.message();
  Weight w3 = make_weight(DType::Q8_0, 32, 2, 1);
  w3.view.ne[1] = 1;
  w3.view.ne[2] = 2;
  EXPECT_FALSE(qgemm(w3.view, x.data(), 1, y.data(), nullptr).ok());
  Weight short_rows = make_weight(DType::Q4_0, 64, 2, 1);
  short_rows.view.nbytes -= 1;  // rows no longer whole blocks
  s = qgemm(short_rows.view, x.data(), 1, y.data(), nullptr);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blocks"), std::string::npos) << s.message();
  EXPECT_FALSE(qgemm_supports(DType::Q4_K));
  EXPECT_TRUE(qgemm_supports(DType::Q8_0) && qgemm_supports(DType::Q4_0));
}

}  // namespace
}  // namespace slm
