// Dequantization of every block type vs the independent numpy reference (bit-exact), and the
// reference quantizers: exact bytes vs numpy, plus quantize -> dequantize error bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/quant.h"
#include "test_util.h"

namespace slm {
namespace {

using test::TempDir;

struct TypeCase {
  DType type;
  std::vector<int> half_fields;  // byte offsets of f16 scale fields inside one block
};

const std::vector<TypeCase>& block_types() {
  static const std::vector<TypeCase> k = {
      {DType::Q4_0, {0}},    {DType::Q4_1, {0, 2}},   {DType::Q5_0, {0}},   {DType::Q5_1, {0, 2}},
      {DType::Q8_0, {0}},    {DType::Q2_K, {80, 82}}, {DType::Q3_K, {108}}, {DType::Q4_K, {0, 2}},
      {DType::Q5_K, {0, 2}}, {DType::Q6_K, {208}},    {DType::Q8_K, {}},
  };
  return k;
}

// Random bytes with sane finite scales, so every quant bit pattern is exercised.
std::string random_blocks(DType t, int64_t n_blocks, std::mt19937_64& rng) {
  const DTypeTraits* tr = dtype_traits(t);
  std::string b(static_cast<size_t>(n_blocks * tr->type_size), '\0');
  for (char& c : b) c = static_cast<char>(rng() & 0xff);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  for (const auto& tc : block_types()) {
    if (tc.type != t) continue;
    for (int64_t i = 0; i < n_blocks; ++i) {
      char* blk = b.data() + i * tr->type_size;
      for (int off : tc.half_fields) {
        uint16_t h = fp32_to_fp16(nd(rng));
        std::memcpy(blk + off, &h, 2);
      }
      if (t == DType::Q8_K) {
        float d = nd(rng);
        std::memcpy(blk, &d, 4);
      }
    }
  }
  if (t == DType::F16) {  // keep halves finite: NaN payload handling is not what is tested
    for (size_t i = 0; i + 1 < b.size(); i += 2) {
      uint16_t h;
      std::memcpy(&h, b.data() + i, 2);
      if (((h >> 10) & 0x1f) == 0x1f) h = static_cast<uint16_t>(h & 0x83ff);
      std::memcpy(b.data() + i, &h, 2);
    }
  }
  return b;
}

std::string random_plain(DType t, int64_t n, std::mt19937_64& rng) {
  std::normal_distribution<double> nd(0.0, 100.0);
  std::string b;
  for (int64_t i = 0; i < n; ++i) {
    double v = nd(rng);
    char buf[8];
    size_t sz = 0;
    switch (t) {
      case DType::F32: {
        float f = static_cast<float>(v);
        std::memcpy(buf, &f, sz = 4);
        break;
      }
      case DType::F64:
        std::memcpy(buf, &v, sz = 8);
        break;
      case DType::I8: {
        int8_t x = static_cast<int8_t>(rng());
        std::memcpy(buf, &x, sz = 1);
        break;
      }
      case DType::I16: {
        int16_t x = static_cast<int16_t>(rng());
        std::memcpy(buf, &x, sz = 2);
        break;
      }
      case DType::I32: {
        int32_t x = static_cast<int32_t>(rng());
        std::memcpy(buf, &x, sz = 4);
        break;
      }
      default:
        break;
    }
    b.append(buf, sz);
  }
  return b;
}

std::string py_script() {
  return test::source_dir() + "/tests/ref/dequant_ref.py";
}

// Runs the numpy reference on a list of jobs; fails the test if it does not run.
void run_reference(const std::vector<std::string>& jobs) {
  std::string cmd = test::sh_quote(test::python_exe()) + " " + test::sh_quote(py_script());
  for (const auto& j : jobs) {
    cmd += ' ';
    cmd += test::sh_quote(j);
  }
  test::RunResult r = test::run(cmd);
  ASSERT_EQ(r.exit_code, 0) << "numpy reference failed: " << r.err;
}

std::vector<float> read_floats(const std::string& path) {
  std::string s = test::read_text(path);
  std::vector<float> v(s.size() / 4);
  if (!v.empty()) std::memcpy(v.data(), s.data(), v.size() * 4);
  return v;
}

TEST(Dequant, EveryTypeBitExactVsNumpy) {
  TempDir dir;
  std::mt19937_64 rng(1234);
  struct Job {
    DType t;
    int64_t n;
    std::string bytes;
  };
  std::vector<Job> jobs;
  for (const auto& tc : block_types()) {
    const DTypeTraits* tr = dtype_traits(tc.type);
    int64_t nb = tr->block_size == 256 ? 24 : 200;
    jobs.push_back({tc.type, nb * tr->block_size, random_blocks(tc.type, nb, rng)});
  }
  for (DType t : {DType::F16, DType::BF16}) jobs.push_back({t, 4096, random_blocks(t, 4096, rng)});
  for (DType t : {DType::F32, DType::F64, DType::I8, DType::I16, DType::I32}) {
    jobs.push_back({t, 1000, random_plain(t, 1000, rng)});
  }
  std::vector<std::string> args;
  for (const auto& j : jobs) {
    std::string name = dtype_name(j.t);
    test::write_text(dir.file(name + ".bin"), j.bytes);
    args.push_back("dequant:" + name + ":" + dir.file(name + ".bin") + ":" +
                   dir.file(name + ".f32"));
  }
  run_reference(args);
  for (const auto& j : jobs) {
    SCOPED_TRACE(dtype_name(j.t));
    ASSERT_TRUE(can_dequantize(j.t));
    std::vector<float> ours(static_cast<size_t>(j.n), -12345.0f);
    dequantize_row(j.t, j.bytes.data(), ours.data(), j.n);
    std::vector<float> ref = read_floats(dir.file(std::string(dtype_name(j.t)) + ".f32"));
    ASSERT_EQ(ref.size(), ours.size());
    for (size_t i = 0; i < ours.size(); ++i) {
      uint32_t a, b;
      std::memcpy(&a, &ours[i], 4);
      std::memcpy(&b, &ref[i], 4);
      ASSERT_EQ(a, b) << "element " << i << ": slm " << ours[i] << " numpy " << ref[i];
    }
  }
}

TEST(Dequant, UnalignedSourceAndRowSplitsAgree) {
  // Rows may start at any byte (tensor data is only 32-byte aligned; views may be offset).
  std::mt19937_64 rng(7);
  for (const auto& tc : block_types()) {
    const DTypeTraits* tr = dtype_traits(tc.type);
    std::string b = random_blocks(tc.type, 4, rng);
    std::string shifted(1, 'x');
    shifted += b;
    int64_t n = 4 * tr->block_size;
    std::vector<float> a(static_cast<size_t>(n)), c(static_cast<size_t>(n));
    dequantize_row(tc.type, b.data(), a.data(), n);
    dequantize_row(tc.type, shifted.data() + 1, c.data(), n);
    EXPECT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * 4)) << dtype_name(tc.type);
    // Two half rows give the same values as one row.
    dequantize_row(tc.type, b.data() + 2 * tr->type_size, c.data() + 2 * tr->block_size,
                   2 * tr->block_size);
    dequantize_row(tc.type, b.data(), c.data(), 2 * tr->block_size);
    EXPECT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * 4)) << dtype_name(tc.type);
  }
}

TEST(Dequant, CheckedFormRejectsBadInput) {
  float out[64];
  uint8_t in[64 * 8] = {};
  EXPECT_FALSE(dequantize_row_checked(DType::Q8_1, in, out, 32).ok());
  Status s = dequantize_row_checked(DType::Q4_0, in, out, 31);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Q4_0"), std::string::npos) << s.message();
  EXPECT_TRUE(dequantize_row_checked(DType::Q4_0, in, out, 64).ok());
  EXPECT_TRUE(dequantize_row_checked(DType::F32, in, out, 0).ok());
}

const DType k_quant_types[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1};

// Normal data plus blocks with edge cases: all zero, constant, signed zeros, exact half steps,
// one huge outlier, tiny values near the f16 subnormal range.
std::vector<float> quant_input(std::mt19937_64& rng, int64_t n_random_blocks) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n_random_blocks * 32));
  for (auto& v : x) v = nd(rng);
  std::vector<float> extra(32 * 6);
  for (int j = 0; j < 32; ++j) {
    extra[j] = 0.0f;                                    // zeros
    extra[32 + j] = 1.5f;                               // constant
    extra[64 + j] = j % 2 ? -0.0f : 0.0f;               // signed zeros
    extra[96 + j] = static_cast<float>(j - 16) * 0.5f;  // exact steps
    extra[128 + j] = j == 5 ? 1000.0f : nd(rng);        // outlier
    extra[160 + j] = nd(rng) * 1e-6f;                   // tiny
  }
  x.insert(x.end(), extra.begin(), extra.end());
  return x;
}

TEST(Quantize, BytesMatchNumpyReference) {
  TempDir dir;
  std::mt19937_64 rng(99);
  std::vector<float> x = quant_input(rng, 300);
  const int64_t n = static_cast<int64_t>(x.size());
  test::write_text(dir.file("x.f32"),
                   std::string(reinterpret_cast<const char*>(x.data()), x.size() * 4));
  std::vector<std::string> args;
  for (DType t : k_quant_types) {
    std::string name = dtype_name(t);
    args.push_back("quant:" + name + ":" + dir.file("x.f32") + ":" + dir.file(name + ".q"));
  }
  run_reference(args);
  for (DType t : k_quant_types) {
    SCOPED_TRACE(dtype_name(t));
    const DTypeTraits* tr = dtype_traits(t);
    std::string ours(static_cast<size_t>(n / 32 * tr->type_size), '\0');
    ASSERT_TRUE(quantize_row(t, x.data(), ours.data(), n).ok());
    std::string ref = test::read_text(dir.file(std::string(dtype_name(t)) + ".q"));
    ASSERT_EQ(ref.size(), ours.size());
    for (size_t i = 0; i < ours.size(); ++i) {
      ASSERT_EQ(static_cast<uint8_t>(ours[i]), static_cast<uint8_t>(ref[i]))
          << "byte " << i << " (block " << i / static_cast<size_t>(tr->type_size) << ")";
    }
  }
}

// |x - dequant(quant(x))| per block, against the step size each format guarantees.
TEST(Quantize, RoundTripErrorBounds) {
  std::mt19937_64 rng(5);
  std::vector<float> x = quant_input(rng, 200);
  const int64_t n = static_cast<int64_t>(x.size());
  for (DType t :
       {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
    SCOPED_TRACE(dtype_name(t));
    const DTypeTraits* tr = dtype_traits(t);
    std::string q(static_cast<size_t>(n / tr->block_size * tr->type_size), '\0');
    ASSERT_TRUE(quantize_row(t, x.data(), q.data(), n).ok());
    std::vector<float> y(x.size());
    dequantize_row(t, q.data(), y.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      const float* xb = &x[static_cast<size_t>(b * 32)];
      float amax = 0, mn = xb[0], mx = xb[0];
      for (int j = 0; j < 32; ++j) {
        amax = std::max(amax, std::fabs(xb[j]));
        mn = std::min(mn, xb[j]);
        mx = std::max(mx, xb[j]);
      }
      for (int j = 0; j < 32; ++j) {
        const float xv = xb[j], yv = y[static_cast<size_t>(b * 32 + j)];
        double bound = 0;
        switch (t) {
          case DType::F16:
            bound = std::fabs(xv) * 0x1p-11 + 0x1p-25;
            break;
          case DType::BF16:
            bound = std::fabs(xv) * 0x1p-8;
            break;
          // half a step, plus the f16 rounding of the scale times the largest quant
          case DType::Q8_0:
            bound = amax / 127.0 * (0.5 + 127 * 0x1p-11) + 1e-7;
            break;
          // one step: the extreme opposite to the max is clamped to the top code
          case DType::Q4_0:
            bound = amax / 8.0 * (1.0 + 8 * 0x1p-10) + 1e-7;
            break;
          case DType::Q5_0:
            bound = amax / 16.0 * (1.0 + 16 * 0x1p-10) + 1e-7;
            break;
          case DType::Q4_1:
            bound = (mx - mn) / 15.0 * (0.5 + 15 * 0x1p-10) + std::fabs(mn) * 0x1p-10 + 1e-7;
            break;
          case DType::Q5_1:
            bound = (mx - mn) / 31.0 * (0.5 + 31 * 0x1p-10) + std::fabs(mn) * 0x1p-10 + 1e-7;
            break;
          default:
            break;
        }
        // An f16 scale near the subnormal range is off by up to half its step (2^-25) in
        // absolute terms, times the largest quant.
        if (t != DType::F16 && t != DType::BF16) bound += 128 * 0x1p-25;
        ASSERT_LE(std::fabs(static_cast<double>(xv) - yv), bound)
            << "block " << b << " element " << j << ": " << xv << " -> " << yv;
      }
    }
  }
}

TEST(Quantize, RejectsUnsupportedAndBadInput) {
  std::vector<float> x(256, 1.0f);
  std::vector<uint8_t> out(4096);
  Status s = quantize_row(DType::Q8_1, x.data(), out.data(), 256);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Q8_1"), std::string::npos) << s.message();
  EXPECT_FALSE(quantize_row(DType::Q8_0, x.data(), out.data(), 33).ok());
  x[3] = std::nanf("");
  EXPECT_FALSE(quantize_row(DType::Q4_0, x.data(), out.data(), 256).ok());
  x[3] = INFINITY;
  EXPECT_FALSE(quantize_row(DType::Q8_0, x.data(), out.data(), 256).ok());
}

}  // namespace
}  // namespace slm
