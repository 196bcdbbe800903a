// `slm quantize` end to end and the streaming GGUF writer: outputs read by @huggingface/gguf
// (independent parser) with the per-tensor types the recipes document, logits of the quantized
// model vs the F32 model and vs F32 weights dequantized from the output, and clean failures.
#include <gtest/gtest.h>

#include <dirent.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"
#include "convert/quantize.h"
#include "formats/gguf.h"
#include "formats/gguf_stream.h"
#include "kernels/quant.h"
#include "model/fixture.h"
#include "model/model.h"

namespace slm {
namespace {

using json = nlohmann::json;

json node_read(const std::string& path) {
  std::string script = test::source_dir() + "/tests/ref/gguf_read.mjs";
  test::RunResult r =
      test::run(test::node_cmd() + " " + test::sh_quote(script) + " " + test::sh_quote(path));
  EXPECT_EQ(r.exit_code, 0) << "@huggingface/gguf failed on " << path << ": " << r.err;
  if (r.exit_code != 0) return json();
  return json::parse(r.out);
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  return out;
}

// ---- streaming writer -------------------------------------------------------------------------

struct Content {
  std::vector<std::pair<std::string, GgufValue>> kv;
  std::vector<GgufTensorInfo> infos;
  std::vector<std::string> bytes;
};

Content sample_content(uint64_t alignment) {
  Content c;
  if (alignment != 32) c.kv.emplace_back("general.alignment", gguf_uint(GgufType::UINT32, alignment));
  c.kv.emplace_back("general.architecture", gguf_string("llama"));
  c.kv.emplace_back("a.u32", gguf_uint(GgufType::UINT32, 7));
  c.kv.emplace_back("a.f32s", gguf_float_array(GgufType::FLOAT32, {1.5, -2.0}));
  c.kv.emplace_back("a.strs", gguf_string_array({"x", "", "yz"}));
  c.kv.emplace_back("a.nested", gguf_array_array({gguf_int_array(GgufType::INT16, {1, -2})}));
  const std::vector<std::pair<DType, std::vector<int64_t>>> shapes = {
      {DType::F32, {5, 3}}, {DType::Q8_0, {64, 2}}, {DType::F16, {7}}, {DType::Q4_K, {256, 1, 2}}};
  uint32_t seed = 1;
  for (size_t i = 0; i < shapes.size(); ++i) {
    // The name is built stepwise: g++ 12 warns (-Wrestrict, falsely) on "t" + to_string(i).
    std::string name = "t";
    name += std::to_string(i);
    GgufTensorInfo t{name, shapes[i].first, shapes[i].second};
    uint64_t row = 0;
    dtype_row_bytes(t.dtype, t.ne[0], &row);
    uint64_t n = row;
    for (size_t k = 1; k < t.ne.size(); ++k) n *= static_cast<uint64_t>(t.ne[k]);
    std::string b(n, '\0');
    for (char& ch : b) ch = static_cast<char>((seed = seed * 1103515245u + 12345u) >> 24);
    c.infos.push_back(t);
    c.bytes.push_back(b);
  }
  return c;
}

TEST(GgufStream, MatchesGgufWriterByteForByteAndParses) {
  for (uint64_t alignment : {32u, 64u}) {
    SCOPED_TRACE(alignment);
    Content c = sample_content(alignment);
    GgufWriter gw(3, alignment);
    for (const auto& [k, v] : c.kv) gw.set_value(k, v);
    for (size_t i = 0; i < c.infos.size(); ++i) {
      ASSERT_TRUE(gw.add_tensor(c.infos[i].name, c.infos[i].dtype, c.infos[i].ne, c.bytes[i]).ok());
    }
    test::TempDir dir;
    const std::string path = dir.file("s.gguf");
    GgufStreamWriter w;
    ASSERT_TRUE(w.open(path, c.kv, c.infos, 3, alignment).ok());
    for (const std::string& b : c.bytes) {
      // Uneven chunks: the writer must stitch them and pad only at tensor ends.
      const size_t cut = b.size() / 3;
      ASSERT_TRUE(w.append(b.data(), cut).ok());
      ASSERT_TRUE(w.append(b.data() + cut, b.size() - cut).ok());
    }
    ASSERT_TRUE(w.finish().ok());
    EXPECT_EQ(test::read_text(path), gw.serialize());
    EXPECT_EQ(list_dir(dir.path()).size(), 1u);  // no temporary left behind

    json j = node_read(path);
    ASSERT_FALSE(j.is_null());
    ASSERT_EQ(j["tensors"].size(), c.infos.size());
    for (size_t i = 0; i < c.infos.size(); ++i) {
      EXPECT_EQ(j["tensors"][i]["name"], c.infos[i].name);
      EXPECT_EQ(j["tensors"][i]["dtype"].get<int>(), static_cast<int>(c.infos[i].dtype));
    }
    EXPECT_EQ(j["metadata"]["a.u32"]["value"].get<int>(), 7);
  }
}

TEST(GgufStream, FailuresLeaveNoOutputAndKeepAnOldOne) {
  test::TempDir dir;
  const std::string path = dir.file("o.gguf");
  test::write_text(path, "old contents");
  Content c = sample_content(32);
  {
    GgufStreamWriter w;
    ASSERT_TRUE(w.open(path, c.kv, c.infos, 3, 32).ok());
    ASSERT_TRUE(w.append(c.bytes[0].data(), c.bytes[0].size()).ok());
    Status s = w.finish();  // tensors 1..3 missing
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("'t1'"), std::string::npos) << s.message();
  }
  {
    GgufStreamWriter w;
    ASSERT_TRUE(w.open(path, c.kv, c.infos, 3, 32).ok());
    std::string too_long = c.bytes[0] + "x";
    EXPECT_FALSE(w.append(too_long.data(), too_long.size()).ok());
  }
  {
    GgufStreamWriter w;  // dies unfinished
    ASSERT_TRUE(w.open(path, c.kv, c.infos, 3, 32).ok());
  }
  GgufStreamWriter bad;
  auto infos = c.infos;
  infos[1].name = infos[0].name;
  EXPECT_FALSE(bad.open(path, c.kv, infos, 3, 32).ok());
  infos = c.infos;
  infos[3].ne = {100};  // not a multiple of 256 for Q4_K
  EXPECT_FALSE(bad.open(path, c.kv, infos, 3, 32).ok());
  EXPECT_FALSE(bad.open(path, c.kv, c.infos, 3, 64).ok());  // general.alignment disagrees
  EXPECT_FALSE(bad.open(dir.file("missing/x.gguf"), c.kv, c.infos, 3, 32).ok());
  EXPECT_EQ(test::read_text(path), "old contents");
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"o.gguf"});
}

// ---- recipes ----------------------------------------------------------------------------------

// llama.cpp's more-bits layers for 32 layers, enumerated by hand: i < 4, i >= 28, and
// (i - 4) % 3 == 2.
TEST(QuantRecipe, MixRulesFor32Layers) {
  const std::set<int> more = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
  auto m = parse_quant_recipe("q4_k_m");
  ASSERT_TRUE(m.ok());
  auto s = parse_quant_recipe("Q4_K_S");
  auto q3 = parse_quant_recipe("Q3_K_M");
  ASSERT_TRUE(s.ok() && q3.ok());
  for (int il = 0; il < 32; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    const DType want = more.count(il) ? DType::Q6_K : DType::Q4_K;
    EXPECT_EQ(choose_tensor_type(*m, b + "attn_v.weight", true, 4096, 32, true), want) << il;
    EXPECT_EQ(choose_tensor_type(*m, b + "ffn_down.weight", true, 11008, 32, true), want) << il;
    EXPECT_EQ(choose_tensor_type(*m, b + "attn_q.weight", true, 4096, 32, true), DType::Q4_K);
    EXPECT_EQ(choose_tensor_type(*s, b + "attn_v.weight", true, 4096, 32, true),
              il < 4 ? DType::Q5_K : DType::Q4_K);
    EXPECT_EQ(choose_tensor_type(*s, b + "ffn_down.weight", true, 4096, 32, true),
              il < 4 ? DType::Q5_K : DType::Q4_K);
    EXPECT_EQ(choose_tensor_type(*q3, b + "ffn_down.weight", true, 4096, 32, true),
              il < 2 ? DType::Q5_K : DType::Q4_K);
    EXPECT_EQ(choose_tensor_type(*q3, b + "attn_norm.weight", false, 4096, 32, true), DType::F32);
  }
  EXPECT_EQ(choose_tensor_type(*m, "output.weight", true, 4096, 32, true), DType::Q6_K);
  EXPECT_EQ(choose_tensor_type(*m, "token_embd.weight", true, 4096, 32, true), DType::Q4_K);
  EXPECT_EQ(choose_tensor_type(*m, "token_embd.weight", true, 4096, 32, false), DType::Q6_K);
  EXPECT_EQ(choose_tensor_type(*m, "token_embd.weight", true, 96, 32, false), DType::Q8_0);
  EXPECT_EQ(choose_tensor_type(*m, "blk.5.attn_q.weight", true, 96, 32, true), DType::Q5_0);
  auto q8 = parse_quant_recipe("Q8_0");
  EXPECT_EQ(choose_tensor_type(*q8, "blk.5.attn_q.weight", true, 40, 32, true), DType::F16);
  auto bad = parse_quant_recipe("Q4_K_X");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("Q4_K_M"), std::string::npos) << bad.message();
}

// ---- the CLI on fixture models ----------------------------------------------------------------

FixtureSpec wide_spec() {  // K-quants apply: every row length is a multiple of 256
  FixtureSpec s;
  s.n_vocab = 256;
  s.n_embd = 256;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_ff = 512;
  s.n_layer = 2;
  s.seed = 7;
  return s;
}

FixtureSpec narrow_spec() {  // 96-wide: K-quants fall back
  FixtureSpec s;
  s.n_vocab = 128;
  s.n_embd = 96;
  s.n_head = 4;
  s.n_head_kv = 4;
  s.n_ff = 96;
  s.n_layer = 2;
  s.seed = 9;
  return s;
}

const std::vector<int32_t> k_tokens = {1, 5, 9, 42, 7, 100, 3, 77};

std::vector<float> logits_of(const std::string& path) {
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << m.message();
  if (!m.ok()) return {};
  Session s(**m, 32, 2);
  auto out = s.forward(k_tokens, true);
  EXPECT_TRUE(out.ok()) << out.message();
  if (!out.ok()) return {};
  return std::vector<float>(out->begin(), out->end());
}

double nmse(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size() && i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    if (!std::isfinite(d)) return INFINITY;
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return a.size() == ref.size() && den > 0 ? num / den : INFINITY;
}

// The output file with every tensor dequantized to F32 (dequantize_row is verified against
// numpy in test_dequant): the exact weights the quantized model computes with.
std::string dequantized_copy(const std::string& path, const std::string& out) {
  auto f = GgufFile::open(path);
  EXPECT_TRUE(f.ok()) << f.message();
  GgufWriter w;
  for (const auto& [k, v] : f->metadata()) w.set_value(k, v);
  for (const TensorView& t : f->tensors()) {
    std::vector<float> x(static_cast<size_t>(t.nelements()));
    for (int64_t r = 0; r < t.rows(); ++r) {
      EXPECT_TRUE(dequantize_row_checked(t.dtype, t.row(r), x.data() + r * t.ne[0], t.ne[0]).ok());
    }
    std::string bytes(reinterpret_cast<const char*>(x.data()), x.size() * 4);
    EXPECT_TRUE(w.add_tensor(t.name, DType::F32, std::vector<int64_t>(t.ne, t.ne + t.n_dims), bytes).ok());
  }
  EXPECT_TRUE(w.write(out).ok());
  return out;
}

// Expected type of each tensor of the 2-layer fixture under each recipe, from the documented
// rules (written out here, not computed by the library).
DType expected_wide(const std::string& recipe, const std::string& name) {
  if (name.find("norm") != std::string::npos) return DType::F32;
  DType single;
  if (dtype_from_name(recipe, &single)) return single;
  const bool out = name == "output.weight";
  const bool l1 = name.rfind("blk.1.", 0) == 0;
  const bool v = name.find("attn_v.") != std::string::npos;
  const bool down = name.find("ffn_down.") != std::string::npos;
  const bool o = name.find("attn_output.") != std::string::npos;
  if (out) return DType::Q6_K;
  if (recipe == "Q4_K_M") return l1 && (v || down) ? DType::Q6_K : DType::Q4_K;
  if (recipe == "Q5_K_M") return l1 && (v || down) ? DType::Q6_K : DType::Q5_K;
  if (recipe == "Q4_K_S") return v ? DType::Q5_K : DType::Q4_K;
  if (recipe == "Q5_K_S") return DType::Q5_K;
  if (recipe == "Q3_K_M") return v ? DType::Q5_K : (down || o) ? DType::Q4_K : DType::Q3_K;
  return DType::F32;
}

struct RecipeBound {
  const char* recipe;
  double vs_f32;  // logits NMSE bound vs the F32 model (measured value x ~1.6-2)
};

// Measured NMSE (2-layer 256-wide fixture, 8 tokens): F16 4.3e-7, BF16 2.4e-5, Q8_0 3.6e-4,
// Q4_0 4.3e-2, Q4_1 3.4e-2, Q5_0 9.4e-3, Q5_1 9.4e-3, Q2_K 0.35, Q3_K 0.11, Q4_K 2.8e-2,
// Q5_K 7.5e-3, Q6_K 1.8e-3, Q3_K_M 5.8e-2, Q4_K_S 2.3e-2, Q4_K_M 2.3e-2, Q5_K_S 6.9e-3,
// Q5_K_M 7.1e-3. Against the dequantized weights every type measured <= 4.5e-4 (the dot
// kernels round activations to 8 bits).
const RecipeBound k_recipe_bounds[] = {
    {"F32", 1e-9},    {"F16", 1e-5},    {"BF16", 1e-4},    {"Q8_0", 1e-3},   {"Q4_0", 0.08},
    {"Q4_1", 0.06},   {"Q5_0", 0.02},   {"Q5_1", 0.02},    {"Q2_K", 0.6},    {"Q3_K", 0.2},
    {"Q4_K", 0.05},   {"Q5_K", 0.015},  {"Q6_K", 4e-3},    {"Q3_K_M", 0.1},  {"Q4_K_S", 0.045},
    {"Q4_K_M", 0.045}, {"Q5_K_S", 0.014}, {"Q5_K_M", 0.014},
};

std::string quantize_cmd(const std::string& in, const std::string& out, const std::string& type) {
  return test::slm_exe() + " quantize " + test::sh_quote(in) + " " + test::sh_quote(out) +
         " --type " + type + " -t 2";
}

TEST(QuantizeCli, EveryRecipeOnAWideFixture) {
  test::TempDir dir;
  const std::string src = dir.file("f32.gguf");
  ASSERT_TRUE(write_fixture_gguf(wide_spec(), src).ok());
  const std::vector<float> ref = logits_of(src);
  ASSERT_FALSE(ref.empty());
  std::printf("recipe   bpw     nmse-vs-f32   nmse-vs-dequantized\n");
  for (const RecipeBound& rb : k_recipe_bounds) {
    SCOPED_TRACE(rb.recipe);
    const std::string out = dir.file(std::string(rb.recipe) + ".gguf");
    test::RunResult r = test::run(quantize_cmd(src, out, rb.recipe));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("bits per weight"), std::string::npos) << r.out;
    json j = node_read(out);
    ASSERT_FALSE(j.is_null());
    EXPECT_EQ(j["metadata"]["general.quantization_version"]["value"].get<int>(), 2);
    ASSERT_EQ(j["tensors"].size(), 21u);  // embd, 2 x 9, output_norm, output
    for (const json& t : j["tensors"]) {
      const std::string name = t["name"];
      EXPECT_EQ(t["dtype"].get<int>(), static_cast<int>(expected_wide(rb.recipe, name))) << name;
    }
    const std::vector<float> q = logits_of(out);
    const std::vector<float> dq = logits_of(dequantized_copy(out, dir.file("dq.gguf")));
    const double e_ref = nmse(q, ref), e_dq = nmse(q, dq);
    const size_t bpw_at = r.out.find(" bits per weight");
    std::printf("%-8s %s %.3e     %.3e\n", rb.recipe,
                r.out.substr(r.out.rfind(", ", bpw_at) + 2, bpw_at - r.out.rfind(", ", bpw_at) - 2).c_str(),
                e_ref, e_dq);
    EXPECT_LE(e_ref, rb.vs_f32);
    // Same weights, computed by the quantized kernels vs F32 kernels: only activation
    // rounding in the dot products remains.
    EXPECT_LE(e_dq, 1e-3);
  }
}

TEST(QuantizeCli, NarrowHfFixtureFallsBack) {
  test::TempDir dir;
  const std::string src = dir.file("hf");
  test::run("mkdir " + test::sh_quote(src));
  ASSERT_TRUE(write_fixture_hf(narrow_spec(), src, DType::F16).ok());
  const std::vector<float> ref = logits_of(src);
  const std::map<std::string, std::pair<DType, DType>> want = {
      // recipe -> (most matrices, output.weight)
      {"Q2_K", {DType::Q4_0, DType::Q4_0}}, {"Q3_K", {DType::Q4_0, DType::Q4_0}},
      {"Q4_K", {DType::Q5_0, DType::Q5_0}}, {"Q5_K", {DType::Q5_1, DType::Q5_1}},
      {"Q6_K", {DType::Q8_0, DType::Q8_0}}, {"Q4_K_M", {DType::Q5_0, DType::Q8_0}},
  };
  for (const auto& [recipe, types] : want) {
    SCOPED_TRACE(recipe);
    const std::string out = dir.file(recipe + ".gguf");
    test::RunResult r = test::run(quantize_cmd(src, out, recipe));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json j = node_read(out);
    ASSERT_FALSE(j.is_null());
    for (const json& t : j["tensors"]) {
      const std::string name = t["name"];
      DType e = name.find("norm") != std::string::npos ? DType::F32
                : name == "output.weight"               ? types.second
                                                        : types.first;
      if (recipe == "Q4_K_M" && name.rfind("blk.1.", 0) == 0 &&
          (name.find("attn_v.") != std::string::npos || name.find("ffn_down.") != std::string::npos)) {
        e = DType::Q8_0;  // Q6_K by the mix, then its fallback
      }
      EXPECT_EQ(t["dtype"].get<int>(), static_cast<int>(e)) << name;
    }
    EXPECT_LE(nmse(logits_of(out), ref), 0.05);
  }
}

TEST(QuantizeCli, ProgressLinesAndHelp) {
  test::TempDir dir;
  const std::string src = dir.file("f32.gguf");
  ASSERT_TRUE(write_fixture_gguf(narrow_spec(), src).ok());
  test::RunResult r = test::run(quantize_cmd(src, dir.file("o.gguf"), "Q8_0") + " --progress");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[1/21] token_embd.weight -> Q8_0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[21/21] output.weight -> Q8_0"), std::string::npos) << r.err;
  r = test::run(quantize_cmd(src, dir.file("o2.gguf"), "Q8_0"));  // not a TTY: quiet
  EXPECT_EQ(r.err, "");
  r = test::run(test::slm_exe() + " quantize --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* s : {"Q4_K_M", "Q3_K_M", "Q5_K_S", "more-bits", "Q5_0"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
}

TEST(QuantizeCli, BadInputsFailCleanly) {
  test::TempDir dir;
  const std::string src = dir.file("f32.gguf");
  ASSERT_TRUE(write_fixture_gguf(narrow_spec(), src).ok());
  const std::string src_bytes = test::read_text(src);
  const std::string out = dir.file("out.gguf");
  struct Case {
    std::string cmd, message;
  };
  const std::vector<Case> cases = {
      {quantize_cmd(src, out, "Q4_K_X"), "valid: F32, F16"},
      {quantize_cmd(dir.file("nope.gguf"), out, "Q8_0"), "nope.gguf"},
      {quantize_cmd(src, dir.file("no/dir/out.gguf"), "Q8_0"), "does not exist"},
      {quantize_cmd(src, src, "Q8_0"), "output is the input"},
      {quantize_cmd(src, dir.path(), "Q8_0"), "is a directory"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.cmd);
    test::RunResult r = test::run(c.cmd);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  EXPECT_EQ(test::read_text(src), src_bytes);
  // A corrupt input: an existing OUT stays as it was, no temporary is left.
  test::write_text(out, "keep me");
  const std::string bad = dir.file("bad.gguf");
  test::write_text(bad, src_bytes.substr(0, 200));
  test::RunResult r = test::run(quantize_cmd(bad, out, "Q4_K_M"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::read_text(out), "keep me");
  std::vector<std::string> files = list_dir(dir.path());
  EXPECT_EQ(std::set<std::string>(files.begin(), files.end()),
            (std::set<std::string>{"f32.gguf", "out.gguf", "bad.gguf"}));
}

}  // namespace
}  // namespace slm
