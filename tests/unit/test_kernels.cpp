// Kernel parity: every SIMD/threaded kernel against its scalar reference on odd sizes, plus
// rope and softmax against formulas computed here in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/qdot.h"
#include "kernels/quant.h"

namespace slm {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// max|a-b| / max|b|
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::fabs(static_cast<double>(b[i])));
  }
  return den > 0 ? num / den : num;
}

struct Weight {
  std::string bytes;
  TensorView view;
};

Weight make_weight(DType dt, int64_t in, int64_t out, uint32_t seed) {
  auto f = randn(static_cast<size_t>(in * out), seed);
  Weight w;
  if (dt == DType::F32) {
    w.bytes.assign(reinterpret_cast<const char*>(f.data()), f.size() * 4);
  } else if (dt != DType::F16 && dt != DType::BF16) {
    uint64_t rb = 0;
    EXPECT_TRUE(dtype_row_bytes(dt, in, &rb));
    w.bytes.resize(rb * static_cast<uint64_t>(out));
    for (int64_t r = 0; r < out; ++r) {
      EXPECT_TRUE(quantize_row(dt, f.data() + r * in, w.bytes.data() + r * rb, in).ok());
    }
  } else {
    std::vector<uint16_t> h(f.size());
    for (size_t i = 0; i < f.size(); ++i) {
      h[i] = dt == DType::F16 ? fp32_to_fp16(f[i]) : fp32_to_bf16(f[i]);
    }
    w.bytes.assign(reinterpret_cast<const char*>(h.data()), h.size() * 2);
  }
  w.view.name.push_back('w');
  w.view.dtype = dt;
  w.view.n_dims = 2;
  w.view.ne[0] = in;
  w.view.ne[1] = out;
  w.view.data = w.bytes.data();
  w.view.nbytes = w.bytes.size();
  return w;
}

TEST(Kernels, MatmulMatchesReference) {
  ThreadPool pool(3);
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    for (int64_t in : {1, 7, 8, 33, 260}) {
      for (int64_t out : {1, 3, 4, 9, 130}) {
        for (int64_t T : {1, 2, 5}) {
          Weight w = make_weight(dt, in, out, static_cast<uint32_t>(in * 1000 + out));
          auto x = randn(static_cast<size_t>(T * in), 7);
          std::vector<float> y(static_cast<size_t>(T * out)), yr(y.size()), y1(y.size());
          ASSERT_TRUE(matmul(w.view, x.data(), T, y.data(), &pool).ok());
          ASSERT_TRUE(matmul(w.view, x.data(), T, y1.data(), nullptr).ok());
          ASSERT_TRUE(matmul_ref(w.view, x.data(), T, yr.data()).ok());
          EXPECT_LE(rel_err(y, yr), 1e-5)
              << dtype_name(dt) << " " << in << "x" << out << " T=" << T;
          EXPECT_EQ(0, std::memcmp(y.data(), y1.data(), y.size() * 4)) << "threading changed bits";
        }
      }
    }
  }
}

// Σ(a-b)² / Σb²
double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return den > 0 ? num / den : num;
}

// Quantized weights: matmul dots 8-bit activations with the integer kernels. Against the scalar
// kernel on the same activations it agrees to float rounding; against the float reference
// (dequantized weights · unquantized x) it differs by the activations' 8-bit rounding only.
// Each output is computed the same way whatever the thread count or the token batch it is in.
TEST(Kernels, MatmulQuantizedMatchesReference) {
  ThreadPool pool(2);
  for (DType dt : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
    ASSERT_TRUE(matmul_supports(dt));
    const DotKernel* scalar = dot_kernel(dt, false);
    for (int64_t in : {32, 96, 512}) {
      for (int64_t T : {1, 3, 9}) {
        for (int64_t out : {1, 7, 64}) {
          Weight w = make_weight(dt, in, out, 99);
          auto x = randn(static_cast<size_t>(T * in), 5);
          std::vector<float> y(static_cast<size_t>(T * out)), y1(y.size()), ys(y.size()), yr(y.size());
          ASSERT_TRUE(matmul(w.view, x.data(), T, y.data(), &pool).ok());
          ASSERT_TRUE(matmul(w.view, x.data(), T, y1.data(), nullptr).ok());
          ASSERT_TRUE(matmul_ref(w.view, x.data(), T, yr.data()).ok());
          // (a handful of outputs can be near zero by cancellation: NMSE needs a population)
          if (T * out >= 16) {
            EXPECT_LE(nmse(y, yr), 1e-4) << dtype_name(dt) << " " << in << "x" << out << " T=" << T;
          }
          EXPECT_EQ(0, std::memcmp(y.data(), y1.data(), y.size() * 4)) << "threading changed bits";
          if (scalar) {
            ASSERT_TRUE(matmul_with(*scalar, w.view, x.data(), T, ys.data(), nullptr).ok());
            EXPECT_LE(nmse(y, ys), 1e-7) << dtype_name(dt) << " vs scalar kernel";
          }
          // Token t alone gives the same bits as token t inside the batch.
          for (int64_t t = 0; t < T; ++t) {
            std::vector<float> one(static_cast<size_t>(out));
            ASSERT_TRUE(matmul(w.view, x.data() + t * in, 1, one.data(), &pool).ok());
            EXPECT_EQ(0, std::memcmp(one.data(), y.data() + t * out, out * 4))
                << dtype_name(dt) << " token " << t << " of " << T << " changed with the batch";
          }
        }
      }
    }
  }
}

// A decode claim streams at least 128 KiB of weights, so the matrices above mostly run on one
// thread; these (1100 rows x 512) split into three claims or more, with one and three tokens,
// alone and fused with a second weight in matmul_many.
TEST(Kernels, MatmulSplitAcrossThreadsKeepsBits) {
  ThreadPool pool(2);
  constexpr int64_t in = 512, out = 1100;
  for (DType dt : {DType::F16, DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q4_K, DType::Q6_K}) {
    const Weight w = make_weight(dt, in, out, 11), w2 = make_weight(dt, in, out / 2, 12);
    for (int64_t T : {1, 3}) {
      auto x = randn(static_cast<size_t>(T * in), 13);
      std::vector<float> y(static_cast<size_t>(T * out)), y1(y.size());
      std::vector<float> z(static_cast<size_t>(T * out / 2)), z1(z.size()), y2(y.size());
      ASSERT_TRUE(matmul(w.view, x.data(), T, y.data(), &pool).ok());
      ASSERT_TRUE(matmul(w.view, x.data(), T, y1.data(), nullptr).ok());
      EXPECT_EQ(0, std::memcmp(y.data(), y1.data(), y.size() * 4)) << dtype_name(dt) << " T=" << T;
      const TensorView* ws[] = {&w.view, &w2.view};
      float* ys[] = {y2.data(), z.data()};
      ASSERT_TRUE(matmul_many(ws, ys, 2, x.data(), T, &pool).ok());
      ASSERT_TRUE(matmul(w2.view, x.data(), T, z1.data(), nullptr).ok());
      EXPECT_EQ(0, std::memcmp(y2.data(), y1.data(), y.size() * 4)) << dtype_name(dt) << " many";
      EXPECT_EQ(0, std::memcmp(z.data(), z1.data(), z.size() * 4)) << dtype_name(dt) << " many";
    }
  }
}

TEST(Kernels, MatmulUnalignedF32) {
  Weight w = make_weight(DType::F32, 9, 5, 3);
  std::string shifted(1, ' ');
  shifted += w.bytes;
  TensorView v = w.view;
  v.data = shifted.data() + 1;
  auto x = randn(9 * 2, 4);
  std::vector<float> y(10), yr(10);
  ASSERT_TRUE(matmul(v, x.data(), 2, y.data(), nullptr).ok());
  ASSERT_TRUE(matmul_ref(w.view, x.data(), 2, yr.data()).ok());
  EXPECT_LE(rel_err(y, yr), 1e-5);
}

TEST(Kernels, MatmulRejectsUnsupported) {
  Weight w = make_weight(DType::F32, 8, 4, 1);
  w.view.dtype = DType::I32;
  std::vector<float> x(8), y(4);
  EXPECT_FALSE(matmul(w.view, x.data(), 1, y.data(), nullptr).ok());
  w.view.dtype = DType::F32;
  w.view.ne[1] = 2;
  w.view.ne[2] = 2;
  EXPECT_FALSE(matmul(w.view, x.data(), 1, y.data(), nullptr).ok());
}

TEST(Kernels, DotAxpyRmsNormSwiglu) {
  for (int64_t n : {1, 5, 8, 17, 64, 1001}) {
    auto a = randn(static_cast<size_t>(n), 1), b = randn(static_cast<size_t>(n), 2);
    std::vector<float> d1{dot_f32(a.data(), b.data(), n)}, d2{dot_f32_ref(a.data(), b.data(), n)};
    double scale = 0;
    for (int64_t i = 0; i < n; ++i) scale += std::fabs(a[i] * b[i]);
    EXPECT_LE(std::fabs(d1[0] - d2[0]) / scale, 1e-6) << n;

    auto y1 = b, y2 = b;
    axpy_f32(0.37f, a.data(), y1.data(), n);
    axpy_f32_ref(0.37f, a.data(), y2.data(), n);
    EXPECT_LE(rel_err(y1, y2), 1e-6);

    auto w = randn(static_cast<size_t>(n), 3);
    std::vector<float> o1(static_cast<size_t>(n)), o2(o1.size());
    rms_norm(a.data(), w.data(), n, 1e-5f, o1.data());
    rms_norm_ref(a.data(), w.data(), n, 1e-5f, o2.data());
    EXPECT_LE(rel_err(o1, o2), 1e-5);
    // The reference itself against the formula.
    double ss = 0;
    for (float v : a) ss += static_cast<double>(v) * v;
    double inv = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(o2[i], a[i] * inv * w[i], 1e-5 * (1 + std::fabs(o2[i])));

    auto g1 = a, g2 = a;
    swiglu(g1.data(), b.data(), n);
    swiglu_ref(g2.data(), b.data(), n);
    EXPECT_LE(rel_err(g1, g2), 1e-6);
    for (int64_t i = 0; i < n; ++i) {
      double v = a[i];
      EXPECT_NEAR(g2[i], v / (1 + std::exp(-v)) * b[i], 1e-5 * (1 + std::fabs(g2[i])));
    }
  }
}

TEST(Kernels, SoftmaxStable) {
  std::vector<float> x = {1000.0f, 1001.0f, 999.0f, -1e30f};
  softmax(x.data(), 4);
  double e0 = std::exp(-1.0), e2 = std::exp(-2.0), s = e0 + 1 + e2;
  EXPECT_NEAR(x[0], e0 / s, 1e-6);
  EXPECT_NEAR(x[1], 1 / s, 1e-6);
  EXPECT_NEAR(x[2], e2 / s, 1e-6);
  EXPECT_EQ(x[3], 0.0f);
  auto r = randn(77, 9, 5.0f), r2 = r;
  softmax(r.data(), 77);
  softmax_ref(r2.data(), 77);
  EXPECT_LE(rel_err(r, r2), 1e-6);
}

TEST(Kernels, RopeBothLayouts) {
  const int64_t hd = 16;
  auto x = randn(hd, 4);
  std::vector<float> c(hd / 2), s(hd / 2);
  for (int64_t i = 0; i < hd / 2; ++i) {
    double ang = 3.0 * std::pow(10000.0, -2.0 * i / hd);
    c[i] = static_cast<float>(std::cos(ang));
    s[i] = static_cast<float>(std::sin(ang));
  }
  auto xi = x, xh = x;
  rope(xi.data(), hd, c.data(), s.data(), true);
  rope(xh.data(), hd, c.data(), s.data(), false);
  for (int64_t i = 0; i < hd / 2; ++i) {
    // interleaved: (x[2i] + i x[2i+1]) * e^{i ang}
    EXPECT_NEAR(xi[2 * i], x[2 * i] * c[i] - x[2 * i + 1] * s[i], 1e-6);
    EXPECT_NEAR(xi[2 * i + 1], x[2 * i] * s[i] + x[2 * i + 1] * c[i], 1e-6);
    // halves: HF rotate_half: x*cos + rotate_half(x)*sin, rotate_half = (-x2, x1)
    EXPECT_NEAR(xh[i], x[i] * c[i] - x[i + hd / 2] * s[i], 1e-6);
    EXPECT_NEAR(xh[i + hd / 2], x[i + hd / 2] * c[i] + x[i] * s[i], 1e-6);
  }
}

TEST(Kernels, AttentionHeadMatchesReference) {
  for (int64_t n_pos : {1, 2, 9, 100}) {
    for (int64_t hd : {4, 64, 72}) {
      int64_t stride = hd * 3;  // rows of other heads interleaved in the cache
      auto q = randn(static_cast<size_t>(hd), 1);
      auto k = randn(static_cast<size_t>(n_pos * stride), 2);
      auto v = randn(static_cast<size_t>(n_pos * stride), 3);
      std::vector<float> sc(static_cast<size_t>(n_pos)), o1(static_cast<size_t>(hd)), o2(o1.size());
      float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      attention_head(q.data(), k.data(), v.data(), stride, n_pos, hd, scale, sc.data(), o1.data());
      attention_head_ref(q.data(), k.data(), v.data(), stride, n_pos, hd, scale, sc.data(),
                         o2.data());
      EXPECT_LE(rel_err(o1, o2), 1e-5) << n_pos << " " << hd;
    }
  }
}

}  // namespace
}  // namespace slm
