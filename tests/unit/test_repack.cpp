// Q4_0 and Q5_0 x8 copies (kernels/repack.h): the layout reads back as the file's blocks, and
// every kernel that reads it (decode tiles, small batches, matmul_many, the int8 GEMM for Q4_0,
// the float GEMM's packer for Q5_0, and for Q4_0 too when the test runs with SLM_QGEMM=0) gives
// the same results bit for bit as on the file's rows, for row counts that are not multiples of
// 8 too.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/qdot.h"
#include "kernels/quant.h"
#include "kernels/repack.h"

namespace slm {
namespace {

struct X8Weight {
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> x8;  // over-allocated by 32 so x8_data is 32-byte aligned
  TensorView plain, packed;
};

X8Weight make_x8(DType t, int64_t in, int64_t out, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(in));
  const uint64_t rb = static_cast<uint64_t>(in / 32) * dtype_traits(t)->type_size;
  X8Weight w;
  w.bytes.resize(rb * static_cast<uint64_t>(out));
  for (int64_t r = 0; r < out; ++r) {
    for (auto& v : f) v = nd(rng);
    EXPECT_TRUE(quantize_row(t, f.data(), w.bytes.data() + r * rb, in).ok());
  }
  w.plain.dtype = t;
  w.plain.n_dims = 2;
  w.plain.ne[0] = in;
  w.plain.ne[1] = out;
  w.plain.data = w.bytes.data();
  w.plain.nbytes = w.bytes.size();
  EXPECT_TRUE(x8_applies(w.plain));
  w.x8.resize(x8_bytes(w.plain) + 32);
  uint8_t* dst = w.x8.data() + (32 - reinterpret_cast<uintptr_t>(w.x8.data()) % 32) % 32;
  repack_x8(w.plain, dst);
  w.packed = w.plain;
  w.packed.x8 = dst;
  return w;
}

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

constexpr DType k_types[] = {DType::Q4_0, DType::Q5_0};

TEST(RepackX8, BlocksReadBackAsInTheFile) {
  for (DType t : k_types) {
    const size_t fb = dtype_traits(t)->type_size;
    for (int64_t out : {1, 7, 8, 9, 24, 37}) {
      X8Weight w = make_x8(t, 96, out, 11 + static_cast<uint32_t>(out));
      EXPECT_EQ(x8_bytes(w.plain), static_cast<uint64_t>((out + 7) / 8 * 8) * 3 * fb);
      for (int64_t r = 0; r < out; ++r) {
        for (int64_t b = 0; b < 3; ++b) {
          uint8_t blk[k_x8_max_file_block];
          x8_block(w.packed, r, b, blk);
          EXPECT_EQ(0, std::memcmp(blk, w.plain.row(r) + fb * b, fb))
              << dtype_name(t) << " row " << r << " block " << b;
        }
      }
    }
  }
  TensorView f16;
  f16.dtype = DType::F16;
  f16.n_dims = 2;
  f16.ne[0] = 32;
  f16.ne[1] = 8;
  f16.data = &f16;
  EXPECT_FALSE(x8_applies(f16));
}

TEST(RepackX8, MatmulSameAsFileRowsBitForBit) {
  ThreadPool pool(2);
  for (DType t : k_types) {
    const DotKernel* k = dot_kernel(t);
    if (!k || !k->tile_x8) GTEST_SKIP() << "no x8 kernel on this CPU (AVX2 needed)";
    // T = 1: decode; 2, 3, 5, 17: the dot tiles (pairs of columns and an odd one); 40, 70: the
    // GEMMs (ragged panels of 16 rows at out = 37, 200). out = 1100 at in >= 256 is big enough
    // for two threads to share a decode (a claim streams at least 128 KiB).
    for (int64_t out : {8, 37, 200, 1100}) {
      for (int64_t in : {32, 256, 1024}) {
        X8Weight w = make_x8(t, in, out, static_cast<uint32_t>(in * 1000 + out));
        for (int64_t T : {1, 2, 3, 5, 17, 40, 70}) {
          const std::vector<float> x = randn(static_cast<size_t>(T * in), static_cast<uint32_t>(T));
          for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
            for (MatmulMode mode : {MatmulMode::fast, MatmulMode::fast_invariant}) {
              std::vector<float> a(static_cast<size_t>(T * out), -1.0f), b(a.size(), -2.0f);
              ASSERT_TRUE(matmul(w.plain, x.data(), T, a.data(), p, mode).ok());
              ASSERT_TRUE(matmul(w.packed, x.data(), T, b.data(), p, mode).ok());
              ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)))
                  << dtype_name(t) << " in " << in << " out " << out << " T " << T
                  << " threads " << (p ? 2 : 1) << " mode " << static_cast<int>(mode);
            }
          }
        }
      }
    }
  }
}

// The embedding lookup and the float reference path read rows through weight_row_to_f32.
TEST(RepackX8, RowsToF32SameAsFileRows) {
  for (DType t : k_types) {
    X8Weight w = make_x8(t, 128, 13, 5);
    std::vector<float> a(128), b(128);
    for (int64_t r = 0; r < 13; ++r) {
      weight_row_to_f32(w.plain, r, a.data());
      weight_row_to_f32(w.packed, r, b.data());
      EXPECT_EQ(a, b) << dtype_name(t) << " row " << r;
    }
    const std::vector<float> x = randn(3 * 128, 4);
    std::vector<float> ya(3 * 13), yb(3 * 13);
    ASSERT_TRUE(
        matmul(w.plain, x.data(), 3, ya.data(), nullptr, MatmulMode::float_activations).ok());
    ASSERT_TRUE(
        matmul(w.packed, x.data(), 3, yb.data(), nullptr, MatmulMode::float_activations).ok());
    EXPECT_EQ(ya, yb) << dtype_name(t);
  }
}

TEST(RepackX8, MatmulManySameAsFileRows) {
  ThreadPool pool(2);
  for (DType t : k_types) {
    const DotKernel* k = dot_kernel(t);
    if (!k || !k->tile_x8) GTEST_SKIP() << "no x8 kernel on this CPU (AVX2 needed)";
    const int64_t in = 256;
    X8Weight q = make_x8(t, in, 64, 1), kk = make_x8(t, in, 21, 2), v = make_x8(t, in, 16, 3);
    for (int64_t T : {1, 3, 48}) {
      const std::vector<float> x = randn(static_cast<size_t>(T * in), 9);
      std::vector<std::vector<float>> plain, packed;
      for (const X8Weight* w : {&q, &kk, &v}) {
        plain.emplace_back(static_cast<size_t>(T * w->plain.ne[1]), -1.0f);
        packed.emplace_back(static_cast<size_t>(T * w->plain.ne[1]), -2.0f);
      }
      const TensorView* wp[] = {&q.plain, &kk.plain, &v.plain};
      const TensorView* wx[] = {&q.packed, &kk.packed, &v.packed};
      float* yp[] = {plain[0].data(), plain[1].data(), plain[2].data()};
      float* yx[] = {packed[0].data(), packed[1].data(), packed[2].data()};
      ASSERT_TRUE(matmul_many(wp, yp, 3, x.data(), T, &pool).ok());
      ASSERT_TRUE(matmul_many(wx, yx, 3, x.data(), T, &pool).ok());
      for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(plain[i], packed[i]) << dtype_name(t) << " weight " << i << " T " << T;
      }
    }
  }
}

}  // namespace
}  // namespace slm
