// Hostile GGUF input: one hand-made corruption per field of a small valid file (each must fail
// with a message naming the field), truncation at every prefix, and bounded memory use.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "formats/gguf.h"

namespace slm {
namespace {

// Builds a GGUF image byte by byte (independently of GgufWriter) and remembers where each
// named field starts, so a case can overwrite exactly that field.
struct Image {
  std::string b;
  std::map<std::string, size_t> at;

  void mark(const std::string& field) { at[field] = b.size(); }
  template <class T>
  void put(T v) {
    char c[sizeof(T)];
    std::memcpy(c, &v, sizeof(T));
    b.append(c, sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b += s;
  }
  template <class T>
  void set(const std::string& field, T v) {
    std::memcpy(&b[at.at(field)], &v, sizeof(T));
  }
};

constexpr uint32_t k_string = 8, k_array = 9, k_u32 = 4, k_i32 = 5, k_u8 = 0, k_bool = 7;

// v3; 5 kvs (string, alignment, i32 array, nested array, bool); two tensors: Q8_0 [32, 2]
// (68 bytes at 0) and F32 [8] (32 bytes at 96). The data ends exactly at the end of the file.
Image base_image(int nest_levels = 2) {
  Image m;
  m.mark("magic");
  m.b += "GGUF";
  m.mark("version");
  m.put<uint32_t>(3);
  m.mark("n_tensors");
  m.put<uint64_t>(2);
  m.mark("n_kv");
  m.put<uint64_t>(5);

  m.mark("kv0.keylen");
  m.str("general.architecture");
  m.mark("kv0.type");
  m.put<uint32_t>(k_string);
  m.mark("kv0.strlen");
  m.str("llama");

  m.str("general.alignment");
  m.mark("align.type");
  m.put<uint32_t>(k_u32);
  m.mark("align.value");
  m.put<uint32_t>(32);

  m.str("a.arr");
  m.put<uint32_t>(k_array);
  m.mark("arr.elemtype");
  m.put<uint32_t>(k_i32);
  m.mark("arr.len");
  m.put<uint64_t>(3);
  for (int32_t v : {1, -2, 3}) m.put<int32_t>(v);

  m.str("a.nst");
  m.put<uint32_t>(k_array);
  for (int level = 1; level < nest_levels; ++level) {
    m.mark("nst.elemtype" + std::to_string(level));
    m.put<uint32_t>(k_array);
    m.mark("nst.len" + std::to_string(level));
    m.put<uint64_t>(1);
  }
  m.mark("nst.leaftype");
  m.put<uint32_t>(k_u8);
  m.put<uint64_t>(2);
  m.put<uint8_t>(1);
  m.put<uint8_t>(2);

  m.mark("kv4.key");
  m.str("a.bol");
  m.put<uint32_t>(k_bool);
  m.mark("bool.value");
  m.put<uint8_t>(1);

  m.mark("t0.namelen");
  m.str("blk.0.attn_q.weight");
  m.mark("t0.ndims");
  m.put<uint32_t>(2);
  m.mark("t0.ne0");
  m.put<uint64_t>(32);
  m.mark("t0.ne1");
  m.put<uint64_t>(2);
  m.mark("t0.type");
  m.put<uint32_t>(8);  // Q8_0
  m.mark("t0.offset");
  m.put<uint64_t>(0);

  m.mark("t1.namelen");
  m.str("blk.0.attn_k.weight");
  m.mark("t1.ndims");
  m.put<uint32_t>(1);
  m.mark("t1.ne0");
  m.put<uint64_t>(8);
  m.mark("t1.type");
  m.put<uint32_t>(0);  // F32
  m.mark("t1.offset");
  m.put<uint64_t>(96);

  m.b.resize((m.b.size() + 31) / 32 * 32, '\0');
  m.mark("data");
  for (int i = 0; i < 68; ++i) m.b += static_cast<char>(i);
  m.b.resize(m.b.size() + 28, '\0');
  for (int i = 0; i < 8; ++i) m.put<float>(static_cast<float>(i));
  return m;
}

Expected<GgufFile> parse(const std::string& img) {
  return GgufFile::parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "hostile.gguf");
}

TEST(GgufHostile, BaseImageIsValid) {
  Image m = base_image();
  auto f = parse(m.b);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->get_int_array("a.arr").value(), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f->find("a.nst")->array[0].ints, (std::vector<int64_t>{1, 2}));
  // The deepest nesting accepted is 8 levels of arrays.
  EXPECT_TRUE(parse(base_image(8).b).ok()) << parse(base_image(8).b).message();
}

struct Case {
  const char* name;
  std::function<std::string()> make;
  std::vector<std::string> expect;  // substrings the error message must contain
};

template <class T>
std::function<std::string()> patch(const std::string& field, T v) {
  return [field, v] {
    Image m = base_image();
    m.set<T>(field, v);
    return m.b;
  };
}

std::function<std::string()> patch_bytes(const std::string& field, size_t skip, std::string s) {
  return [field, skip, s] {
    Image m = base_image();
    m.b.replace(m.at.at(field) + skip, s.size(), s);
    return m.b;
  };
}

const uint64_t k_huge = 1ull << 60;

std::vector<Case> cases() {
  return {
      {"bad magic", patch_bytes("magic", 0, "GGUX"), {"magic"}},
      {"version 1", patch<uint32_t>("version", 1), {"version", "1"}},
      {"version 4", patch<uint32_t>("version", 4), {"version", "4"}},
      {"version 0", patch<uint32_t>("version", 0), {"version"}},
      {"big-endian version", patch<uint32_t>("version", 0x03000000u), {"version", "big-endian"}},
      {"n_tensors huge", patch<uint64_t>("n_tensors", k_huge), {"n_tensors"}},
      {"n_tensors max", patch<uint64_t>("n_tensors", ~0ull), {"n_tensors"}},
      {"n_tensors one too many", patch<uint64_t>("n_tensors", 3), {"tensor #2"}},
      {"n_kv huge", patch<uint64_t>("n_kv", k_huge), {"n_kv"}},
      {"n_kv one too many (tensor info misread as kv)",
       patch<uint64_t>("n_kv", 6),
       {"tensor #0 name"}},
      {"key length huge", patch<uint64_t>("kv0.keylen", k_huge), {"kv #0 key", "limit"}},
      {"key length past end", patch<uint64_t>("kv0.keylen", 60000), {"kv #0 key", "truncated"}},
      {"string length huge",
       patch<uint64_t>("kv0.strlen", ~0ull),
       {"kv 'general.architecture'", "limit"}},
      {"string length past end",
       patch<uint64_t>("kv0.strlen", 5000),
       {"kv 'general.architecture'", "truncated"}},
      {"unknown value type",
       patch<uint32_t>("kv0.type", 13),
       {"kv 'general.architecture'", "unknown value type 13"}},
      {"unknown value type huge",
       patch<uint32_t>("kv0.type", 0xffffffffu),
       {"kv 'general.architecture'", "type"}},
      {"array element type unknown",
       patch<uint32_t>("arr.elemtype", 77),
       {"kv 'a.arr'", "element type 77"}},
      {"array length huge", patch<uint64_t>("arr.len", k_huge), {"kv 'a.arr'", "array length"}},
      {"array length max", patch<uint64_t>("arr.len", ~0ull), {"kv 'a.arr'", "array length"}},
      {"array length past end", patch<uint64_t>("arr.len", 10000), {"kv 'a.arr'"}},
      {"nested length huge", patch<uint64_t>("nst.len1", k_huge), {"kv 'a.nst'", "length"}},
      {"nested leaf type unknown", patch<uint32_t>("nst.leaftype", 13), {"kv 'a.nst'", "13"}},
      {"nested depth excess", [] { return base_image(9).b; }, {"kv 'a.nst'", "nested"}},
      {"nested depth far excess", [] { return base_image(200).b; }, {"kv 'a.nst'", "nested"}},
      {"bool not 0/1", patch<uint8_t>("bool.value", 2), {"kv 'a.bol'", "bool"}},
      {"alignment 0", patch<uint32_t>("align.value", 0), {"general.alignment", "power of two"}},
      {"alignment 3", patch<uint32_t>("align.value", 3), {"general.alignment", "power of two"}},
      {"alignment 48", patch<uint32_t>("align.value", 48), {"general.alignment"}},
      {"alignment as i32", patch<uint32_t>("align.type", k_i32), {"general.alignment", "u32"}},
      {"alignment as f32", patch<uint32_t>("align.type", 6), {"general.alignment", "u32"}},
      {"alignment 64 vs offsets",
       patch<uint32_t>("align.value", 64),
       {"tensor 'blk.0.attn_k.weight'", "alignment"}},
      {"alignment 2^31",
       [] {
         Image m = base_image();
         m.set<uint32_t>("align.value", 1u << 31);
         m.set<uint64_t>("t1.offset", 1ull << 31);
         return m.b;
       },
       {"data section", "past the end"}},
      {"duplicate key", patch_bytes("kv4.key", 8, "a.arr"), {"kv 'a.arr'", "duplicate key"}},
      {"tensor name length huge", patch<uint64_t>("t0.namelen", k_huge), {"tensor #0 name"}},
      {"tensor name past end", patch<uint64_t>("t1.namelen", 1000), {"tensor #1 name"}},
      {"n_dims 0",
       patch<uint32_t>("t0.ndims", 0),
       {"tensor 'blk.0.attn_q.weight'", "n_dims 0 out of range 1..4"}},
      {"n_dims 5",
       patch<uint32_t>("t0.ndims", 5),
       {"tensor 'blk.0.attn_q.weight'", "n_dims 5 out of range"}},
      {"n_dims 7",
       patch<uint32_t>("t1.ndims", 7),
       {"tensor 'blk.0.attn_k.weight'", "n_dims 7 out of range"}},
      {"ne 0", patch<uint64_t>("t0.ne1", 0), {"tensor 'blk.0.attn_q.weight'", "ne[1]"}},
      {"ne negative", patch<uint64_t>("t0.ne1", ~0ull), {"tensor 'blk.0.attn_q.weight'", "ne[1]"}},
      {"ne[0] negative",
       patch<uint64_t>("t1.ne0", 1ull << 63),
       {"tensor 'blk.0.attn_k.weight'", "ne[0]"}},
      {"ne product overflow",
       [] {
         Image m = base_image();
         m.set<uint64_t>("t0.ne0", 1ull << 40);
         m.set<uint64_t>("t0.ne1", 1ull << 40);
         return m.b;
       },
       {"tensor 'blk.0.attn_q.weight'", "overflow"}},
      {"tensor far too big",
       patch<uint64_t>("t0.ne1", 1ull << 40),
       {"tensor 'blk.0.attn_q.weight'", "past the end"}},
      {"unknown ggml type 4",
       patch<uint32_t>("t0.type", 4),
       {"tensor 'blk.0.attn_q.weight'", "unknown ggml type id 4"}},
      {"unknown ggml type huge",
       patch<uint32_t>("t1.type", 1000),
       {"tensor 'blk.0.attn_k.weight'", "unknown ggml type id 1000"}},
      {"ne[0] not a block multiple",
       patch<uint64_t>("t0.ne0", 33),
       {"tensor 'blk.0.attn_q.weight'", "ne[0] = 33", "block size"}},
      {"offset unaligned",
       patch<uint64_t>("t1.offset", 97),
       {"tensor 'blk.0.attn_k.weight'", "alignment"}},
      {"offset past end",
       patch<uint64_t>("t1.offset", 1 << 20),
       {"tensor 'blk.0.attn_k.weight'", "past the end"}},
      {"offset overflowing",
       patch<uint64_t>("t1.offset", ~0ull - 31),
       {"tensor 'blk.0.attn_k.weight'", "past the end"}},
      {"tensors overlap", patch<uint64_t>("t1.offset", 64), {"overlaps"}},
      {"tensors at same offset", patch<uint64_t>("t1.offset", 0), {"overlaps"}},
      {"data truncated",
       [] {
         Image m = base_image();
         m.b.resize(m.b.size() - 16);
         return m.b;
       },
       {"tensor 'blk.0.attn_k.weight'", "past the end"}},
      {"duplicate tensor name",
       patch_bytes("t1.namelen", 8 + 11, "q"),
       {"tensor 'blk.0.attn_q.weight'", "duplicate tensor name"}},
  };
}

TEST(GgufHostile, EveryFieldCorruptionIsANamedError) {
  int n = 0;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    std::string img = c.make();
    auto f = parse(img);
    ASSERT_FALSE(f.ok()) << "accepted a corrupt file";
    const std::string& msg = f.message();
    EXPECT_NE(msg.find("hostile.gguf"), std::string::npos) << msg;
    for (const auto& s : c.expect)
      EXPECT_NE(msg.find(s), std::string::npos) << "'" << s << "' not in: " << msg;
    ++n;
  }
  std::printf("hostile cases tested: %d\n", n);
  EXPECT_GE(n, 50);
}

// Every strict prefix of a file whose last tensor ends at the end of the file is invalid.
TEST(GgufHostile, EveryTruncationFailsCleanly) {
  std::string img = base_image().b;
  size_t n = 0;
  for (size_t len = 0; len < img.size(); ++len) {
    std::string prefix = img.substr(0, len);  // own buffer: ASan catches any read past it
    auto f = parse(prefix);
    ASSERT_FALSE(f.ok()) << "prefix of " << len << " bytes accepted";
    ASSERT_FALSE(f.message().empty());
    ++n;
  }
  EXPECT_TRUE(parse(img).ok());
  std::printf("prefixes tested (base image): %zu\n", n);
}

// A writer image with every value type: prefixes fail until the last tensor's data is complete
// (the tail padding after it is optional), then succeed.
TEST(GgufHostile, WriterImagePrefixes) {
  GgufWriter w(3, 64);
  w.set_string("general.architecture", "llama");
  w.set_value("u64", gguf_uint(GgufType::UINT64, 7));
  w.set_value("f64s", gguf_float_array(GgufType::FLOAT64, {1.5, 2.5}));
  w.set_value("nest", gguf_array_array({gguf_string_array({"a", "bc"})}));
  w.set_string_array("toks", {"<s>", "</s>", "hello"});
  w.set_f32_array("scores", {0.f, -1.f, -2.f});
  w.set_i32_array("types", {3, 3, 1});
  w.set_bool("b", true);
  ASSERT_TRUE(w.add_tensor("w", DType::Q4_0, {64, 2}, std::string(72, '\x11')).ok());
  ASSERT_TRUE(w.add_tensor("n", DType::F32, {3}, std::string(12, '\x22')).ok());
  std::string img = w.serialize();
  auto full = parse(img);
  ASSERT_TRUE(full.ok()) << full.message();
  const TensorView* last = full->tensor("n");
  uint64_t end = static_cast<uint64_t>(static_cast<const char*>(last->data) - img.data()) + 12;
  size_t n = 0;
  for (size_t len = 0; len <= img.size(); ++len) {
    std::string prefix = img.substr(0, len);
    auto f = parse(prefix);
    EXPECT_EQ(f.ok(), len >= end) << "prefix " << len << ": " << f.message();
    ++n;
  }
  std::printf("prefixes tested (writer image): %zu\n", n);
}

long max_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// Claimed counts far beyond the file must be refused before anything is allocated.
TEST(GgufHostile, HugeClaimsDoNotAllocate) {
  std::vector<std::string> imgs;
  {
    Image m = base_image();
    m.set<uint64_t>("arr.len", k_huge);
    imgs.push_back(m.b);
  }
  {
    Image m = base_image();
    m.set<uint32_t>("arr.elemtype", k_string);
    m.set<uint64_t>("arr.len", 1ull << 40);
    imgs.push_back(m.b);
  }
  {
    Image m = base_image();
    m.set<uint64_t>("nst.len1", 1ull << 58);
    imgs.push_back(m.b);
  }
  {
    Image m = base_image();
    m.set<uint64_t>("n_kv", 1ull << 50);
    m.set<uint64_t>("n_tensors", 1ull << 50);
    imgs.push_back(m.b);
  }
  {
    // 8 MiB of zeros after an array header claiming as many strings as would nearly fit: each
    // element is an empty string (8 zero bytes), then the count runs past the end.
    Image m;
    m.b += "GGUF";
    m.put<uint32_t>(3);
    m.put<uint64_t>(0);
    m.put<uint64_t>(1);
    m.str("big");
    m.put<uint32_t>(k_array);
    m.put<uint32_t>(k_u8);
    m.put<uint64_t>(8u << 20 | 1);  // one more byte than follows
    m.b.resize(m.b.size() + (8u << 20), '\0');
    imgs.push_back(m.b);
  }
  const long before = max_rss_kib();
  auto t0 = std::chrono::steady_clock::now();
  uint64_t total = 0;
  for (const auto& img : imgs) {
    auto f = parse(img);
    EXPECT_FALSE(f.ok());
    total += img.size();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long grown_kib = max_rss_kib() - before;
  EXPECT_LT(secs, 2.0);
  EXPECT_LT(grown_kib * 1024, static_cast<long>(total + (16u << 20)))
      << "peak RSS grew by " << grown_kib << " KiB";
}

}  // namespace
}  // namespace slm
