// The SIMD element-wise kernels (exp, swiglu, softmax) against double-precision formulas
// computed here from their definitions, with the error bounds stated in kernels/ops.h.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "kernels/ops.h"

namespace slm {
namespace {

// Relative error of got against the double result want (want a normal float).
double rel_err(float got, double want) { return std::fabs(static_cast<double>(got) - want) / std::fabs(want); }

TEST(Ops, ExpWithinThreeUlpOverTheNormalRange) {
  // Dense sweep of every argument whose result is a normal float, plus odd lengths for tails.
  std::vector<float> x;
  for (double v = -87.3; v <= 88.72; v += 0.00037) x.push_back(static_cast<float>(v));
  x.push_back(0.0f);
  x.push_back(-0.0f);
  std::vector<float> y(x.size());
  exp_f32(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    if (want < FLT_MIN || want > FLT_MAX) continue;
    worst = std::max(worst, rel_err(y[i], want));
  }
  // float epsilon is 1.19e-7: three ulp at most (measured ~1.5e-7 on AVX2).
  EXPECT_LT(worst, 3.6e-7) << "worst relative error " << worst;
  std::printf("exp max rel err %.3g\n", worst);
}

TEST(Ops, ExpEdgeValues) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {-inf, -1000.0f, -105.0f, -100.0f, 89.0f, 1000.0f, inf,
                          std::numeric_limits<float>::quiet_NaN(), 0.0f};
  std::vector<float> y(x.size());
  exp_f32(x.data(), y.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 0.0f);
  // exp(-100) = 3.7e-44: a denormal, kept to within a denormal step or two.
  EXPECT_NEAR(y[3], std::exp(-100.0), 3e-45);
  EXPECT_EQ(y[4], inf);
  EXPECT_EQ(y[5], inf);
  EXPECT_EQ(y[6], inf);
  EXPECT_TRUE(std::isnan(y[7]));
  EXPECT_EQ(y[8], 1.0f);
}

TEST(Ops, SwigluMatchesDoubleFormula) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  for (int64_t n : {1, 7, 8, 13, 64, 1000}) {
    std::vector<float> g(static_cast<size_t>(n)), u(g.size());
    for (auto& v : g) v = nd(rng);
    for (auto& v : u) v = nd(rng);
    g[0] = -95.0f;  // exp(-g) overflows: silu is -0-ish, as in the reference
    if (n > 1) g[1] = 95.0f;
    std::vector<float> out = g;
    swiglu(out.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double gd = g[i];
      const double want = gd / (1.0 + std::exp(-gd)) * u[i];
      if (std::fabs(want) < 1e-30) {
        EXPECT_LT(std::fabs(out[i]), 1e-30) << "n " << n << " i " << i;
      } else {
        EXPECT_LT(rel_err(out[i], want), 1e-6) << "n " << n << " i " << i << " g " << g[i];
      }
    }
  }
}

TEST(Ops, SoftmaxMatchesDoubleFormula) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  double worst = 0, worst_ref = 0;
  for (int64_t n : {1, 5, 8, 9, 31, 128, 1029}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng);
    if (n > 2) x[2] = -200.0f;  // exp underflows to 0
    std::vector<float> out = x, ref = x;
    softmax(out.data(), n);
    softmax_ref(ref.data(), n);
    double mx = x[0];
    for (float v : x) mx = std::max(mx, static_cast<double>(v));
    double sum = 0;
    for (float v : x) sum += std::exp(v - mx);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = std::exp(x[i] - mx) / sum;
      total += out[i];
      if (want < 1e-30) {
        EXPECT_LT(out[i], 1e-30);
      } else {
        worst = std::max(worst, rel_err(out[i], want));
        worst_ref = std::max(worst_ref, rel_err(ref[i], want));
      }
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
  std::printf("softmax max rel err: simd %.3g, scalar reference %.3g\n", worst, worst_ref);
  // Both round x - max to float first (1e-6 of exp's argument at |x - max| ~ 15), so the
  // scalar reference is itself ~1e-6 off the double formula; the SIMD form may add a few ulp.
  EXPECT_LT(worst, 2e-6);
}

}  // namespace
}  // namespace slm
