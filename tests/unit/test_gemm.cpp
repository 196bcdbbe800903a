// sgemm and matmul_gemm against their scalar double-precision oracles (sgemm_ref, matmul_ref)
// on ragged sizes, every transpose pair, alpha/beta, padded strides, threads and weight dtypes.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
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

// Normalized mean squared error Σ (a - b)² / Σ b²; NaN anywhere counts as a failure.
double nmse(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den > 0 ? num / den : num;
}

constexpr double k_tol = 1e-7;

using GemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                        const float*, int64_t, float, float*, int64_t, ThreadPool*);

// One sgemm-style call against sgemm_ref. Strides are padded by `pad`; with beta == 0 the
// output starts as NaN, which must not leak into the result.
void check_gemm(GemmFn fn, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                float beta, int64_t pad, ThreadPool* pool, uint32_t seed) {
  const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const int64_t a_rows = ta ? K : M, b_rows = tb ? N : K;
  auto A = randn(static_cast<size_t>(a_rows * lda), seed);
  auto B = randn(static_cast<size_t>(b_rows * ldb), seed + 1);
  std::vector<float> C = randn(static_cast<size_t>(M * ldc), seed + 2);
  if (beta == 0.0f) std::fill(C.begin(), C.end(), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> R = C;
  fn(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, pool);
  sgemm_ref(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
  // Compare the M x N result only; the padding columns must be untouched.
  std::vector<float> got, want;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const float g = C[i * ldc + j], r = R[i * ldc + j];
      if (j < N) {
        got.push_back(g);
        want.push_back(r);
      } else if (!(std::isnan(g) && std::isnan(r))) {
        ASSERT_EQ(g, r) << "padding overwritten at " << i << "," << j;
      }
    }
  }
  EXPECT_LT(nmse(got.data(), want.data(), got.size()), k_tol)
      << "ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K
      << " alpha=" << alpha << " beta=" << beta << " pad=" << pad;
}

const int64_t k_sizes[] = {1, 2, 5, 6, 7, 15, 16, 17, 31, 33, 48, 63, 70};
const float k_alphas[] = {1.0f, 0.5f, -2.0f};
const float k_betas[] = {0.0f, 1.0f, 0.25f};

void ragged_sweep(GemmFn fn) {
  int n = 0;
  for (int t = 0; t < 4; ++t) {
    for (int64_t M : k_sizes) {
      for (int64_t N : k_sizes) {
        for (int64_t K : k_sizes) {
          ++n;
          check_gemm(fn, t & 1, t & 2, M, N, K, k_alphas[n % 3], k_betas[(n / 3) % 3], n % 4,
                     nullptr, static_cast<uint32_t>(n));
          if (testing::Test::HasFailure()) return;
        }
      }
    }
  }
}

TEST(Sgemm, RaggedSizesAllTransposes) { ragged_sweep(sgemm); }

TEST(Sgemm, PortablePathRaggedSizes) { ragged_sweep(sgemm_portable); }

TEST(Sgemm, LargerThanOneBlock) {
  // Past MC (144 rows), KC (256) and, for the thin case, NC (4096 columns).
  struct Shape {
    int64_t M, N, K;
  } shapes[] = {{129, 257, 300}, {300, 200, 600}, {7, 4200, 5}, {5, 3, 1000}};
  uint32_t seed = 100;
  for (const Shape& s : shapes) {
    for (int t = 0; t < 4; ++t) {
      check_gemm(sgemm, t & 1, t & 2, s.M, s.N, s.K, 0.75f, 0.5f, 3, nullptr, seed++);
      check_gemm(sgemm, t & 1, t & 2, s.M, s.N, s.K, 1.0f, 0.0f, 0, nullptr, seed++);
    }
  }
  check_gemm(sgemm_portable, true, false, 129, 257, 300, 1.0f, 0.0f, 1, nullptr, seed++);
}

TEST(Sgemm, DegenerateSizes) {
  // K == 0 or alpha == 0 leaves beta * C; M or N == 0 touches nothing.
  std::vector<float> A(16, 1.0f), B(16, 1.0f), C(16, 2.0f);
  sgemm(false, false, 4, 4, 0, 1.0f, A.data(), 4, B.data(), 4, 0.5f, C.data(), 4, nullptr);
  for (float c : C) EXPECT_EQ(c, 1.0f);
  std::fill(C.begin(), C.end(), std::numeric_limits<float>::quiet_NaN());
  sgemm(false, false, 4, 4, 4, 0.0f, A.data(), 4, B.data(), 4, 0.0f, C.data(), 4, nullptr);
  for (float c : C) EXPECT_EQ(c, 0.0f);
  sgemm(false, false, 0, 4, 4, 1.0f, A.data(), 4, B.data(), 4, 0.0f, nullptr, 4, nullptr);
  sgemm(false, false, 4, 0, 4, 1.0f, A.data(), 4, B.data(), 4, 0.0f, nullptr, 4, nullptr);
}

TEST(Sgemm, ThreadedMatchesReferenceAndSingleThread) {
  ThreadPool pool(2);
  struct Shape {
    int64_t M, N, K;
  } shapes[] = {{200, 150, 300}, {150, 333, 257}, {512, 40, 300}, {64, 1000, 128}};
  uint32_t seed = 200;
  for (const Shape& s : shapes) {
    for (int t = 0; t < 4; ++t) {
      check_gemm(sgemm, t & 1, t & 2, s.M, s.N, s.K, 1.0f, 0.5f, 2, &pool, seed++);
      // Threaded and unthreaded both against the same oracle, and against each other.
      const bool ta = t & 1, tb = t & 2;
      auto A = randn(static_cast<size_t>(s.M * s.K), seed);
      auto B = randn(static_cast<size_t>(s.K * s.N), seed + 1);
      std::vector<float> C1(static_cast<size_t>(s.M * s.N)), C2(C1.size());
      const int64_t lda = ta ? s.M : s.K, ldb = tb ? s.K : s.N;
      sgemm(ta, tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C1.data(), s.N,
            nullptr);
      sgemm(ta, tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C2.data(), s.N,
            &pool);
      EXPECT_LT(nmse(C2.data(), C1.data(), C1.size()), k_tol);
    }
  }
}

// ---- matmul_gemm ---------------------------------------------------------------------------

struct Weight {
  std::vector<uint8_t> bytes;  // one spare leading byte so F32 data can be misaligned
  TensorView view;
};

Weight make_weight(DType dt, int64_t in, int64_t out, uint32_t seed, bool misalign = false) {
  auto f = randn(static_cast<size_t>(in * out), seed);
  uint64_t rb = 0;
  EXPECT_TRUE(dtype_row_bytes(dt, in, &rb));
  Weight w;
  w.bytes.resize(rb * static_cast<uint64_t>(out) + 1);
  uint8_t* data = w.bytes.data() + (misalign ? 1 : 0);
  const DTypeTraits* tr = dtype_traits(dt);
  if (dt == DType::Q4_K || dt == DType::Q6_K) {
    // No reference quantizer for K-quants: random blocks with small finite fp16 scales.
    std::mt19937 rng(seed);
    for (uint64_t i = 0; i < rb * static_cast<uint64_t>(out); ++i) data[i] = rng() & 0xFF;
    const int64_t n_blocks = in / tr->block_size * out;
    for (int64_t b = 0; b < n_blocks; ++b) {
      uint8_t* blk = data + b * tr->type_size;
      auto put_half = [&](uint8_t* p) {
        uint16_t h = fp32_to_fp16(std::ldexp(static_cast<float>(rng() % 1000 + 1), -14));
        std::memcpy(p, &h, 2);
      };
      if (dt == DType::Q4_K) {  // d, dmin, scales[12], qs[128]
        put_half(blk);
        put_half(blk + 2);
      } else {  // ql[128], qh[64], scales[16], d
        put_half(blk + 208);
      }
    }
  } else {
    for (int64_t r = 0; r < out; ++r) {
      EXPECT_TRUE(quantize_row(dt, f.data() + r * in, data + r * rb, in).ok());
    }
  }
  w.view.name = std::string("w.") + dtype_name(dt);
  w.view.dtype = dt;
  w.view.n_dims = 2;
  w.view.ne[0] = in;
  w.view.ne[1] = out;
  w.view.data = data;
  w.view.nbytes = rb * static_cast<uint64_t>(out);
  return w;
}

void check_matmul(const Weight& w, int64_t T, ThreadPool* pool, uint32_t seed) {
  const int64_t in = w.view.ne[0], out = w.view.ne[1];
  auto x = randn(static_cast<size_t>(T * in), seed);
  std::vector<float> y(static_cast<size_t>(T * out), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> r(y.size());
  ASSERT_TRUE(matmul_gemm(w.view, x.data(), T, y.data(), pool).ok());
  ASSERT_TRUE(matmul_ref(w.view, x.data(), T, r.data()).ok());
  // Q8_0 / Q4_0 weights go to the int8 GEMM on AVX2 CPUs (kernels/qgemm.h), whose activations
  // are quantized to 8 bits: the rounding noise, (amax / 127)² / 12 per element, is an NMSE of
  // about 3e-5 for Gaussian data in 32-element blocks (test_qgemm.cpp checks that path tightly).
  const double tol = qgemm_supports(w.view.dtype) && qgemm_has_simd() ? 1e-4 : k_tol;
  EXPECT_LT(nmse(y.data(), r.data(), y.size()), tol)
      << w.view.name << " T=" << T << " in=" << in << " out=" << out;
}

TEST(MatmulGemm, AllWeightTypesMatchReference) {
  ASSERT_EQ(dtype_traits(DType::Q4_K)->type_size, 144);
  ASSERT_EQ(dtype_traits(DType::Q6_K)->type_size, 210);
  ThreadPool pool(2);
  const DType types[] = {DType::F32, DType::F16,  DType::BF16, DType::Q8_0,
                         DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                         DType::Q4_K, DType::Q6_K};
  uint32_t seed = 300;
  for (DType dt : types) {
    // in = 768 crosses two K-block boundaries (KC = 256); out = 70 leaves a ragged panel.
    Weight w = make_weight(dt, 768, 70, seed++);
    for (int64_t T : {1, 5, 17, 64, 130}) {
      check_matmul(w, T, nullptr, seed++);
      check_matmul(w, T, &pool, seed++);
    }
  }
}

TEST(MatmulGemm, ThreadedWideWeight) {
  ThreadPool pool(2);
  Weight w = make_weight(DType::Q4_0, 256, 1000, 400);
  check_matmul(w, 64, &pool, 401);
  Weight f = make_weight(DType::F16, 320, 777, 402);
  check_matmul(f, 130, &pool, 403);
}

// 16-bit weights are widened straight into the packed panels 8 k at a time: a row length that
// is not a multiple of 8 (in each K block) exercises the scalar tail, and odd-byte-aligned data
// the generic dequantize path.
TEST(MatmulGemm, HalfWeightsRaggedAndMisaligned) {
  ThreadPool pool(2);
  uint32_t seed = 600;
  for (DType dt : {DType::F16, DType::BF16}) {
    for (int64_t in : {3, 13, 269, 517}) {
      for (bool misalign : {false, true}) {
        Weight w = make_weight(dt, in, 37, seed++, misalign);
        for (int64_t T : {1, 7, 40}) {
          check_matmul(w, T, nullptr, seed++);
          check_matmul(w, T, &pool, seed++);
        }
      }
    }
  }
}

// Several weights sharing x (x packed or quantized once, one pool job over all outputs): each
// result equals matmul_gemm on that weight alone bit for bit, and the reference within k_tol.
TEST(MatmulGemm, ManyWeightsMatchSingleCalls) {
  ThreadPool pool(2);
  const int64_t in = 320;
  std::vector<Weight> ws;
  ws.push_back(make_weight(DType::F16, in, 200, 700));
  ws.push_back(make_weight(DType::Q8_0, in, 64, 701));
  ws.push_back(make_weight(DType::F16, in, 37, 702));
  ws.push_back(make_weight(DType::Q4_0, in, 90, 703));
  ws.push_back(make_weight(DType::F32, in, 19, 704));
  ws.push_back(make_weight(DType::Q4_0, in, 33, 705));
  for (int64_t T : {1, 7, 64, 130}) {
    for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), &pool}) {
      auto x = randn(static_cast<size_t>(T * in), 710 + static_cast<uint32_t>(T));
      std::vector<std::vector<float>> many(ws.size()), one(ws.size());
      const TensorView* views[8];
      float* ys[8];
      for (size_t i = 0; i < ws.size(); ++i) {
        many[i].assign(static_cast<size_t>(T * ws[i].view.ne[1]), std::nanf(""));
        one[i].assign(many[i].size(), 0.0f);
        views[i] = &ws[i].view;
        ys[i] = many[i].data();
      }
      ASSERT_TRUE(matmul_gemm_many(views, ys, static_cast<int>(ws.size()), x.data(), T, tp).ok());
      for (size_t i = 0; i < ws.size(); ++i) {
        ASSERT_TRUE(matmul_gemm(ws[i].view, x.data(), T, one[i].data(), tp).ok());
        EXPECT_EQ(0, std::memcmp(many[i].data(), one[i].data(), many[i].size() * sizeof(float)))
            << ws[i].view.name << " T=" << T;
        std::vector<float> r(many[i].size());
        ASSERT_TRUE(matmul_ref(ws[i].view, x.data(), T, r.data()).ok());
        const double tol = qgemm_supports(ws[i].view.dtype) && qgemm_has_simd() ? 1e-4 : k_tol;
        EXPECT_LT(nmse(many[i].data(), r.data(), r.size()), tol) << ws[i].view.name << " T=" << T;
      }
    }
  }
  // Weights that do not share a row length are refused.
  Weight other = make_weight(DType::F16, 64, 8, 720);
  const TensorView* bad[] = {&ws[0].view, &other.view};
  float y0[8], y1[8];
  float* ys[] = {y0, y1};
  std::vector<float> x(in, 1.0f);
  EXPECT_FALSE(matmul_gemm_many(bad, ys, 2, x.data(), 1, nullptr).ok());
}

TEST(MatmulGemm, MisalignedF32Weight) {
  Weight w = make_weight(DType::F32, 100, 33, 500, /*misalign=*/true);
  for (int64_t T : {1, 17, 130}) check_matmul(w, T, nullptr, 501);
}

TEST(MatmulGemm, RejectsBadWeights) {
  float x[4] = {}, y[4] = {};
  Weight w = make_weight(DType::F32, 4, 1, 600);
  TensorView v = w.view;
  v.dtype = DType::I32;
  EXPECT_FALSE(matmul_gemm(v, x, 1, y, nullptr).ok());
  v = w.view;
  v.ne[1] = 1;
  v.ne[2] = 1;
  v.ne[3] = 2;
  EXPECT_FALSE(matmul_gemm(v, x, 1, y, nullptr).ok());
  Weight q = make_weight(DType::Q8_0, 32, 1, 601);
  v = q.view;
  v.ne[0] = 16;  // half a block
  EXPECT_FALSE(matmul_gemm(v, x, 1, y, nullptr).ok());
}

// ---- benchmarks (run with --gtest_also_run_disabled_tests) ---------------------------------

double best_seconds(const std::function<void()>& fn, int reps) {
  fn();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                              .count());
  }
  return best;
}

TEST(GemmBench, DISABLED_Throughput) {
  ThreadPool pool2(2);
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
    const int nt = pool ? pool->n_threads() : 1;
    std::printf("threads=%d  measure_sgemm_gflops: %.1f GFLOP/s\n", nt,
                measure_sgemm_gflops(pool, 0.5));
    struct Shape {
      int64_t M, N, K;
    } shapes[] = {{1024, 1024, 1024}, {128, 1536, 576}, {128, 8192, 2048}};
    for (const Shape& s : shapes) {
      auto A = randn(static_cast<size_t>(s.M * s.K), 1), B = randn(static_cast<size_t>(s.N * s.K), 2);
      std::vector<float> C(static_cast<size_t>(s.M * s.N));
      // Prompt layout: B is the weight (N x K), multiplied transposed.
      const double t = best_seconds(
          [&] {
            sgemm(false, true, s.M, s.N, s.K, 1.0f, A.data(), s.K, B.data(), s.K, 0.0f, C.data(),
                  s.N, pool);
          },
          7);
      std::printf("threads=%d  sgemm(N,T) M=%ld N=%ld K=%ld: %.1f GFLOP/s\n", nt, (long)s.M,
                  (long)s.N, (long)s.K, 2.0 * s.M * s.N * s.K / t * 1e-9);
    }
    for (DType dt : {DType::F32, DType::F16, DType::Q4_0, DType::Q8_0, DType::Q4_K}) {
      Weight w = make_weight(dt, 2048, 8192, 3);
      const int64_t T = 128;
      auto x = randn(static_cast<size_t>(T * 2048), 4);
      std::vector<float> y(static_cast<size_t>(T * 8192));
      const double t =
          best_seconds([&] { ASSERT_TRUE(matmul_gemm(w.view, x.data(), T, y.data(), pool).ok()); },
                       5);
      std::printf("threads=%d  matmul_gemm %s T=128 2048x8192: %.1f GFLOP/s\n", nt,
                  dtype_name(dt), 2.0 * T * 2048 * 8192 / t * 1e-9);
    }
  }
}

}  // namespace
}  // namespace slm
