// K-quant quantizers: error of quantize -> dequantize_row (the dequantizers are verified
// bit-exact against the numpy reference in test_dequant) per type, ordering, edge cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/quant.h"
#include "kernels/quantize_k.h"

namespace slm {
namespace {

constexpr int64_t k_n = 256 * 64;  // 64 super-blocks per measured row set

enum class Dist { gaussian, heavy };

std::vector<float> random_row(Dist dist, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::student_t_distribution<float> t(3.0f);  // heavy tails: kurtosis is infinite at 3 dof
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = dist == Dist::gaussian ? g(rng) : t(rng);
  return x;
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x, bool naive = false) {
  const DTypeTraits* tr = dtype_traits(t);
  std::vector<uint8_t> q(static_cast<size_t>(static_cast<int64_t>(x.size()) / 256 * tr->type_size));
  const int64_t n = static_cast<int64_t>(x.size());
  Status s = naive ? quantize_row_k_naive(t, x.data(), q.data(), n) : quantize_row(t, x.data(), q.data(), n);
  EXPECT_TRUE(s.ok()) << s.message();
  return q;
}

std::vector<float> dequantize(DType t, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  EXPECT_TRUE(dequantize_row_checked(t, q.data(), y.data(), n).ok());
  return y;
}

// sqrt(sum (x - y)^2 / sum x^2)
double rel_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x[i]) - y[i];
    num += d * d;
    den += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(num / den);
}

struct Bound {
  DType type;
  double gaussian;  // upper bounds on the relative RMSE (measured value + ~15%)
  double heavy;
};

// Measured (gaussian / student-t 3 dof, 64 super-blocks; see the table the test prints):
// Q2_K .269/.304, Q3_K .143/.183, Q4_K .071/.093, Q5_K .036/.047, Q6_K .017/.025,
// Q8_K .0071/.0170. Bounds are those plus ~15%.
const Bound k_bounds[] = {
    {DType::Q2_K, 0.31, 0.35},    {DType::Q3_K, 0.165, 0.21},   {DType::Q4_K, 0.082, 0.107},
    {DType::Q5_K, 0.041, 0.054},  {DType::Q6_K, 0.0195, 0.029}, {DType::Q8_K, 0.0082, 0.0195},
};

TEST(QuantizeK, ErrorTableBoundsAndOrdering) {
  std::printf("type   gaussian  heavy    naive-gaussian naive-heavy\n");
  double prev[2] = {1e9, 1e9};
  for (const Bound& b : k_bounds) {
    SCOPED_TRACE(dtype_name(b.type));
    double err[2], naive[2];
    for (int di = 0; di < 2; ++di) {
      const Dist dist = di == 0 ? Dist::gaussian : Dist::heavy;
      auto x = random_row(dist, k_n, 17 + static_cast<uint32_t>(di));
      err[di] = rel_rmse(x, dequantize(b.type, quantize(b.type, x), k_n));
      naive[di] = rel_rmse(x, dequantize(b.type, quantize(b.type, x, true), k_n));
      // More bits, less error, strictly.
      EXPECT_LT(err[di], prev[di]);
      prev[di] = err[di];
      if (b.type != DType::Q8_K) {
        // The search must clearly beat amax scaling (Q8_K is plain amax by definition).
        EXPECT_LT(err[di], 0.95 * naive[di]) << "naive " << naive[di];
      }
    }
    std::printf("%-6s %.5f   %.5f  %.5f        %.5f\n", dtype_name(b.type), err[0], err[1],
                naive[0], naive[1]);
    EXPECT_LE(err[0], b.gaussian);
    EXPECT_LE(err[1], b.heavy);
  }
}

// A scaled-down row (typical weight magnitudes ~0.02) has the same relative error: the fp16
// super-block scales must not lose precision there.
TEST(QuantizeK, SmallMagnitudesKeepRelativeError) {
  for (const Bound& b : k_bounds) {
    SCOPED_TRACE(dtype_name(b.type));
    auto x = random_row(Dist::gaussian, k_n, 5);
    for (auto& v : x) v *= 0.02f;
    EXPECT_LE(rel_rmse(x, dequantize(b.type, quantize(b.type, x), k_n)), b.gaussian);
  }
}

TEST(QuantizeK, AllZerosAndConstantRows) {
  for (const Bound& b : k_bounds) {
    SCOPED_TRACE(dtype_name(b.type));
    std::vector<float> zeros(512, 0.0f);
    auto y = dequantize(b.type, quantize(b.type, zeros), 512);
    for (float v : y) ASSERT_EQ(v, 0.0f);
    for (float c : {0.37f, -2.5f, 1e-3f}) {
      std::vector<float> x(512, c);
      y = dequantize(b.type, quantize(b.type, x), 512);
      // A constant is one scale (or min) times an integer: only fp16/code rounding remains.
      for (float v : y) ASSERT_NEAR(v, c, 0.01 * std::fabs(c)) << "constant " << c;
    }
  }
}

TEST(QuantizeK, OneHugeOutlier) {
  for (const Bound& b : k_bounds) {
    SCOPED_TRACE(dtype_name(b.type));
    auto x = random_row(Dist::gaussian, 1024, 9);
    auto clean = dequantize(b.type, quantize(b.type, x), 1024);
    x[300] = 1000.0f;  // in super-block 1
    auto y = dequantize(b.type, quantize(b.type, x), 1024);
    EXPECT_NEAR(y[300], 1000.0f, 10.0f);
    // Other super-blocks are untouched by it.
    for (int64_t i = 0; i < 1024; ++i) {
      if (i / 256 != 1) {
        ASSERT_EQ(y[i], clean[i]) << i;
      }
    }
    for (float v : y) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(QuantizeK, RejectsBadInput) {
  std::vector<uint8_t> out(4096);
  for (const Bound& b : k_bounds) {
    SCOPED_TRACE(dtype_name(b.type));
    std::vector<float> x(256, 1.0f);
    Status s = quantize_row(b.type, x.data(), out.data(), 128);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(dtype_name(b.type)), std::string::npos) << s.message();
    x[7] = std::nanf("");
    s = quantize_row(b.type, x.data(), out.data(), 256);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("element 7"), std::string::npos) << s.message();
    x[7] = -INFINITY;
    EXPECT_FALSE(quantize_row(b.type, x.data(), out.data(), 256).ok());
  }
  // Finite but beyond what an fp16 super-block scale can express: an error, not inf.
  std::vector<float> big(256, 0.0f);
  big[0] = 3e38f;
  big[1] = -3e38f;
  for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    Status s = quantize_row(t, big.data(), out.data(), 256);
    EXPECT_FALSE(s.ok()) << dtype_name(t);
    EXPECT_NE(s.message().find("fp16"), std::string::npos) << s.message();
  }
  EXPECT_FALSE(quantize_row_k(DType::Q4_0, big.data(), out.data(), 256).ok());
}

// Q8_K's bsums are the per-16 sums of its quants (dot kernels rely on them).
TEST(QuantizeK, Q8KBlockSums) {
  auto x = random_row(Dist::heavy, 512, 3);
  auto q = quantize(DType::Q8_K, x);
  for (int blk = 0; blk < 2; ++blk) {
    const uint8_t* b = q.data() + blk * 292;
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += static_cast<int8_t>(b[4 + 16 * j + i]);
      int16_t stored;
      std::memcpy(&stored, b + 260 + 2 * j, 2);
      EXPECT_EQ(stored, sum);
    }
  }
}

}  // namespace
}  // namespace slm
