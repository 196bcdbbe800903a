// K-quant dot kernels: AVX2 Q8_K quantizer and tiles against the scalar references, the scalar
// tiles against dequantize_row dotted in double, and the AVX2 dequantizers bit for bit.
#include <gtest/gtest.h>

#include <time.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/qdot.h"
#include "kernels/quant.h"
#include "kernels/simd.h"

namespace slm {
namespace {

constexpr DType k_types[] = {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

size_t block_bytes(DType t) { return static_cast<size_t>(dtype_traits(t)->type_size); }

// Byte offsets of the f16 d and dmin (-1: none) fields in each super-block.
void scale_offsets(DType t, int* d, int* dmin) {
  switch (t) {
    case DType::Q2_K:
      *d = 80, *dmin = 82;
      return;
    case DType::Q3_K:
      *d = 108, *dmin = -1;
      return;
    case DType::Q4_K:
    case DType::Q5_K:
      *d = 0, *dmin = 2;
      return;
    default:
      *d = 208, *dmin = -1;
      return;
  }
}

void put_half(uint8_t* p, float f) {
  const uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, 2);
}

// rows x n weights: random bytes (every byte pattern of the quants and scales is a valid
// block) with finite d/dmin. pow2 = true makes d and dmin powers of two.
std::vector<uint8_t> random_weights(DType t, int rows, int64_t n, std::mt19937_64& rng,
                                    bool pow2 = false) {
  const size_t nb = static_cast<size_t>(n / 256), bytes = block_bytes(t);
  std::vector<uint8_t> w(static_cast<size_t>(rows) * nb * bytes + 1);  // +1: unaligned copies
  std::uniform_int_distribution<int> byte(0, 255), expo(-6, -1);
  std::uniform_real_distribution<float> mag(0.001f, 0.05f);
  for (auto& x : w) x = static_cast<uint8_t>(byte(rng));
  int od, om;
  scale_offsets(t, &od, &om);
  for (size_t b = 0; b < rows * nb; ++b) {
    uint8_t* blk = w.data() + b * bytes;
    const float sign = byte(rng) & 1 ? -1.0f : 1.0f;
    put_half(blk + od, sign * (pow2 ? std::ldexp(1.0f, expo(rng)) : mag(rng)));
    if (om >= 0) put_half(blk + om, pow2 ? std::ldexp(1.0f, expo(rng)) : mag(rng));
  }
  return w;
}

std::vector<float> random_floats(int64_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = g(rng);
  // Some structure the quantizer must get right: an all-zero block, a block with one outlier,
  // and values whose quotient by d = 1 is exactly halfway (ties round to even).
  if (n >= 1024) {
    std::fill(x.begin(), x.begin() + 256, 0.0f);
    x[300] = 40.0f;
    for (int j = 512; j < 768; ++j) x[static_cast<size_t>(j)] = static_cast<float>(j % 9) - 4.5f;
    x[600] = 127.0f;
  }
  return x;
}

const DotKernel& kernel(DType t, bool simd) {
  const DotKernel* k = dot_kernel(t, simd);
  EXPECT_NE(k, nullptr) << dtype_name(t);
  return *k;
}

// Activation rows (nc x n) quantized by k.
std::vector<ActBlockQ8_K> quantize_rows(const DotKernel& k, const std::vector<float>& x, int nc,
                                        int64_t n) {
  std::vector<ActBlockQ8_K> a(static_cast<size_t>(nc * n / 256));
  for (int c = 0; c < nc; ++c) k.quantize_act(x.data() + c * n, a.data() + c * n / 256, n);
  return a;
}

// Runs a tile; s has a leading dimension ls = nr + 3 and sentinels that must stay untouched.
std::vector<float> run_tile(const DotKernel& k, const uint8_t* w, int64_t n, int nr,
                            const std::vector<ActBlockQ8_K>& a, int nc) {
  const int64_t ls = nr + 3;
  std::vector<float> s(static_cast<size_t>(nc * ls), -12345.0f);
  const size_t bw = static_cast<size_t>(n / 256) * block_bytes(k.wtype);
  k.tile(n, w, bw, nr, a.data(), static_cast<size_t>(n / 256) * sizeof(ActBlockQ8_K), nc,
         s.data(), ls);
  std::vector<float> out;
  for (int c = 0; c < nc; ++c) {
    for (int64_t r = 0; r < ls; ++r) {
      const float v = s[static_cast<size_t>(c * ls + r)];
      if (r < nr) {
        out.push_back(v);
      } else {
        EXPECT_EQ(v, -12345.0f) << "tile wrote outside its nr rows";
      }
    }
  }
  return out;
}

TEST(QdotKquant, KernelsRegistered) {
  ASSERT_TRUE(cpu_has_avx2_fma()) << "this suite checks the AVX2 kernels; the CPU lacks AVX2";
  for (DType t : k_types) {
    const DotKernel& s = kernel(t, false);
    const DotKernel& v = kernel(t, true);
    EXPECT_EQ(s.wtype, t);
    EXPECT_EQ(v.wtype, t);
    EXPECT_EQ(s.atype, ActType::q8_k);
    EXPECT_EQ(v.atype, ActType::q8_k);
    EXPECT_EQ(std::string(s.isa), "scalar");
    EXPECT_EQ(std::string(v.isa), "avx2");
  }
  EXPECT_EQ(dot_kernel(DType::Q8_K, true), nullptr);
}

TEST(QdotKquant, QuantizerAvx2MatchesScalarBytewise) {
  std::mt19937_64 rng(1);
  const DotKernel& s = kernel(DType::Q4_K, false);
  const DotKernel& v = kernel(DType::Q4_K, true);
  for (int64_t n : {256, 1024, 4096}) {
    for (int rep = 0; rep < 5; ++rep) {
      std::vector<float> x = random_floats(n, rng);
      if (rep == 1) {
        for (auto& f : x) f *= 1e-30f;  // tiny scales
      }
      if (rep == 2) x[5] = NAN;  // ignored by amax, quantized to -127 by both
      const size_t nb = static_cast<size_t>(n / 256);
      std::vector<ActBlockQ8_K> qa(nb), qb(nb);
      s.quantize_act(x.data(), qa.data(), n);
      v.quantize_act(x.data(), qb.data(), n);
      ASSERT_EQ(0, std::memcmp(qa.data(), qb.data(), nb * sizeof(ActBlockQ8_K))) << n;
      // The format's own invariants, from the definition.
      for (size_t b = 0; b < nb; ++b) {
        for (int j = 0; j < 16; ++j) {
          int sum = 0;
          for (int l = 0; l < 16; ++l) sum += qa[b].qs[16 * j + l];
          ASSERT_EQ(sum, qa[b].bsums[j]);
        }
        if (rep == 0) {
          for (int l = 0; l < 256; ++l) {
            const float xv = x[b * 256 + static_cast<size_t>(l)];
            ASSERT_LE(std::fabs(xv - qa[b].d * qa[b].qs[l]), 0.5f * qa[b].d * 1.0001f + 1e-30f);
          }
        }
      }
    }
  }
  // Ties to even: block 2 of random_floats has d = 1 and halves.
  std::vector<float> x = random_floats(1024, rng);
  std::vector<ActBlockQ8_K> q(4);
  s.quantize_act(x.data(), q.data(), 1024);
  EXPECT_EQ(q[0].d, 0.0f);
  EXPECT_EQ(q[2].d, 1.0f);
  EXPECT_EQ(q[2].qs[0], 4);   // x[512] = 3.5 -> 4 (even)
  EXPECT_EQ(q[2].qs[1], -4);  // -4.5 -> -4
  EXPECT_EQ(q[2].qs[6], 0);   // 0.5 -> 0
  EXPECT_EQ(q[2].qs[3], -2);  // -2.5 -> -2
}

// Normalized MSE of the AVX2 tile against the scalar tile over random shapes.
TEST(QdotKquant, Avx2TileMatchesScalar) {
  std::mt19937_64 rng(2);
  std::uniform_int_distribution<int> rows(1, 7), cols(1, 6), blocks(1, 16);
  for (DType t : k_types) {
    const DotKernel& ks = kernel(t, false);
    const DotKernel& kv = kernel(t, true);
    for (int rep = 0; rep < 12; ++rep) {
      const int nr = rows(rng), nc = cols(rng);
      const int64_t n = 256 * blocks(rng);
      const auto w = random_weights(t, nr, n, rng);
      const auto x = random_floats(n * nc, rng);
      const auto a = quantize_rows(ks, x, nc, n);
      const auto ref = run_tile(ks, w.data(), n, nr, a, nc);
      const auto got = run_tile(kv, w.data(), n, nr, a, nc);
      double err = 0, norm = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        err += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
        norm += double(ref[i]) * ref[i];
      }
      EXPECT_LT(err / std::max(norm, 1e-30), 1e-7)
          << dtype_name(t) << " nr=" << nr << " nc=" << nc << " n=" << n;
    }
  }
}

// Decode (nc = 1) pairs row i with row i + nr/2 and streams each super-block chunk by chunk;
// a row's result must still be bit-identical to its column in a multi-column call, so a token's
// logits do not depend on how many tokens share the call. nr = 1..9: pairs plus an odd middle.
TEST(QdotKquant, Avx2DecodeSameAsMultiColumnBitForBit) {
  std::mt19937_64 rng(6);
  for (DType t : k_types) {
    const DotKernel& ks = kernel(t, false);
    const DotKernel& kv = kernel(t, true);
    for (int nr = 1; nr <= 9; ++nr) {
      const int64_t n = 768;
      const auto w = random_weights(t, nr, n, rng);
      const auto x = random_floats(n * 3, rng);
      const auto a = quantize_rows(ks, x, 3, n);
      const std::vector<ActBlockQ8_K> a0(a.begin(), a.begin() + n / 256);
      const auto one = run_tile(kv, w.data(), n, nr, a0, 1);
      const auto three = run_tile(kv, w.data(), n, nr, a, 3);
      EXPECT_EQ(one, std::vector<float>(three.begin(), three.begin() + nr))
          << dtype_name(t) << " nr=" << nr;
    }
  }
}

// Unaligned weight rows: the kernels must load bytes, not assume alignment.
TEST(QdotKquant, Avx2TileUnalignedWeights) {
  std::mt19937_64 rng(3);
  for (DType t : k_types) {
    const int64_t n = 512;
    auto w = random_weights(t, 3, n, rng);
    std::vector<uint8_t> shifted(w.size());
    std::memcpy(shifted.data() + 1, w.data(), w.size() - 1);
    const auto x = random_floats(n * 2, rng);
    const auto a = quantize_rows(kernel(t, false), x, 2, n);
    EXPECT_EQ(run_tile(kernel(t, true), w.data(), n, 3, a, 2),
              run_tile(kernel(t, true), shifted.data() + 1, n, 3, a, 2))
        << dtype_name(t);
  }
}

// With power-of-two d/dmin, activation d = 1 and small activation quants every product and
// partial sum is exactly representable, so summation order cannot matter: bit-equal results.
TEST(QdotKquant, Avx2TileExactOnRepresentableInputs) {
  std::mt19937_64 rng(4);
  std::uniform_int_distribution<int> rows(1, 7), cols(1, 6), blocks(1, 4), small(-2, 2);
  for (DType t : k_types) {
    for (int rep = 0; rep < 10; ++rep) {
      const int nr = rows(rng), nc = cols(rng);
      const int64_t n = 256 * blocks(rng);
      const auto w = random_weights(t, nr, n, rng, /*pow2=*/true);
      std::vector<ActBlockQ8_K> a(static_cast<size_t>(nc * n / 256));
      for (auto& b : a) {
        b.d = 1.0f;
        for (auto& q : b.qs) q = static_cast<int8_t>(small(rng));
        for (int j = 0; j < 16; ++j) {
          int s = 0;
          for (int l = 0; l < 16; ++l) s += b.qs[16 * j + l];
          b.bsums[j] = static_cast<int16_t>(s);
        }
      }
      EXPECT_EQ(run_tile(kernel(t, false), w.data(), n, nr, a, nc),
                run_tile(kernel(t, true), w.data(), n, nr, a, nc))
          << dtype_name(t) << " nr=" << nr << " nc=" << nc << " n=" << n;
    }
  }
}

// The scalar tile against the format's definition: dequantize_row (quant.cpp) for the weight,
// d * qs for the activation, dotted in double.
TEST(QdotKquant, ScalarTileMatchesDequantizedDot) {
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> rows(1, 7), cols(1, 6), blocks(1, 16);
  for (DType t : k_types) {
    const DotKernel& ks = kernel(t, false);
    for (int rep = 0; rep < 6; ++rep) {
      const int nr = rows(rng), nc = cols(rng);
      const int64_t n = 256 * blocks(rng);
      const auto w = random_weights(t, nr, n, rng);
      const auto x = random_floats(n * nc, rng);
      const auto a = quantize_rows(ks, x, nc, n);
      const auto got = run_tile(ks, w.data(), n, nr, a, nc);
      const size_t bw = static_cast<size_t>(n / 256) * block_bytes(t);
      std::vector<float> row(static_cast<size_t>(n));
      for (int r = 0; r < nr; ++r) {
        dequantize_row(t, w.data() + r * bw, row.data(), n);
        for (int c = 0; c < nc; ++c) {
          double dot = 0, mag = 0;
          for (int64_t k = 0; k < n; ++k) {
            const ActBlockQ8_K& b = a[static_cast<size_t>((c * n + k) / 256)];
            const double av = double(b.d) * b.qs[k % 256];
            dot += double(row[static_cast<size_t>(k)]) * av;
            mag += std::fabs(double(row[static_cast<size_t>(k)]) * av);
          }
          EXPECT_NEAR(got[static_cast<size_t>(c * nr + r)], dot, 1e-5 * mag + 1e-30)
              << dtype_name(t) << " r=" << r << " c=" << c << " n=" << n;
        }
      }
    }
  }
}

TEST(QdotKquant, DequantizeFastBitExact) {
  std::mt19937_64 rng(6);
  for (DType t : k_types) {
    for (int64_t n : {256, 768, 4096}) {
      const auto w = random_weights(t, 1, n, rng);
      std::vector<float> ref(static_cast<size_t>(n)), got(static_cast<size_t>(n), -1.0f);
      dequantize_row(t, w.data(), ref.data(), n);
      ASSERT_TRUE(kquant_dequantize_fast(t, w.data(), got.data(), n)) << dtype_name(t);
      ASSERT_EQ(0, std::memcmp(ref.data(), got.data(), ref.size() * 4)) << dtype_name(t) << n;
      std::fill(got.begin(), got.end(), -1.0f);
      dequantize_row_fast(t, w.data(), got.data(), n);
      ASSERT_EQ(0, std::memcmp(ref.data(), got.data(), ref.size() * 4)) << dtype_name(t) << n;
    }
  }
  float dummy = 0;
  EXPECT_FALSE(kquant_dequantize_fast(DType::Q8_0, &dummy, &dummy, 0));
}

// Microbenchmark, not a test: ./test_qdot_kquant --gtest_also_run_disabled_tests
// --gtest_filter='*Bench*'. GB/s of weight bytes at nc = 1 on a 64 MiB matrix (beyond L3), and
// GMAC/s at nc = 4 on a matrix that fits in L2. Timed in thread CPU seconds, so a loaded
// machine (other builds on the 2 cores) distorts the numbers less than wall time would.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

TEST(QdotKquant, DISABLED_Bench) {
  std::mt19937_64 rng(7);
  const int64_t n = 4096;
  for (DType t : k_types) {
    const DotKernel& k = kernel(t, true);
    const size_t bw = static_cast<size_t>(n / 256) * block_bytes(t);
    const auto x = random_floats(4 * n, rng);
    const auto a = quantize_rows(k, x, 4, n);
    const size_t ba = static_cast<size_t>(n / 256) * sizeof(ActBlockQ8_K);
    // Decode: stream the big matrix once per pass, 4 rows per call as the driver does.
    const int big_rows = static_cast<int>((size_t{64} << 20) / bw);
    const auto wb = random_weights(t, big_rows, n, rng);
    std::vector<float> s(static_cast<size_t>(big_rows) * 4);
    double best = 1e30;
    for (int pass = 0; pass < 4; ++pass) {
      const double t0 = cpu_seconds();
      for (int r = 0; r < big_rows; r += 4) {
        k.tile(n, wb.data() + static_cast<size_t>(r) * bw, bw, std::min(4, big_rows - r), a.data(),
               ba, 1, s.data() + r, big_rows);
      }
      best = std::min(best, cpu_seconds() - t0);
    }
    const double gbs = double(big_rows) * bw / best / 1e9;
    // Prompt: 64 rows (~150 KiB at Q4_K) in L2, four columns per call.
    const int small_rows = 64;
    const auto ws = random_weights(t, small_rows, n, rng);
    std::vector<float> s4(static_cast<size_t>(small_rows) * 4);
    const int reps = 200;
    const double t0 = cpu_seconds();
    for (int rep = 0; rep < reps; ++rep) {
      for (int r = 0; r < small_rows; r += 4) {
        k.tile(n, ws.data() + static_cast<size_t>(r) * bw, bw, 4, a.data(), ba, 4, s4.data() + r,
               small_rows);
      }
    }
    const double sec = cpu_seconds() - t0;
    const double gmac = double(reps) * small_rows * 4 * n / sec / 1e9;
    std::printf("%-5s nc=1: %6.2f GB/s weights (%.1f GMAC/s)   nc=4 in L2: %6.2f GMAC/s\n",
                dtype_name(t), gbs, double(big_rows) * n / best / 1e9, gmac);
  }
}

}  // namespace
}  // namespace slm
