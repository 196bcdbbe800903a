// Core utilities: bounded reader limits, overflow checks, half/bfloat conversion, atomic writes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/mmap.h"
#include "core/reader.h"
#include "test_util.h"

namespace slm {
namespace {

TEST(ByteReader, ReadsAndRefusesPastEnd) {
  const uint8_t buf[6] = {1, 0, 0, 0, 7, 8};
  ByteReader r(buf, sizeof buf, "buf");
  uint32_t v = 0;
  ASSERT_TRUE(r.read(&v, "v").ok());
  EXPECT_EQ(v, 1u);
  Status s = r.read(&v, "second");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("second"), std::string::npos);
  EXPECT_NE(s.message().find("truncated at offset 4"), std::string::npos);
  std::string str;
  EXPECT_FALSE(r.read_string(3, 100, &str, "s").ok());
  EXPECT_FALSE(r.read_string(2, 1, &str, "s").ok());
  EXPECT_TRUE(r.read_string(2, 2, &str, "s").ok());
  EXPECT_EQ(str, "\x07\x08");
}

TEST(ByteReader, CountCheckCatchesOverflow) {
  const uint8_t buf[16] = {};
  ByteReader r(buf, sizeof buf);
  EXPECT_TRUE(r.check_count(4, 4, "n").ok());
  EXPECT_FALSE(r.check_count(5, 4, "n").ok());
  EXPECT_FALSE(r.check_count(UINT64_MAX / 2, 4, "n").ok());
}

TEST(DType, HalfConversionIsExactForAllHalves) {
  // Every finite half maps to a float and back to itself; compared with the closed form.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (exp == 0x1f) {
      EXPECT_TRUE(mant ? std::isnan(f) : std::isinf(f));
      continue;
    }
    double expect = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, int(exp) - 25);
    if (h & 0x8000) expect = -expect;
    ASSERT_EQ(static_cast<double>(f), expect) << h;
    ASSERT_EQ(fp32_to_fp16(f), h) << h;
  }
}

TEST(DType, HalfRoundingNearestEven) {
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(fp32_to_fp16(70000.0f), 0x7c00);
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
}

TEST(DType, RowBytes) {
  uint64_t n = 0;
  EXPECT_TRUE(dtype_row_bytes(DType::Q4_K, 512, &n));
  EXPECT_EQ(n, 288u);
  EXPECT_FALSE(dtype_row_bytes(DType::Q4_0, 33, &n));
  EXPECT_EQ(dtype_traits(99u), nullptr);
  DType t;
  EXPECT_TRUE(dtype_from_name("q6_k", &t));
  EXPECT_EQ(t, DType::Q6_K);
}

TEST(Files, AtomicWriteReplacesWhole) {
  test::TempDir dir;
  std::string p = dir.file("x.bin");
  ASSERT_TRUE(write_file_atomic(p, "first").ok());
  ASSERT_TRUE(write_file_atomic(p, "second").ok());
  auto txt = read_file(p);
  ASSERT_TRUE(txt.ok());
  EXPECT_EQ(*txt, "second");
  EXPECT_FALSE(write_file_atomic(dir.file("missing/dir/x"), "y").ok());
  auto m = MappedFile::open(p);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->size(), 6u);
  EXPECT_FALSE(MappedFile::open(dir.path()).ok());
}

}  // namespace
}  // namespace slm
