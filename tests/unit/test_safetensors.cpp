// safetensors tests: files from an independent python writer, writer output checked by an
// independent python reader, sharded directories, a table of one corruption per field, and
// truncation at every prefix.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "formats/safetensors.h"
#include "test_util.h"

using namespace slm;
using namespace slm::test;

namespace {

struct RefTensor {
  std::string dtype;
  std::vector<int64_t> shape;  // PyTorch order
  std::vector<double> values;
};

struct RefDump {
  int aligned = -1;
  std::map<std::string, std::string> metadata;
  std::map<std::string, RefTensor> tensors;
};

RefDump run_ref(const std::string& mode, const std::string& arg) {
  std::string script = source_dir() + "/tests/ref/safetensors_ref.py";
  RunResult rr = run(python_exe() + " " + sh_quote(script) + " " + mode + " " + sh_quote(arg));
  EXPECT_EQ(rr.exit_code, 0) << rr.err;
  RefDump d;
  std::istringstream in(rr.out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string kind;
    ls >> kind;
    if (kind == "aligned") {
      ls >> d.aligned;
    } else if (kind == "metadata") {
      std::string k, v;
      ls >> k >> v;
      d.metadata[k] = v;
    } else if (kind == "tensor") {
      std::string name, shape;
      RefTensor t;
      ls >> name >> t.dtype >> shape;
      if (shape != "-") {
        std::istringstream ss(shape);
        std::string dim;
        while (std::getline(ss, dim, ',')) t.shape.push_back(std::stoll(dim));
      }
      std::string v;
      // Printed with 9 significant digits: exact for float32 (and the small test integers).
      while (ls >> v) t.values.push_back(std::strtof(v.c_str(), nullptr));
      d.tensors[name] = t;
    }
  }
  EXPECT_FALSE(d.tensors.empty()) << rr.out << rr.err;
  return d;
}

// Element i of a view as a double, read with memcpy (views may be unaligned).
double element(const TensorView& t, int64_t i) {
  const uint8_t* p = static_cast<const uint8_t*>(t.data);
  switch (t.dtype) {
    case DType::F32: {
      float f;
      std::memcpy(&f, p + 4 * i, 4);
      return f;
    }
    case DType::F16:
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return t.dtype == DType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
    }
    case DType::I32: {
      int32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      return v;
    }
    default:
      ADD_FAILURE() << "unexpected dtype in test";
      return 0;
  }
}

void expect_view_matches(const TensorView& t, const RefTensor& rt) {
  SCOPED_TRACE(t.name);
  EXPECT_STREQ(safetensors_dtype_name(t.dtype), rt.dtype.c_str());
  ASSERT_EQ(t.n_dims, static_cast<int>(rt.shape.size()));
  for (size_t d = 0; d < rt.shape.size(); ++d) {
    EXPECT_EQ(t.ne[d], rt.shape[rt.shape.size() - 1 - d]);  // GGUF order
  }
  ASSERT_EQ(t.nelements(), static_cast<int64_t>(rt.values.size()));
  for (int64_t i = 0; i < t.nelements(); ++i) EXPECT_EQ(element(t, i), rt.values[i]) << i;
}

std::string bytes_of(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}
std::string bytes_of(const std::vector<uint16_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 2);
}

// A file image from a header text and a data buffer of n bytes.
std::string st_image(const std::string& header, uint64_t data_bytes, uint64_t header_len = ~0ull) {
  uint64_t n = header_len == ~0ull ? header.size() : header_len;
  std::string s(reinterpret_cast<const char*>(&n), 8);
  s += header;
  for (uint64_t i = 0; i < data_bytes; ++i) s.push_back(static_cast<char>(i));
  return s;
}

Expected<SafetensorsSet> parse_str(const std::string& s) {
  return SafetensorsSet::parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "t.st");
}

}  // namespace

TEST(Safetensors, ReadsIndependentlyWrittenFile) {
  TempDir tmp;
  RefDump ref = run_ref("write", tmp.path());
  auto set = SafetensorsSet::open_file(tmp.file("indep.safetensors"));
  ASSERT_TRUE(set.ok()) << set.message();
  EXPECT_EQ(set->metadata().at("format"), "pt");
  EXPECT_EQ(set->metadata().at("note"), "h\xc3\xa9llo");
  for (const auto& [name, rt] : ref.tensors) {
    if (name == "mask" || name == "x5d") continue;  // not viewable, checked below
    const TensorView* t = set->tensor(name);
    ASSERT_NE(t, nullptr) << name;
    expect_view_matches(*t, rt);
  }
  EXPECT_EQ(set->tensors().size(), ref.tensors.size() - 2);
  // BOOL and 5-D tensors are valid safetensors, reported rather than viewed.
  EXPECT_EQ(set->tensor("mask"), nullptr);
  auto m = set->get("mask");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("BOOL"), std::string::npos) << m.message();
  auto x = set->get("x5d");
  ASSERT_FALSE(x.ok());
  EXPECT_NE(x.message().find("5 dimensions"), std::string::npos) << x.message();
  EXPECT_NE(set->get("nope").message().find("not found"), std::string::npos);
  EXPECT_EQ(set->unsupported().size(), 2u);
  // A scalar has no dims and one element; the empty tensor has none.
  EXPECT_EQ(set->tensor("scalar")->n_dims, 0);
  EXPECT_EQ(set->tensor("empty")->nelements(), 0);
}

TEST(Safetensors, WriterOutputReadByIndependentReader) {
  TempDir tmp;
  std::vector<float> a = {1.5f, -2.25f, 3.0f, 0.125f, -7.0f, 1e-3f};  // ne {3, 2}: 2 rows of 3
  std::vector<uint16_t> h = {fp32_to_fp16(0.5f), fp32_to_fp16(-1.75f), fp32_to_fp16(65504.0f),
                             fp32_to_fp16(-0.0f)};
  std::vector<uint16_t> b = {fp32_to_bf16(3.140625f), fp32_to_bf16(-100.0f)};
  std::vector<float> s = {42.0f};
  SafetensorsWriter w;
  ASSERT_TRUE(w.add_tensor("model.a", DType::F32, {3, 2}, bytes_of(a)).ok());
  ASSERT_TRUE(w.add_tensor("h", DType::F16, {2, 1, 2}, bytes_of(h)).ok());
  ASSERT_TRUE(w.add_tensor("bf", DType::BF16, {2}, bytes_of(b)).ok());
  ASSERT_TRUE(w.add_tensor("scalar", DType::F32, {}, bytes_of(s)).ok());
  ASSERT_TRUE(w.add_tensor("none", DType::F32, {0, 5}, std::string()).ok());
  w.set_metadata("format", "pt");
  std::string path = tmp.file("out.safetensors");
  ASSERT_TRUE(w.write(path).ok());
  // Atomic write leaves only the target behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);

  RefDump ref = run_ref("dump", path);
  EXPECT_EQ(ref.aligned, 1);
  EXPECT_EQ(ref.metadata["format"], "pt");
  ASSERT_EQ(ref.tensors.size(), 5u);
  // Expected values are the test's inputs; shapes in PyTorch order are ne reversed.
  auto check = [&](const char* name, const char* dtype, std::vector<int64_t> shape,
                   std::vector<double> values) {
    SCOPED_TRACE(name);
    const RefTensor& rt = ref.tensors.at(name);
    EXPECT_EQ(rt.dtype, dtype);
    EXPECT_EQ(rt.shape, shape);
    EXPECT_EQ(rt.values, values);
  };
  check("model.a", "F32", {2, 3}, {1.5, -2.25, 3.0, 0.125, -7.0, static_cast<double>(1e-3f)});
  check("h", "F16", {2, 1, 2}, {0.5, -1.75, 65504.0, -0.0});
  check("bf", "BF16", {2}, {3.140625, -100.0});
  check("scalar", "F32", {}, {42.0});
  check("none", "F32", {5, 0}, {});

  // And our reader agrees with the same reference.
  auto set = SafetensorsSet::open_file(path);
  ASSERT_TRUE(set.ok()) << set.message();
  for (const auto& [name, rt] : ref.tensors) expect_view_matches(*set->tensor(name), rt);
}

TEST(Safetensors, WriterRejectsBadInput) {
  SafetensorsWriter w;
  EXPECT_FALSE(w.add_tensor("a", DType::F32, {2}, std::string(4, '\0')).ok());  // size
  EXPECT_FALSE(w.add_tensor("q", DType::Q4_0, {32}, std::string(18, '\0')).ok());
  EXPECT_FALSE(w.add_tensor("n", DType::F32, {-1}, std::string()).ok());
  EXPECT_FALSE(w.add_tensor("__metadata__", DType::F32, {1}, std::string(4, '\0')).ok());
  EXPECT_FALSE(w.add_tensor("", DType::F32, {1}, std::string(4, '\0')).ok());
  EXPECT_FALSE(w.add_tensor("bad\xff", DType::F32, {1}, std::string(4, '\0')).ok());
  EXPECT_FALSE(w.add_tensor("big", DType::F32, {1ll << 62, 8}, std::string()).ok());
  EXPECT_TRUE(w.add_tensor("ok", DType::F32, {1}, std::string(4, '\0')).ok());
  EXPECT_FALSE(w.add_tensor("ok", DType::F32, {1}, std::string(4, '\0')).ok());  // duplicate
}

namespace {

// Writes DIR/NAME with the given F32 tensors (each {1.0f * k}).
void write_shard(const std::string& path, const std::vector<std::string>& names, float base) {
  SafetensorsWriter w;
  float k = base;
  for (const auto& n : names) {
    std::vector<float> v = {k, k + 0.5f};
    ASSERT_TRUE(w.add_tensor(n, DType::F32, {2}, bytes_of(v)).ok());
    k += 1;
  }
  w.set_metadata("shard", std::to_string(static_cast<int>(base)));
  ASSERT_TRUE(w.write(path).ok());
}

}  // namespace

TEST(Safetensors, ShardedDirectory) {
  TempDir tmp;
  write_shard(tmp.file("model-00001-of-00002.safetensors"), {"a", "b"}, 1);
  write_shard(tmp.file("model-00002-of-00002.safetensors"), {"c"}, 10);
  write_text(tmp.file("model.safetensors.index.json"),
             R"({"metadata": {"total_size": 24}, "weight_map": {)"
             R"("a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors",)"
             R"("b": "model-00001-of-00002.safetensors"}})");
  auto set = SafetensorsSet::open_dir(tmp.path());
  ASSERT_TRUE(set.ok()) << set.message();
  EXPECT_EQ(set->tensors().size(), 3u);
  EXPECT_EQ(element(*set->tensor("a"), 0), 1.0);
  EXPECT_EQ(element(*set->tensor("b"), 1), 2.5);
  EXPECT_EQ(element(*set->tensor("c"), 0), 10.0);
  EXPECT_EQ(set->metadata().at("shard"), "1");  // the first shard's __metadata__
  EXPECT_EQ(set->mappings().size(), 2u);        // each shard mapped once

  // A single model.safetensors is used when present.
  TempDir one;
  write_shard(one.file("model.safetensors"), {"x"}, 5);
  auto s1 = SafetensorsSet::open_dir(one.path());
  ASSERT_TRUE(s1.ok()) << s1.message();
  EXPECT_NE(s1->tensor("x"), nullptr);
  TempDir none;
  EXPECT_FALSE(SafetensorsSet::open_dir(none.path()).ok());
}

TEST(Safetensors, ShardedIndexCorruptions) {
  struct Case {
    const char* label;
    std::string weight_map;  // JSON text of the index
    const char* expect;
  };
  const std::string s1 = "s1.safetensors", s2 = "s2.safetensors";
  std::vector<Case> cases = {
      {"no weight_map", R"({"metadata": {}})", "weight_map"},
      {"weight_map not object", R"({"weight_map": [1]})", "weight_map"},
      {"shard not string", R"({"weight_map": {"a": 3}})", "'a'"},
      {"missing shard file",
       R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "gone.safetensors"}})",
       "gone.safetensors"},
      {"path traversal", R"({"weight_map": {"a": "../s1.safetensors"}})", "not a plain file name"},
      {"absolute path", R"({"weight_map": {"a": "/etc/passwd"}})", "not a plain file name"},
      {"subdirectory", R"({"weight_map": {"a": "sub/s1.safetensors"}})", "not a plain file name"},
      {"tensor missing in shard",
       R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "z": "s1.safetensors"}})",
       "'z' is not in shard"},
      {"tensor not listed", R"({"weight_map": {"a": "s1.safetensors"}})", "'b'"},
      {"listed in wrong shard",
       R"({"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}})",
       "'a'"},
      {"duplicate across shards",
       R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "d": "s3.safetensors"}})",
       "'b' is also present"},
      {"index not JSON", R"({"weight_map": )", "JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    TempDir tmp;
    write_shard(tmp.file(s1), {"a", "b"}, 1);
    write_shard(tmp.file(s2), {"c"}, 10);
    write_shard(tmp.file("s3.safetensors"), {"d", "b"}, 20);
    write_text(tmp.file("model.safetensors.index.json"), c.weight_map);
    auto r = SafetensorsSet::open_dir(tmp.path());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find(c.expect), std::string::npos) << r.message();
  }
}

namespace {
const char* k_base =
    R"({"__metadata__":{"k":"v"},"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
}

TEST(Safetensors, ValidBaseImage) {
  auto r = parse_str(st_image(k_base, 16));
  ASSERT_TRUE(r.ok()) << r.message();
  ASSERT_NE(r->tensor("t"), nullptr);
  EXPECT_EQ(r->tensor("t")->ne[0], 2);
  auto e = parse_str(st_image("{}", 0));
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_TRUE(e->tensors().empty());
  // Spaces after the JSON are allowed padding.
  EXPECT_TRUE(parse_str(st_image(std::string(k_base) + "     ", 16)).ok());
}

TEST(Safetensors, HostileImagesNameTheField) {
  struct Case {
    const char* label;
    std::string image;
    const char* expect1;
    const char* expect2;
  };
  auto tensor1 = [](const std::string& body) { return R"({"t":)" + body + "}"; };
  std::string long_shape;  // 200 ones: longer than any shape can be
  for (int i = 0; i < 200; ++i) long_shape += i ? ",1" : "1";
  const std::string two_ok = R"("dtype":"F32","shape":[2,2],"data_offsets":[0,16])";
  std::vector<Case> cases = {
      {"too small", std::string("\x05\0\0", 3), "header length", "truncated"},
      {"header len huge", st_image(k_base, 16, 200ull << 20), "header length", "limit"},
      {"header len > file", st_image(k_base, 16, 1000), "header length", "larger than"},
      {"header len max", st_image(k_base, 16, ~0ull - 1), "header length", "limit"},
      {"header empty", st_image("", 0), "header", "'{'"},
      {"not an object", st_image("[1,2]", 0), "header", "'{'"},
      {"leading space", st_image(" {}", 0), "header", "'{'"},
      {"not JSON", st_image(R"({"t":)", 0), "JSON", "t.st"},
      {"trailing garbage", st_image(R"({} x)", 0), "JSON", "t.st"},
      {"invalid UTF-8", st_image("{\"t\xff\":1}", 0), "JSON", "t.st"},
      {"NUL in header", st_image(std::string("{}\0x", 4), 0), "NUL", "t.st"},
      {"duplicate key", st_image(R"({"t":{},"t":{}})", 0), "duplicate key 't'", "t.st"},
      {"too deep", st_image(R"({"__metadata__":{"a":[[[[[[[[[[1]]]]]]]]]]}})", 0), "nesting", ""},
      {"long array",
       st_image(tensor1(R"({"dtype":"F32","shape":[)" + long_shape + R"(],"data_offsets":[0,4]})"),
                4),
       "array has more than", "t.st"},
      {"entry not object", st_image(tensor1("5"), 0), "'t'", "not an object"},
      {"dtype missing", st_image(tensor1(R"({"shape":[1],"data_offsets":[0,4]})"), 4), "'t'",
       "dtype"},
      {"dtype not string", st_image(tensor1(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})"), 4),
       "'t'", "dtype"},
      {"dtype unknown", st_image(tensor1(R"({"dtype":"F33","shape":[1],"data_offsets":[0,4]})"), 4),
       "'t'", "unknown dtype 'F33'"},
      {"dtype lowercase",
       st_image(tensor1(R"({"dtype":"f32","shape":[1],"data_offsets":[0,4]})"), 4), "'t'", "dtype"},
      {"shape missing", st_image(tensor1(R"({"dtype":"F32","data_offsets":[0,4]})"), 4), "'t'",
       "shape"},
      {"shape not array", st_image(tensor1(R"({"dtype":"F32","shape":4,"data_offsets":[0,4]})"), 4),
       "'t'", "shape"},
      {"shape negative",
       st_image(tensor1(R"({"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]})"), 16), "'t'",
       "shape[1]: negative"},
      {"shape float",
       st_image(tensor1(R"({"dtype":"F32","shape":[2.0,2],"data_offsets":[0,16]})"), 16), "'t'",
       "shape[0]"},
      {"shape string",
       st_image(tensor1(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"), 8), "'t'",
       "shape[0]"},
      {"shape 9 dims",
       st_image(tensor1(R"({"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]})"), 4),
       "'t'", "9 dimensions"},
      {"shape product overflow",
       st_image(
           tensor1(R"({"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,4]})"), 4),
       "'t'", "overflow"},
      {"shape dim > int64",
       st_image(tensor1(R"({"dtype":"I8","shape":[18446744073709551615],"data_offsets":[0,4]})"),
                4),
       "'t'", "overflow"},
      {"byte size overflow",
       st_image(tensor1(R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]})"),
                4),
       "'t'", "overflow"},
      {"offsets missing", st_image(tensor1(R"({"dtype":"F32","shape":[1]})"), 4), "'t'",
       "data_offsets"},
      {"offsets 3 items",
       st_image(tensor1(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})"), 4), "'t'",
       "data_offsets"},
      {"offsets negative",
       st_image(tensor1(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), 4), "'t'",
       "data_offsets"},
      {"offsets float",
       st_image(tensor1(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4.0]})"), 4), "'t'",
       "data_offsets"},
      {"offsets reversed",
       st_image(tensor1(R"({"dtype":"F32","shape":[0],"data_offsets":[4,0]})"), 4), "'t'",
       "begin 4 > end 0"},
      {"offsets past end",
       st_image(tensor1(R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})"), 12), "'t'",
       "past the data buffer"},
      {"offsets huge",
       st_image(
           tensor1(
               R"({"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]})"),
           4),
       "'t'", "data_offsets"},
      {"size mismatch",
       st_image(tensor1(R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,12]})"), 12), "'t'",
       "needs 16"},
      {"overlap",
       st_image(
           R"({"t":{)" + two_ok + R"(},"u":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
           20),
       "'u'", "overlaps tensor 't'"},
      {"hole",
       st_image(
           R"({"t":{)" + two_ok + R"(},"u":{"dtype":"F32","shape":[2],"data_offsets":[20,28]}})",
           28),
       "'u'", "hole of 4 bytes"},
      {"leading hole", st_image(tensor1(R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})"), 8),
       "'t'", "hole"},
      {"trailing bytes", st_image(k_base, 20), "4 bytes after the last tensor", "t.st"},
      {"data without tensors", st_image("{}", 3), "3 bytes after", "t.st"},
      {"metadata not object", st_image(R"({"__metadata__":[]})", 0), "__metadata__",
       "not an object"},
      {"metadata non-string", st_image(R"({"__metadata__":{"k":1}})", 0), "__metadata__", "'k'"},
      {"metadata null value", st_image(R"({"__metadata__":{"k":null}})", 0), "__metadata__", "'k'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    auto r = parse_str(c.image);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find(c.expect1), std::string::npos) << r.message();
    EXPECT_NE(r.message().find(c.expect2), std::string::npos) << r.message();
    EXPECT_EQ(r.message().find("t.st"), 0u) << r.message();
  }
}

TEST(Safetensors, EveryPrefixIsRejected) {
  SafetensorsWriter w;
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(w.add_tensor("a", DType::F32, {3, 2}, bytes_of(a)).ok());
  ASSERT_TRUE(w.add_tensor("b", DType::F16, {2}, std::string(4, '\x3c')).ok());
  w.set_metadata("format", "pt");
  std::string full = w.serialize();
  ASSERT_TRUE(parse_str(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    // Copy to an exact-size buffer so ASan sees any read past the prefix.
    std::vector<uint8_t> buf(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = SafetensorsSet::parse(buf.data(), buf.size(), "p.st");
    ASSERT_FALSE(r.ok()) << "prefix " << n;
  }
}
