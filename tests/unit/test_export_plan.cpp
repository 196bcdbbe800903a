// GGUF export plans: fixture models of every family (GGUF and Hugging Face sources), the shared
// tokenizer vocabularies (as GGUF and as tokenizer.json) and the llama2.c stories260K model are
// exported, reloaded, and must give the source's logits and token ids; the written files'
// keys are read back with the independent @huggingface/gguf parser.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "convert/export_plan.h"
#include "formats/gguf.h"
#include "model/fixture.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

using nlohmann::json;

// Writes the plan with every tensor in F32 (the writer under test elsewhere adds types).
void write_plan(const ExportPlan& plan, const std::string& path) {
  GgufWriter w;
  for (const auto& [key, value] : plan.metadata) w.set_value(key, value);
  for (const ExportTensor& t : plan.tensors) {
    const int64_t rows = t.src.rows(), cols = t.src.ne[0];
    std::vector<float> data(static_cast<size_t>(rows * cols));
    export_rows_f32(t, 0, rows, data.data());
    std::vector<int64_t> ne(t.src.ne, t.src.ne + std::max(1, t.src.n_dims));
    ASSERT_TRUE(w.add_tensor(t.name, DType::F32, ne,
                             std::string(reinterpret_cast<const char*>(data.data()),
                                         data.size() * sizeof(float)))
                    .ok())
        << t.name;
  }
  ASSERT_TRUE(w.write(path).ok());
}

std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {}) {
  auto m = Model::load(path, opts);
  EXPECT_TRUE(m.ok()) << path << ": " << m.message();
  return m.ok() ? std::move(m).value() : nullptr;
}

// Exports `src` to path and loads the result.
std::unique_ptr<Model> export_and_load(const Model& src, const std::string& path) {
  auto plan = plan_gguf_export(src);
  EXPECT_TRUE(plan.ok()) << plan.message();
  if (!plan.ok()) return nullptr;
  write_plan(*plan, path);
  return load(path);
}

json node_read(const std::string& path) {
  const std::string script = test::source_dir() + "/tests/ref/gguf_read.mjs";
  auto r = test::run(test::node_cmd() + " " + test::sh_quote(script) + " " + test::sh_quote(path));
  EXPECT_EQ(r.exit_code, 0) << "@huggingface/gguf failed on " << path << ": " << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json();
}

std::vector<float> logits(const Model& m, const std::vector<int32_t>& toks) {
  Session s(m, 64, 1);
  auto out = s.forward(toks, /*all_logits=*/true);
  EXPECT_TRUE(out.ok()) << out.message();
  return out.ok() ? std::vector<float>(out->begin(), out->end()) : std::vector<float>();
}

// max |a - b| / max |a|; NaN counts as a failure.
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d == d)) return INFINITY;
    num = std::max(num, d);
    den = std::max(den, std::fabs(static_cast<double>(a[i])));
  }
  return num / den;
}

// ---- architectures ----

struct ArchCase {
  std::string name;
  FixtureSpec spec;
  bool hf = true;
  std::vector<std::string> want_tensors;     // must be present
  std::vector<std::string> absent_tensors;   // must not be present
  std::vector<std::string> want_keys;        // metadata keys that must be present
};

std::vector<ArchCase> arch_cases() {
  std::vector<ArchCase> v;
  auto add = [&](std::string name, FixtureSpec s, bool hf, std::vector<std::string> want,
                 std::vector<std::string> absent, std::vector<std::string> keys = {}) {
    v.push_back({std::move(name), std::move(s), hf, std::move(want), std::move(absent),
                 std::move(keys)});
  };
  FixtureSpec llama;
  llama.n_head_kv = 2;
  add("llama_hf", llama, true, {"blk.1.attn_q.weight", "blk.1.ffn_gate.weight", "output.weight"},
      {"rope_freqs.weight"});
  add("llama_gguf", llama, false, {"blk.0.attn_k.weight"}, {});
  FixtureSpec l3 = llama;
  l3.rope_scaling = RopeScalingType::llama3;
  add("llama3_hf", l3, true, {"rope_freqs.weight"}, {});
  add("llama3_gguf", l3, false, {"rope_freqs.weight"}, {});
  FixtureSpec lin = llama;
  lin.rope_scaling = RopeScalingType::linear;
  lin.rope_factor = 4.0f;
  add("linear_hf", lin, true, {}, {"rope_freqs.weight"},
      {"llama.rope.scaling.type", "llama.rope.scaling.factor"});
  FixtureSpec tied = llama;
  tied.tied = true;
  add("llama_tied_hf", tied, true, {"token_embd.weight"}, {"output.weight"});
  FixtureSpec lbias = llama;
  lbias.qkv_bias = true;  // llama with biases: the q/k bias elements are permuted too
  add("llama_bias_hf", lbias, true, {"blk.0.attn_q.bias", "blk.0.attn_k.bias"}, {});
  FixtureSpec q2;
  q2.arch = "qwen2";
  q2.qkv_bias = true;
  q2.n_head_kv = 2;
  q2.tied = true;
  add("qwen2_hf", q2, true, {"blk.0.attn_q.bias", "blk.1.attn_v.bias"}, {"output.weight"});
  FixtureSpec q3;
  q3.arch = "qwen3";
  q3.qk_norm = true;
  q3.head_dim = 32;  // != n_embd / n_head
  q3.n_head_kv = 2;
  add("qwen3_hf", q3, true, {"blk.0.attn_q_norm.weight", "blk.1.attn_k_norm.weight"}, {},
      {"qwen3.attention.key_length", "qwen3.attention.value_length"});
  add("qwen3_gguf", q3, false, {"blk.0.attn_q_norm.weight"}, {});
  FixtureSpec phi;
  phi.arch = "phi3";
  add("phi3_hf", phi, true, {"blk.0.attn_qkv.weight", "blk.1.ffn_up.weight"},
      {"blk.0.attn_q.weight", "blk.0.ffn_gate.weight"});
  add("phi3_gguf", phi, false, {"blk.1.attn_qkv.weight"}, {"blk.1.ffn_gate.weight"});
  return v;
}

class ExportArch : public ::testing::TestWithParam<ArchCase> {};

TEST_P(ExportArch, SameLogitsAndKeys) {
  const ArchCase& c = GetParam();
  test::TempDir dir;
  std::string src_path = dir.file("src.gguf");
  if (c.hf) {
    src_path = dir.path();
    ASSERT_TRUE(write_fixture_hf(c.spec, src_path).ok());
  } else {
    ASSERT_TRUE(write_fixture_gguf(c.spec, src_path).ok());
  }
  auto src = load(src_path);
  ASSERT_TRUE(src);
  const std::string out_path = dir.file("out.gguf");
  auto dst = export_and_load(*src, out_path);
  ASSERT_TRUE(dst);
  EXPECT_EQ(dst->config().arch, c.spec.arch);
  EXPECT_EQ(dst->config().n_layer, c.spec.n_layer);
  EXPECT_EQ(dst->config().head_dim, src->config().head_dim);

  std::vector<int32_t> toks;
  for (int i = 0; i < 24; ++i) toks.push_back(static_cast<int32_t>((i * 37 + 5) % c.spec.n_vocab));
  const auto a = logits(*src, toks), b = logits(*dst, toks);
  // The same weights, but llama exports permute the q/k rows (GGUF's rope pairing), so the
  // attention dot products add the same terms in another order: float rounding only.
  EXPECT_LT(rel_err(a, b), 3e-5) << c.name;

  // The independent parser sees the llama.cpp keys and tensor names.
  const json j = node_read(out_path);
  ASSERT_TRUE(j.is_object());
  const json& md = j["metadata"];
  const std::string a_ = c.spec.arch + ".";
  for (const std::string& k :
       {std::string("general.architecture"), std::string("general.name"), a_ + "context_length",
        a_ + "embedding_length", a_ + "block_count", a_ + "feed_forward_length",
        a_ + "attention.head_count", a_ + "attention.head_count_kv",
        a_ + "attention.layer_norm_rms_epsilon", a_ + "rope.freq_base",
        a_ + "rope.dimension_count"}) {
    EXPECT_TRUE(md.contains(k)) << c.name << ": missing " << k;
  }
  for (const std::string& k : c.want_keys) EXPECT_TRUE(md.contains(k)) << c.name << ": " << k;
  EXPECT_EQ(md["general.architecture"]["value"], c.spec.arch);
  EXPECT_EQ(md[a_ + "block_count"]["value"], c.spec.n_layer);
  EXPECT_EQ(md[a_ + "attention.head_count_kv"]["value"], c.spec.n_head_kv);
  std::set<std::string> names;
  for (const json& t : j["tensors"]) names.insert(t["name"].get<std::string>());
  EXPECT_TRUE(names.count("token_embd.weight"));
  EXPECT_TRUE(names.count("output_norm.weight"));
  for (const auto& n : c.want_tensors) EXPECT_TRUE(names.count(n)) << c.name << ": " << n;
  for (const auto& n : c.absent_tensors) EXPECT_FALSE(names.count(n)) << c.name << ": " << n;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ExportArch, ::testing::ValuesIn(arch_cases()),
                         [](const auto& info) { return info.param.name; });

// Exporting an HF llama model must give the same bytes for q/k as llama.cpp's converter
// permutation, which write_fixture_gguf implements independently for the same weights.
TEST(ExportPlan, PermutationMatchesFixtureGguf) {
  FixtureSpec s;
  s.n_head_kv = 2;
  s.qkv_bias = true;
  test::TempDir dir;
  ASSERT_TRUE(write_fixture_hf(s, dir.path()).ok());
  ASSERT_TRUE(write_fixture_gguf(s, dir.file("ref.gguf")).ok());
  auto src = load(dir.path());
  ASSERT_TRUE(src);
  auto plan = plan_gguf_export(*src);
  ASSERT_TRUE(plan.ok()) << plan.message();
  auto ref = GgufFile::open(dir.file("ref.gguf"));
  ASSERT_TRUE(ref.ok()) << ref.message();
  int checked = 0;
  for (const ExportTensor& t : plan->tensors) {
    const TensorView* r = ref->tensor(t.name);
    ASSERT_NE(r, nullptr) << t.name;
    ASSERT_EQ(r->nelements(), t.src.nelements()) << t.name;
    std::vector<float> got(static_cast<size_t>(t.src.nelements()));
    export_rows_f32(t, 0, t.src.rows(), got.data());
    std::vector<float> want(got.size());
    std::memcpy(want.data(), r->data, want.size() * sizeof(float));
    EXPECT_EQ(got, want) << t.name;
    if (t.permute_heads) ++checked;
  }
  EXPECT_EQ(checked, 2 * 2 * s.n_layer);  // q, k weights and biases per layer
}

// ---- tokenizers ----

struct Cases {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> ids;
};

Cases load_cases(const std::string& family) {
  const std::string base = test::shared_dir() + "/tokenizer/ggml-vocab-" + family + ".gguf";
  const std::string inp = test::read_text(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  Cases c;
  size_t pos = 0;
  for (size_t hit; (hit = inp.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    c.texts.push_back(inp.substr(pos, hit - pos));
  }
  std::istringstream lines(test::read_text(base + ".out"));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ids(line);
    std::vector<int32_t> v;
    int32_t id = 0;
    while (ids >> id) v.push_back(id);
    c.ids.push_back(v);
  }
  return c;
}

// Same ids from both tokenizers in every mode, and the published ids in the plain mode.
void expect_same_tokenizer(const Model& src, const Model& dst, const std::string& family) {
  ASSERT_TRUE(src.has_tokenizer());
  ASSERT_TRUE(dst.has_tokenizer());
  const Tokenizer& a = src.tokenizer();
  const Tokenizer& b = dst.tokenizer();
  EXPECT_EQ(a.bos_id(), b.bos_id());
  EXPECT_EQ(a.eos_id(), b.eos_id());
  EXPECT_EQ(a.add_bos(), b.add_bos());
  EXPECT_EQ(a.add_eos(), b.add_eos());
  const Cases cases = load_cases(family);
  ASSERT_EQ(cases.texts.size(), 46u);
  ASSERT_EQ(cases.ids.size(), cases.texts.size());
  size_t ok = 0;
  for (size_t i = 0; i < cases.texts.size(); ++i) {
    const std::string& t = cases.texts[i];
    const auto got = b.encode(t, false, false);
    EXPECT_EQ(got, cases.ids[i]) << family << ": '" << t << "'";
    EXPECT_EQ(got, a.encode(t, false, false)) << family << ": '" << t << "'";
    EXPECT_EQ(b.encode(t, true, false), a.encode(t, true, false)) << family << ": '" << t << "'";
    EXPECT_EQ(b.encode(t, true, true), a.encode(t, true, true)) << family << ": '" << t << "'";
    EXPECT_EQ(b.decode(got), a.decode(got)) << family << ": '" << t << "'";
    if (got == cases.ids[i]) ++ok;
  }
  std::printf("%s: exported tokenizer %zu/%zu\n", family.c_str(), ok, cases.texts.size());
}

int64_t gguf_vocab_size(const std::string& path) {
  auto g = GgufFile::open(path);
  EXPECT_TRUE(g.ok()) << g.message();
  if (!g.ok()) return 0;
  auto tokens = g->get_string_array("tokenizer.ggml.tokens");
  EXPECT_TRUE(tokens.ok());
  return tokens.ok() ? static_cast<int64_t>(tokens->size()) : 0;
}

FixtureSpec tiny_spec(int64_t n_vocab) {
  FixtureSpec s;
  s.n_vocab = n_vocab;
  s.n_embd = 16;
  s.n_head = 2;
  s.n_head_kv = 2;
  s.n_ff = 32;
  s.n_layer = 1;
  s.tied = true;
  return s;
}

class ExportTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(ExportTokenizer, FromGguf) {
  const std::string family = GetParam();
  const std::string vocab = test::shared_dir() + "/tokenizer/ggml-vocab-" + family + ".gguf";
  FixtureSpec s = tiny_spec(gguf_vocab_size(vocab));
  ASSERT_GT(s.n_vocab, 0);
  s.vocab_gguf = vocab;
  s.chat_template = "{{ messages[0]['content'] }}";
  test::TempDir dir;
  ASSERT_TRUE(write_fixture_gguf(s, dir.file("src.gguf")).ok());
  auto src = load(dir.file("src.gguf"));
  ASSERT_TRUE(src);
  auto dst = export_and_load(*src, dir.file("out.gguf"));
  ASSERT_TRUE(dst);
  EXPECT_EQ(dst->chat_template(), s.chat_template);
  EXPECT_EQ(dst->tokenizer().pre_type(), src->tokenizer().pre_type());
  expect_same_tokenizer(*src, *dst, family);
}

TEST_P(ExportTokenizer, FromTokenizerJson) {
  const std::string family = GetParam();
  const std::string vocab = test::shared_dir() + "/tokenizer/ggml-vocab-" + family + ".gguf";
  FixtureSpec s = tiny_spec(gguf_vocab_size(vocab));
  ASSERT_GT(s.n_vocab, 0);
  test::TempDir dir;
  ASSERT_TRUE(write_fixture_hf(s, dir.path()).ok());
  const std::string script = test::source_dir() + "/tests/ref/tokenizers_ref.mjs";
  auto built = test::run(test::node_cmd() + " " + test::sh_quote(script) + " build " +
                         test::sh_quote(vocab) + " " + family + " " +
                         test::sh_quote(dir.file("tokenizer.json")));
  ASSERT_EQ(built.exit_code, 0) << "reference build failed (node + @huggingface/gguf needed): "
                                << built.err;
  auto src = load(dir.path());
  ASSERT_TRUE(src);
  auto dst = export_and_load(*src, dir.file("out.gguf"));
  ASSERT_TRUE(dst);
  expect_same_tokenizer(*src, *dst, family);
}

INSTANTIATE_TEST_SUITE_P(Families, ExportTokenizer,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "starcoder",
                                           "bert-bge"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

// A vocabulary smaller than the embedding gets llama.cpp's [PAD<id>] tokens.
TEST(ExportPlan, PadsVocabularyToEmbeddingRows) {
  const std::string vocab = test::shared_dir() + "/tokenizer/ggml-vocab-gpt-2.gguf";
  const int64_t n = gguf_vocab_size(vocab);
  ASSERT_GT(n, 0);
  test::TempDir dir;
  FixtureSpec s = tiny_spec(n);
  ASSERT_TRUE(write_fixture_hf(s, dir.path()).ok());
  const std::string script = test::source_dir() + "/tests/ref/tokenizers_ref.mjs";
  ASSERT_EQ(test::run(test::node_cmd() + " " + test::sh_quote(script) + " build " +
                      test::sh_quote(vocab) + " gpt-2 " + test::sh_quote(dir.file("tokenizer.json")))
                .exit_code,
            0);
  // Same tokenizer, 3 more embedding rows.
  s.n_vocab = n + 3;
  ASSERT_TRUE(write_fixture_hf(s, dir.path()).ok());
  auto src = load(dir.path());
  ASSERT_TRUE(src);
  auto dst = export_and_load(*src, dir.file("out.gguf"));
  ASSERT_TRUE(dst);
  ASSERT_EQ(dst->tokenizer().vocab_size(), n + 3);
  EXPECT_EQ(dst->tokenizer().token_text(static_cast<int32_t>(n + 1)),
            "[PAD" + std::to_string(n + 1) + "]");
  EXPECT_EQ(dst->tokenizer().token_type(static_cast<int32_t>(n)), TokenType::unused);
  const std::string text = "Hello world, 123 tokens!";
  EXPECT_EQ(dst->tokenizer().encode(text, true, true), src->tokenizer().encode(text, true, true));
}

// A byte-level pre-tokenizer llama.cpp has no preset for cannot be exported faithfully: the
// plan fails and says why instead of writing a file that tokenizes differently.
TEST(ExportPlan, UnknownPreTokenizerIsAnError) {
  const std::string vocab = test::shared_dir() + "/tokenizer/ggml-vocab-gpt-2.gguf";
  test::TempDir dir;
  FixtureSpec s = tiny_spec(gguf_vocab_size(vocab));
  ASSERT_TRUE(write_fixture_hf(s, dir.path()).ok());
  const std::string script = test::source_dir() + "/tests/ref/tokenizers_ref.mjs";
  ASSERT_EQ(test::run(test::node_cmd() + " " + test::sh_quote(script) + " build " +
                      test::sh_quote(vocab) + " gpt-2 " + test::sh_quote(dir.file("tokenizer.json")))
                .exit_code,
            0);
  json tj = json::parse(test::read_text(dir.file("tokenizer.json")));
  tj["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "[a-z]+"}}}, {"behavior", "Isolated"}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  test::write_text(dir.file("tokenizer.json"), tj.dump());
  auto src = load(dir.path());
  ASSERT_TRUE(src);
  auto plan = plan_gguf_export(*src);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.message().find("tokenizer.ggml.pre"), std::string::npos) << plan.message();
}

// ---- llama2.c ----

TEST(ExportPlan, Llama2cStories260K) {
  const std::string model = test::shared_dir() + "/models/stories260K.bin";
  LoadOptions opts;
  opts.tokenizer_path = test::shared_dir() + "/models/tok512.bin";
  auto src = load(model, opts);
  ASSERT_TRUE(src);
  test::TempDir dir;
  auto dst = export_and_load(*src, dir.file("stories.gguf"));
  ASSERT_TRUE(dst);
  for (const char* text :
       {"Once upon a time", " leading space", "Lily and Tom\nplayed.  Twice", "tab\there 42!"}) {
    EXPECT_EQ(dst->tokenizer().encode(text, true, false), src->tokenizer().encode(text, true, false))
        << text;
  }
  // Greedy continuation: same tokens, same logits at every step.
  auto prompt = src->tokenizer().encode("Once upon a time", true, false);
  Session sa(*src, 128, 1), sb(*dst, 128, 1);
  std::vector<int32_t> next = prompt;
  std::vector<int32_t> got_a, got_b;
  double worst = 0;
  for (int step = 0; step < 40; ++step) {
    auto la = sa.forward(next);
    auto lb = sb.forward(next);
    ASSERT_TRUE(la.ok() && lb.ok());
    std::vector<float> va(la->begin(), la->end()), vb(lb->begin(), lb->end());
    worst = std::max(worst, rel_err(va, vb));
    const int32_t ta = static_cast<int32_t>(std::max_element(va.begin(), va.end()) - va.begin());
    const int32_t tb = static_cast<int32_t>(std::max_element(vb.begin(), vb.end()) - vb.begin());
    got_a.push_back(ta);
    got_b.push_back(tb);
    next = {ta};
  }
  EXPECT_EQ(got_a, got_b);
  EXPECT_LT(worst, 1e-5);
  EXPECT_EQ(dst->tokenizer().decode(got_b), src->tokenizer().decode(got_a));
  std::printf("stories260K exported: \"%s\"\n", dst->tokenizer().decode(got_b).c_str());
}

}  // namespace
}  // namespace slm
