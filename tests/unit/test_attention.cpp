// Typed KV cache attention: stored rows against the reference quantizers, and the SIMD attention
// over F32/F16/Q8_0 rows against the scalar oracle on the same stored bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/ops.h"
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

// Σ(a-b)² / Σb²
double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return den > 0 ? num / den : num;
}

TEST(KvCache, StoredRowsMatchTheReferenceQuantizers) {
  const int64_t D = 128;
  std::vector<float> x = randn(D, 1, 3.0f);
  // F16 and Q8_0 rows are exactly what the GGUF reference quantizers produce.
  for (DType t : {DType::F16, DType::Q8_0}) {
    std::vector<uint8_t> ours(kv_row_bytes(t, D)), ref(kv_row_bytes(t, D));
    kv_store_row(t, x.data(), ours.data(), D);
    ASSERT_TRUE(quantize_row(t, x.data(), ref.data(), D).ok());
    EXPECT_EQ(ours, ref) << dtype_name(t);
    std::vector<float> back(D), deq(D);
    kv_load_row(t, ours.data(), back.data(), D);
    dequantize_row(t, ref.data(), deq.data(), D);
    EXPECT_EQ(0, std::memcmp(back.data(), deq.data(), D * sizeof(float))) << dtype_name(t);
  }
  std::vector<uint8_t> f32(kv_row_bytes(DType::F32, D));
  kv_store_row(DType::F32, x.data(), f32.data(), D);
  EXPECT_EQ(0, std::memcmp(f32.data(), x.data(), D * sizeof(float)));
}

// The F16C store rounds exactly like the scalar converter, over rounding ties, denormals,
// overflow and infinities.
TEST(KvCache, F16StoreMatchesScalarConverterOnEdgeValues) {
  std::vector<float> x = randn(200, 4, 100.0f);
  const float edge[] = {65504.0f, 65520.0f, 65519.0f, 1e6f, -1e6f, 6e-8f, 3e-8f, 2.98e-8f,
                        6.1e-5f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, -0.0f,
                        INFINITY, -INFINITY, 1e-10f, 5.96e-8f};
  for (float e : edge) x.push_back(e);
  for (int i = 0; i < 4000; ++i) x.push_back(std::ldexp(static_cast<float>(i % 97) + 0.5f, i % 40 - 30));
  std::vector<uint8_t> got(x.size() * 2);
  kv_store_row(DType::F16, x.data(), got.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, got.data() + 2 * i, 2);
    EXPECT_EQ(h, fp32_to_fp16(x[i])) << "x = " << x[i];
  }
}

TEST(KvCache, TypeChecks) {
  EXPECT_TRUE(check_kv_type(DType::F16, 8).ok());
  EXPECT_TRUE(check_kv_type(DType::F32, 8).ok());
  EXPECT_FALSE(check_kv_type(DType::Q8_0, 8).ok());
  EXPECT_TRUE(check_kv_type(DType::Q8_0, 64).ok());
  EXPECT_FALSE(check_kv_type(DType::Q4_0, 64).ok());
  EXPECT_EQ(kv_row_bytes(DType::Q8_0, 64), 68u);
}

TEST(KvCache, SimdAttentionMatchesScalarOracle) {
  for (DType t : {DType::F32, DType::F16, DType::Q8_0}) {
    for (int64_t D : {32, 40, 64, 80, 128, 36}) {
      if (!kv_type_supported(t, D)) continue;
      for (int64_t n_pos : {1, 2, 7, 33, 300}) {
        const size_t row = kv_row_bytes(t, D);
        const size_t stride = row + 6;  // rows need not be packed or aligned
        std::vector<uint8_t> k(stride * n_pos), v(stride * n_pos);
        for (int64_t j = 0; j < n_pos; ++j) {
          std::vector<float> kr = randn(D, 100 + j, 1.0f), vr = randn(D, 900 + j, 1.0f);
          kv_store_row(t, kr.data(), k.data() + j * stride, D);
          kv_store_row(t, vr.data(), v.data() + j * stride, D);
        }
        std::vector<float> q = randn(D, 7, 1.0f), scores(n_pos), out(D), ref(D);
        const float scale = 1.0f / std::sqrt(static_cast<float>(D));
        attention_head_kv(t, q.data(), k.data(), v.data(), stride, n_pos, D, scale,
                          scores.data(), out.data());
        attention_head_kv_ref(t, q.data(), k.data(), v.data(), stride, n_pos, D, scale,
                              scores.data(), ref.data());
        EXPECT_LT(nmse(out, ref), 1e-7) << dtype_name(t) << " D=" << D << " n=" << n_pos;
      }
    }
  }
}

// Query heads sharing a KV head (GQA) computed together give each head exactly what it gets
// alone, and match the scalar oracle; odd head counts, short and ragged row counts.
TEST(KvCache, GroupedHeadsMatchOneHeadAtATime) {
  for (DType t : {DType::F32, DType::F16, DType::Q8_0}) {
    for (int64_t D : {32, 40, 64, 36}) {
      if (!kv_type_supported(t, D)) continue;
      for (int64_t n_pos : {1, 3, 4, 5, 33, 300}) {
        const size_t stride = kv_row_bytes(t, D) + 2;
        std::vector<uint8_t> k(stride * n_pos), v(stride * n_pos);
        for (int64_t j = 0; j < n_pos; ++j) {
          kv_store_row(t, randn(D, 300 + j).data(), k.data() + j * stride, D);
          kv_store_row(t, randn(D, 700 + j).data(), v.data() + j * stride, D);
        }
        for (int64_t G : {1, 2, 3, 5}) {
          std::vector<float> q = randn(G * D, 11 + G), scores(G * n_pos), out(G * D);
          std::vector<float> one(G * D), ref(G * D), s1(n_pos);
          const float scale = 1.0f / std::sqrt(static_cast<float>(D));
          attention_group_kv(t, q.data(), G, k.data(), v.data(), stride, n_pos, D, scale,
                             scores.data(), out.data());
          attention_group_kv_ref(t, q.data(), G, k.data(), v.data(), stride, n_pos, D, scale,
                                 scores.data(), ref.data());
          for (int64_t h = 0; h < G; ++h) {
            attention_head_kv(t, q.data() + h * D, k.data(), v.data(), stride, n_pos, D, scale,
                              s1.data(), one.data() + h * D);
          }
          const std::string what = std::string(dtype_name(t)) + " D=" + std::to_string(D) +
                                   " n=" + std::to_string(n_pos) + " G=" + std::to_string(G);
          EXPECT_EQ(0, std::memcmp(out.data(), one.data(), out.size() * sizeof(float))) << what;
          EXPECT_LT(nmse(out, ref), 1e-7) << what;
        }
      }
    }
  }
}

// Consecutive query tokens against the same rows (a prompt): each query matches the scalar
// oracle over the rows it may see, and gets the same bits alone as in any tile.
TEST(KvCache, TiledQueriesMatchTheOracle) {
  for (DType t : {DType::F32, DType::F16, DType::Q8_0}) {
    for (int64_t D : {32, 64, 40, 36}) {
      if (!kv_type_supported(t, D)) continue;
      for (int64_t n_first : {1, 2, 9, 100}) {
        const int64_t rows = n_first + k_attention_tile;
        const size_t stride = kv_row_bytes(t, D) + 6;
        std::vector<uint8_t> k(stride * rows), v(stride * rows);
        for (int64_t j = 0; j < rows; ++j) {
          kv_store_row(t, randn(D, 40 + j).data(), k.data() + j * stride, D);
          kv_store_row(t, randn(D, 4000 + j).data(), v.data() + j * stride, D);
        }
        const size_t qs = static_cast<size_t>(D) + 3, os = static_cast<size_t>(D) + 5;
        const std::vector<float> q = randn(qs * k_attention_tile, 77, 1.5f);
        const float scale = 1.0f / std::sqrt(static_cast<float>(D));
        std::vector<float> scores(8 * rows), ref(D), alone(D), s1(rows);
        for (int m = 1; m <= k_attention_tile; ++m) {
          std::vector<float> out(os * m, -1.0f);
          attention_tile_kv(t, q.data(), qs, m, n_first, k.data(), v.data(), stride, D, scale,
                            scores.data(), out.data(), os);
          for (int i = 0; i < m; ++i) {
            const std::string what = std::string(dtype_name(t)) + " D=" + std::to_string(D) +
                                     " n_first=" + std::to_string(n_first) +
                                     " m=" + std::to_string(m) + " i=" + std::to_string(i);
            attention_head_kv_ref(t, q.data() + i * qs, k.data(), v.data(), stride, n_first + i,
                                  D, scale, s1.data(), ref.data());
            std::vector<float> got(out.begin() + i * os, out.begin() + i * os + D);
            EXPECT_LT(nmse(got, ref), 1e-7) << what;
            attention_tile_kv(t, q.data() + i * qs, qs, 1, n_first + i, k.data(), v.data(),
                              stride, D, scale, scores.data(), alone.data(), os);
            EXPECT_EQ(0, std::memcmp(got.data(), alone.data(), D * sizeof(float))) << what;
          }
          // Nothing written past the m outputs' D values.
          for (int i = 0; i < m; ++i) {
            for (size_t c = D; c < os; ++c) EXPECT_EQ(out[i * os + c], -1.0f);
          }
        }
      }
    }
  }
}

// The F16 and Q8_0 caches change attention output only as much as their rounding allows.
TEST(KvCache, QuantizedCacheStaysCloseToF32) {
  const int64_t D = 64, n_pos = 200;
  const size_t s32 = kv_row_bytes(DType::F32, D);
  std::vector<uint8_t> k32(s32 * n_pos), v32(s32 * n_pos);
  std::vector<std::vector<float>> ks, vs;
  for (int64_t j = 0; j < n_pos; ++j) {
    ks.push_back(randn(D, 10 + j));
    vs.push_back(randn(D, 5000 + j));
    kv_store_row(DType::F32, ks.back().data(), k32.data() + j * s32, D);
    kv_store_row(DType::F32, vs.back().data(), v32.data() + j * s32, D);
  }
  std::vector<float> q = randn(D, 3), scores(n_pos), base(D);
  attention_head_kv_ref(DType::F32, q.data(), k32.data(), v32.data(), s32, n_pos, D, 0.125f,
                        scores.data(), base.data());
  for (auto [t, bound] : {std::pair{DType::F16, 1e-6}, std::pair{DType::Q8_0, 1e-3}}) {
    const size_t s = kv_row_bytes(t, D);
    std::vector<uint8_t> k(s * n_pos), v(s * n_pos);
    for (int64_t j = 0; j < n_pos; ++j) {
      kv_store_row(t, ks[j].data(), k.data() + j * s, D);
      kv_store_row(t, vs[j].data(), v.data() + j * s, D);
    }
    std::vector<float> out(D);
    attention_head_kv(t, q.data(), k.data(), v.data(), s, n_pos, D, 0.125f, scores.data(),
                      out.data());
    EXPECT_LT(nmse(out, base), bound) << dtype_name(t);
  }
}

}  // namespace
}  // namespace slm
