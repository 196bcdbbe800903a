// matmul_many (several weights sharing one input in one thread-pool job) against matmul on
// each weight: bit-identical for every weight type mix, token count, thread count and row count.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"

namespace slm {
namespace {

struct Weight {
  std::vector<uint8_t> bytes;
  TensorView view;
};

Weight make_weight(DType dt, int64_t in, int64_t out, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(in));
  uint64_t rb = 0;
  EXPECT_TRUE(dtype_row_bytes(dt, in, &rb));
  Weight w;
  w.bytes.resize(rb * static_cast<uint64_t>(out));
  for (int64_t r = 0; r < out; ++r) {
    for (auto& v : f) v = nd(rng);
    EXPECT_TRUE(quantize_row(dt, f.data(), w.bytes.data() + r * rb, in).ok()) << dtype_name(dt);
  }
  w.view.name = std::string("w.") + dtype_name(dt);
  w.view.dtype = dt;
  w.view.n_dims = 2;
  w.view.ne[0] = in;
  w.view.ne[1] = out;
  w.view.data = w.bytes.data();
  w.view.nbytes = w.bytes.size();
  return w;
}

void expect_same_as_matmul(const std::vector<DType>& types, const std::vector<int64_t>& outs,
                           int64_t in, int64_t T, ThreadPool* pool, MatmulMode mode,
                           uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Weight> ws;
  for (size_t i = 0; i < types.size(); ++i) ws.push_back(make_weight(types[i], in, outs[i], rng));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(T * in));
  for (auto& v : x) v = nd(rng);
  std::vector<std::vector<float>> fused(ws.size()), each(ws.size());
  std::vector<const TensorView*> views;
  std::vector<float*> ys;
  for (size_t i = 0; i < ws.size(); ++i) {
    fused[i].assign(static_cast<size_t>(T * outs[i]), -1.0f);
    each[i].assign(static_cast<size_t>(T * outs[i]), -2.0f);
    views.push_back(&ws[i].view);
    ys.push_back(fused[i].data());
  }
  ASSERT_TRUE(matmul_many(views.data(), ys.data(), static_cast<int>(ws.size()), x.data(), T, pool,
                          mode)
                  .ok());
  for (size_t i = 0; i < ws.size(); ++i) {
    ASSERT_TRUE(matmul(ws[i].view, x.data(), T, each[i].data(), pool, mode).ok());
    EXPECT_EQ(std::memcmp(fused[i].data(), each[i].data(), fused[i].size() * sizeof(float)), 0)
        << "weight " << i << " " << dtype_name(types[i]) << " T=" << T << " out=" << outs[i];
  }
}

TEST(MatmulMany, EqualsMatmulOnEachWeight) {
  ThreadPool pool2(2), pool3(3);
  uint32_t seed = 1;
  // q/k/v-like shapes (the k and v outputs smaller, rows not multiples of 8) and gate/up.
  const std::vector<std::vector<DType>> mixes = {
      {DType::Q4_0, DType::Q4_0, DType::Q4_0},
      {DType::Q5_0, DType::Q5_0, DType::Q8_0},  // a Q4_K_M-style mix at widths below 256
      {DType::Q4_K, DType::Q4_K, DType::Q6_K},
      {DType::F16, DType::F16, DType::F16},
      {DType::F32, DType::Q8_0, DType::BF16},
      {DType::Q4_1, DType::Q5_1, DType::Q4_0},
  };
  for (const auto& mix : mixes) {
    for (int64_t T : {1, 3}) {
      for (ThreadPool* pool : {&pool2, &pool3}) {
        for (MatmulMode mode : {MatmulMode::fast, MatmulMode::fast_invariant}) {
          expect_same_as_matmul(mix, {200, 37, 37}, 512, T, pool, mode, seed++);
          expect_same_as_matmul({mix[0], mix[1]}, {333, 333}, 256, T, pool, mode, seed++);
        }
      }
    }
  }
}

TEST(MatmulMany, FallsBackWhereItCannotFuse) {
  ThreadPool pool(2);
  // Prompt-sized batches (GEMM), the float-activation mode and a single thread: each weight
  // through matmul.
  expect_same_as_matmul({DType::Q4_0, DType::Q8_0}, {64, 40}, 256, 40, &pool, MatmulMode::fast, 7);
  expect_same_as_matmul({DType::Q4_0, DType::F16}, {64, 40}, 256, 2, &pool,
                        MatmulMode::float_activations, 8);
  expect_same_as_matmul({DType::Q4_0, DType::F16}, {64, 40}, 256, 1, nullptr, MatmulMode::fast, 9);
}

TEST(MatmulMany, RejectsBadWeights) {
  ThreadPool pool(2);
  std::mt19937 rng(3);
  Weight a = make_weight(DType::Q8_0, 64, 16, rng);
  Weight b = make_weight(DType::Q8_0, 64, 16, rng);
  b.view.ne[2] = 2;  // not 2-D
  b.view.ne[1] = 8;
  std::vector<float> x(64, 1.0f), ya(16), yb(16);
  const TensorView* ws[] = {&a.view, &b.view};
  float* ys[] = {ya.data(), yb.data()};
  EXPECT_FALSE(matmul_many(ws, ys, 2, x.data(), 1, &pool).ok());
}

}  // namespace
}  // namespace slm
