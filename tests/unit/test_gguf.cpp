// GGUF writer -> reader round trips (every value type, nested arrays, v2/v3, alignments), views
// into the mapping, and cross-checks against @huggingface/gguf on our files and real ones.
#include <dirent.h>
#include <gtest/gtest.h>

#include <cinttypes>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "test_util.h"

namespace slm {
namespace {

using nlohmann::json;
using test::TempDir;

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// Every metadata type, extremes included, and arrays of every element type (nested too).
std::vector<std::pair<std::string, GgufValue>> sample_metadata() {
  using T = GgufType;
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"t.u8", gguf_uint(T::UINT8, 255)},
      {"t.i8", gguf_int(T::INT8, -128)},
      {"t.u16", gguf_uint(T::UINT16, 65535)},
      {"t.i16", gguf_int(T::INT16, -32768)},
      {"t.u32", gguf_uint(T::UINT32, 4294967295u)},
      {"t.i32", gguf_int(T::INT32, std::numeric_limits<int32_t>::min())},
      {"t.f32", gguf_float(T::FLOAT32, static_cast<double>(-3.1415927f))},
      {"t.bool_true", gguf_bool(true)},
      {"t.bool_false", gguf_bool(false)},
      {"t.string", gguf_string("h\xc3\xa9llo \xe2\x9c\x93 {{ messages }}")},
      {"t.empty_string", gguf_string("")},
      {"t.u64", gguf_uint(T::UINT64, std::numeric_limits<uint64_t>::max())},
      {"t.i64", gguf_int(T::INT64, std::numeric_limits<int64_t>::min())},
      {"t.f64", gguf_float(T::FLOAT64, 1.0 / 3.0)},
      {"a.u8", gguf_int_array(T::UINT8, {0, 1, 255})},
      {"a.i8", gguf_int_array(T::INT8, {-128, 0, 127})},
      {"a.u16", gguf_int_array(T::UINT16, {65535, 7})},
      {"a.i16", gguf_int_array(T::INT16, {-32768, 32767})},
      {"a.u32", gguf_int_array(T::UINT32, {4294967295ll, 0})},
      {"a.i32", gguf_int_array(T::INT32, {-5, 2147483647})},
      {"a.f32", gguf_float_array(T::FLOAT32, {0.5, -1e-3f, 65504.0})},
      {"a.bool", gguf_int_array(T::BOOL, {1, 0, 1})},
      {"a.string", gguf_string_array({"<s>", "", "\xe2\x96\x81the", "a b"})},
      {"a.u64", gguf_int_array(T::UINT64, {0, 1ll << 62, 123})},
      {"a.i64", gguf_int_array(T::INT64, {std::numeric_limits<int64_t>::max(), -1})},
      {"a.f64", gguf_float_array(T::FLOAT64, {1e300, -2.5e-300})},
      {"a.empty", gguf_int_array(T::INT32, {})},
      {"n.array_of_i32_arrays",
       gguf_array_array({gguf_int_array(T::INT32, {1, 2, 3}), gguf_int_array(T::INT32, {}),
                         gguf_int_array(T::INT32, {-7})})},
      {"n.three_levels", gguf_array_array({gguf_array_array({gguf_string_array({"x", "yz"}),
                                                             gguf_float_array(T::FLOAT64, {2.25})}),
                                           gguf_array_array({})})},
  };
  return kv;
}

void expect_same_value(const GgufValue& a, const GgufValue& b, const std::string& key) {
  SCOPED_TRACE(key);
  ASSERT_EQ(a.type, b.type);
  switch (a.type) {
    case GgufType::STRING:
      EXPECT_EQ(a.s, b.s);
      return;
    case GgufType::BOOL:
      EXPECT_EQ(a.b, b.b);
      return;
    case GgufType::FLOAT32:
      EXPECT_EQ(static_cast<float>(a.f), static_cast<float>(b.f));
      return;
    case GgufType::FLOAT64:
      EXPECT_EQ(a.f, b.f);
      return;
    case GgufType::ARRAY:
      break;
    default:
      EXPECT_EQ(a.u, b.u);
      EXPECT_EQ(a.i, b.i);
      return;
  }
  ASSERT_EQ(a.elem_type, b.elem_type);
  ASSERT_EQ(a.array_len(), b.array_len());
  if (a.elem_type == GgufType::FLOAT32) {
    for (size_t k = 0; k < a.floats.size(); ++k) {
      EXPECT_EQ(static_cast<float>(a.floats[k]), static_cast<float>(b.floats[k]));
    }
  } else {
    EXPECT_EQ(a.floats, b.floats);
  }
  EXPECT_EQ(a.strings, b.strings);
  // Narrow integer arrays are compared after truncation to the element width by the writer;
  // the sample values already fit.
  EXPECT_EQ(a.ints, b.ints);
  for (size_t k = 0; k < a.array.size(); ++k) expect_same_value(a.array[k], b.array[k], key);
}

struct SampleTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> ne;
};

const std::vector<SampleTensor>& sample_tensors() {
  static const std::vector<SampleTensor> k = {
      {"token_embd.weight", DType::F32, {8, 5}},
      {"blk.0.attn_q.weight", DType::F16, {16, 3, 2}},
      {"blk.0.ffn_up.weight", DType::Q4_0, {64, 3}},
      {"blk.0.ffn_down.weight", DType::Q8_0, {32, 2, 1, 2}},
      {"blk.0.attn_k.weight", DType::Q6_K, {256, 2}},
      {"output_norm.weight", DType::BF16, {7}},
      {"pos", DType::I32, {3}},
  };
  return k;
}

uint64_t tensor_bytes(const SampleTensor& t) {
  uint64_t row = 0;
  EXPECT_TRUE(dtype_row_bytes(t.dtype, t.ne[0], &row));
  uint64_t rows = 1;
  for (size_t d = 1; d < t.ne.size(); ++d) rows *= static_cast<uint64_t>(t.ne[d]);
  return row * rows;
}

GgufWriter sample_writer(uint32_t version, uint64_t alignment) {
  GgufWriter w(version, alignment);
  w.set_string("general.architecture", "llama");
  for (const auto& [k, v] : sample_metadata()) w.set_value(k, v);
  uint32_t seed = 1;
  for (const auto& t : sample_tensors()) {
    Status s = w.add_tensor(t.name, t.dtype, t.ne, random_bytes(tensor_bytes(t), seed++));
    EXPECT_TRUE(s.ok()) << s.message();
  }
  return w;
}

class GgufRoundTrip : public ::testing::TestWithParam<std::tuple<uint32_t, uint64_t>> {};

TEST_P(GgufRoundTrip, EveryTypeAndTensor) {
  const auto [version, alignment] = GetParam();
  TempDir dir;
  std::string path = dir.file("m.gguf");
  GgufWriter w = sample_writer(version, alignment);
  ASSERT_TRUE(w.write(path).ok());
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->version(), version);
  EXPECT_EQ(f->alignment(), alignment);
  EXPECT_EQ(f->data_offset() % alignment, 0u);
  EXPECT_EQ(f->get_string("general.architecture").value(), "llama");
  for (const auto& [k, v] : sample_metadata()) {
    const GgufValue* got = f->find(k);
    ASSERT_NE(got, nullptr) << k;
    expect_same_value(v, *got, k);
  }
  if (alignment != 32) {
    EXPECT_EQ(f->get_int("general.alignment").value(), static_cast<int64_t>(alignment));
  } else {
    EXPECT_FALSE(f->has("general.alignment"));
  }
  ASSERT_EQ(f->tensors().size(), sample_tensors().size());
  uint32_t seed = 1;
  for (const auto& st : sample_tensors()) {
    SCOPED_TRACE(st.name);
    const TensorView* t = f->tensor(st.name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, st.dtype);
    ASSERT_EQ(t->n_dims, static_cast<int>(st.ne.size()));
    for (size_t d = 0; d < 4; ++d) EXPECT_EQ(t->ne[d], d < st.ne.size() ? st.ne[d] : 1);
    ASSERT_EQ(t->nbytes, tensor_bytes(st));
    // A view into the mapping: no copy, inside the file image, aligned within the data section.
    const uint8_t* p = static_cast<const uint8_t*>(t->data);
    ASSERT_GE(p, f->file_data() + f->data_offset());
    ASSERT_LE(p + t->nbytes, f->file_data() + f->file_size());
    EXPECT_EQ(static_cast<uint64_t>(p - f->file_data()) % alignment, 0u);
    std::string want = random_bytes(t->nbytes, seed++);
    EXPECT_EQ(0, std::memcmp(p, want.data(), t->nbytes));
  }
  // parse() over an in-memory image gives views into that buffer.
  std::string img = w.serialize();
  auto g = GgufFile::parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "mem");
  ASSERT_TRUE(g.ok()) << g.message();
  for (const auto& t : g->tensors()) {
    const char* p = static_cast<const char*>(t.data);
    EXPECT_TRUE(p >= img.data() && p + t.nbytes <= img.data() + img.size()) << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(VersionsAndAlignments, GgufRoundTrip,
                         ::testing::Combine(::testing::Values(2u, 3u),
                                            ::testing::Values(32u, 64u, 8u, 256u)));

TEST(GgufGetters, TypesAndDefaults) {
  GgufWriter w;
  for (const auto& [k, v] : sample_metadata()) w.set_value(k, v);
  std::string img = w.serialize();
  auto f = GgufFile::parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "mem.gguf");
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->get_int("t.u8").value(), 255);
  EXPECT_EQ(f->get_int("t.i64").value(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->get_int("t.u32").value(), 4294967295ll);
  EXPECT_FALSE(f->get_int("t.u64").ok());  // does not fit in int64
  EXPECT_FALSE(f->get_int("t.string").ok());
  EXPECT_FLOAT_EQ(static_cast<float>(f->get_float("t.f32").value()), -3.1415927f);
  EXPECT_EQ(f->get_float("t.i16").value(), -32768.0);
  EXPECT_TRUE(f->get_bool("t.bool_true").value());
  EXPECT_FALSE(f->get_bool("t.u8").ok());
  EXPECT_EQ(f->get_string_array("a.string").value().size(), 4u);
  EXPECT_FALSE(f->get_string_array("a.i32").ok());
  EXPECT_EQ(f->get_int_array("a.i8").value(), (std::vector<int64_t>{-128, 0, 127}));
  EXPECT_EQ(f->get_float_array("a.u16").value(), (std::vector<double>{65535, 7}));
  EXPECT_EQ(f->get_float_array("a.f64").value(), (std::vector<double>{1e300, -2.5e-300}));
  EXPECT_EQ(f->get_int_or("missing", 42).value(), 42);
  EXPECT_FALSE(f->get_int_or("t.string", 42).ok());  // present with a bad type: error
  EXPECT_EQ(f->get_string_or("missing", "d").value(), "d");
  EXPECT_TRUE(f->get_bool_or("missing", true).value());
  EXPECT_EQ(f->get_float_or("missing", 0.5).value(), 0.5);
  auto miss = f->get_string("nope");
  ASSERT_FALSE(miss.ok());
  EXPECT_NE(miss.message().find("mem.gguf"), std::string::npos) << miss.message();
  EXPECT_NE(miss.message().find("'nope'"), std::string::npos) << miss.message();
  auto bad = f->get_string("t.u8");
  EXPECT_NE(bad.message().find("'t.u8'"), std::string::npos) << bad.message();
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  EXPECT_FALSE(w.add_tensor("a", DType::F32, {4}, std::string(15, '\0')).ok());   // size
  EXPECT_FALSE(w.add_tensor("b", DType::Q4_0, {16}, std::string(9, '\0')).ok());  // block
  EXPECT_FALSE(w.add_tensor("c", DType::F32, {}, "").ok());
  EXPECT_FALSE(w.add_tensor("d", DType::F32, {1, 1, 1, 1, 1}, std::string(4, '\0')).ok());
  EXPECT_FALSE(w.add_tensor("e", DType::F32, {0}, "").ok());
  EXPECT_TRUE(w.add_tensor("f", DType::Q4_0, {32, 2}, std::string(36, '\0')).ok());
  EXPECT_FALSE(w.add_tensor("f", DType::Q4_0, {32, 2}, std::string(36, '\0')).ok());  // dup
}

// ---- cross-check with @huggingface/gguf ----

json node_read(const std::string& path) {
  std::string script = test::source_dir() + "/tests/ref/gguf_read.mjs";
  test::RunResult r =
      test::run(test::node_cmd() + " " + test::sh_quote(script) + " " + test::sh_quote(path));
  EXPECT_EQ(r.exit_code, 0) << "@huggingface/gguf failed on " << path << ": " << r.err;
  if (r.exit_code != 0) return json();
  return json::parse(r.out);
}

// Compares one of our values with the JS reader's JSON for it.
void expect_matches_js(const GgufValue& v, const json& j, const std::string& key) {
  SCOPED_TRACE(key);
  switch (v.type) {
    case GgufType::UINT64:
      ASSERT_TRUE(j.is_object());
      EXPECT_EQ(j["$big"].get<std::string>(), std::to_string(v.u));
      return;
    case GgufType::INT64:
      ASSERT_TRUE(j.is_object());
      EXPECT_EQ(j["$big"].get<std::string>(), std::to_string(v.i));
      return;
    case GgufType::STRING: {
      // The JS reader decodes with TextDecoder, which drops a leading byte-order mark.
      const std::string bom = "\xef\xbb\xbf";
      std::string want = v.s.compare(0, 3, bom) == 0 ? v.s.substr(3) : v.s;
      EXPECT_EQ(j.get<std::string>(), want);
      return;
    }
    case GgufType::BOOL:
      EXPECT_EQ(j.get<bool>(), v.b);
      return;
    case GgufType::FLOAT32:
    case GgufType::FLOAT64:
      EXPECT_EQ(j.get<double>(), v.f);
      return;
    case GgufType::ARRAY:
      break;
    default:
      EXPECT_EQ(j.get<int64_t>(), v.i);
      return;
  }
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), v.array_len());
  for (size_t k = 0; k < j.size(); ++k) {
    GgufValue e;
    e.type = v.elem_type;
    switch (v.elem_type) {
      case GgufType::STRING:
        e.s = v.strings[k];
        break;
      case GgufType::ARRAY:
        e = v.array[k];
        break;
      case GgufType::FLOAT32:
      case GgufType::FLOAT64:
        e.f = v.floats[k];
        break;
      default:
        e.i = v.ints[k];
        e.u = static_cast<uint64_t>(v.ints[k]);
        e.b = v.ints[k] != 0;
        break;
    }
    expect_matches_js(e, j[k], key + "[" + std::to_string(k) + "]");
    if (::testing::Test::HasFailure()) return;  // one report per key, not thousands
  }
}

void expect_file_matches_js(const GgufFile& f, const json& js) {
  ASSERT_TRUE(js.is_object());
  EXPECT_EQ(js["version"].get<uint32_t>(), f.version());
  EXPECT_EQ(js["kv_count"]["$big"].get<std::string>(), std::to_string(f.metadata().size()));
  EXPECT_EQ(js["tensor_count"]["$big"].get<std::string>(), std::to_string(f.tensors().size()));
  EXPECT_EQ(js["tensorDataOffset"].get<std::string>(), std::to_string(f.data_offset()));
  const json& md = js["metadata"];
  EXPECT_EQ(md.size(), f.metadata().size());
  for (const auto& [key, v] : f.metadata()) {
    ASSERT_TRUE(md.contains(key)) << key;
    const json& e = md[key];
    EXPECT_EQ(e["type"].get<uint32_t>(), static_cast<uint32_t>(v.type)) << key;
    if (v.type == GgufType::ARRAY) {
      EXPECT_EQ(e["subType"].get<uint32_t>(), static_cast<uint32_t>(v.elem_type)) << key;
    }
    expect_matches_js(v, e["value"], key);
  }
  const json& ts = js["tensors"];
  ASSERT_EQ(ts.size(), f.tensors().size());
  for (size_t k = 0; k < ts.size(); ++k) {
    const TensorView& t = f.tensors()[k];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(ts[k]["name"].get<std::string>(), t.name);
    EXPECT_EQ(ts[k]["dtype"].get<uint32_t>(), static_cast<uint32_t>(t.dtype));
    ASSERT_EQ(ts[k]["shape"].size(), static_cast<size_t>(t.n_dims));
    for (int d = 0; d < t.n_dims; ++d) {
      EXPECT_EQ(ts[k]["shape"][d].get<std::string>(), std::to_string(t.ne[d]));
    }
    uint64_t rel = static_cast<uint64_t>(static_cast<const uint8_t*>(t.data) - f.file_data()) -
                   f.data_offset();
    EXPECT_EQ(ts[k]["offset"].get<std::string>(), std::to_string(rel));
  }
}

TEST(GgufNodeReference, OurFilesReadTheSameInHuggingfaceGguf) {
  for (auto [version, alignment] : {std::pair<uint32_t, uint64_t>{3, 32}, {2, 64}, {3, 128}}) {
    SCOPED_TRACE(::testing::Message() << "v" << version << " align " << alignment);
    TempDir dir;
    std::string path = dir.file("m.gguf");
    ASSERT_TRUE(sample_writer(version, alignment).write(path).ok());
    auto f = GgufFile::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    json js = node_read(path);
    expect_file_matches_js(*f, js);
    // Independently of our reader: every key we wrote is there with the written value.
    for (const auto& [k, v] : sample_metadata()) {
      ASSERT_TRUE(js["metadata"].contains(k)) << k;
      expect_matches_js(v, js["metadata"][k]["value"], k);
    }
  }
}

std::vector<std::string> vocab_files() {
  std::vector<std::string> out;
  std::string dir = test::shared_dir() + "/tokenizer";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 5 && n.substr(n.size() - 5) == ".gguf") out.push_back(dir + "/" + n);
    }
    closedir(d);
  }
  return out;
}

TEST(GgufRealFiles, VocabFilesMatchHuggingfaceGguf) {
  std::vector<std::string> files = vocab_files();
  ASSERT_GE(files.size(), 5u) << "expected the vocab GGUF files in " << test::shared_dir();
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    auto f = GgufFile::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    auto tokens = f->get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.message();
    EXPECT_GT(tokens->size(), 1000u);
    EXPECT_TRUE(f->get_string("tokenizer.ggml.model").ok());
    expect_file_matches_js(*f, node_read(path));
  }
}

}  // namespace
}  // namespace slm
