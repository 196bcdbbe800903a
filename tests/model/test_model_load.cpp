// Model::load: format detection, config mapping, tokenizer / chat template / eos attachment,
// and a table of broken models (each one field or tensor wrong) that must fail with an error.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "formats/gguf.h"
#include "model/fixture.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

FixtureSpec small() {
  FixtureSpec s;
  s.n_vocab = 64;
  s.n_embd = 32;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_ff = 48;
  return s;
}

std::string make_hf(const test::TempDir& tmp, const std::string& name, const FixtureSpec& s) {
  std::string dir = tmp.file(name);
  fs::create_directories(dir);
  EXPECT_TRUE(write_fixture_hf(s, dir).ok());
  return dir;
}

TEST(ModelLoad, ConfigMappingPerFormat) {
  test::TempDir tmp;
  FixtureSpec s = small();
  s.rope_scaling = RopeScalingType::llama3;
  s.rope_factor = 32.0f;
  s.rope_low_freq_factor = 1.0f;
  s.rope_high_freq_factor = 4.0f;
  s.rope_orig_ctx = 8192;
  s.rope_theta = 500000.0f;
  s.norm_eps = 1e-6f;
  auto hf = Model::load(make_hf(tmp, "llama3", s));
  ASSERT_TRUE(hf.ok()) << hf.message();
  const ModelConfig& c = (*hf)->config();
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.source_format, "hf");
  EXPECT_FALSE(c.rope_interleaved);
  EXPECT_EQ(c.rope_scaling, RopeScalingType::llama3);
  EXPECT_FLOAT_EQ(c.rope_factor, 32.0f);
  EXPECT_FLOAT_EQ(c.rope_high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_orig_ctx, 8192);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.n_vocab, 64);

  std::string g = tmp.file("llama3.gguf");
  ASSERT_TRUE(write_fixture_gguf(s, g).ok());
  auto gm = Model::load(g);
  ASSERT_TRUE(gm.ok()) << gm.message();
  EXPECT_EQ((*gm)->config().source_format, "gguf");
  EXPECT_TRUE((*gm)->config().rope_interleaved);
  EXPECT_NE((*gm)->weights().rope_freqs.data, nullptr);
  EXPECT_EQ((*gm)->n_params(), (*hf)->n_params() + s.n_embd / s.n_head / 2);  // + rope_freqs

  FixtureSpec q = small();
  q.arch = "qwen3";
  q.qk_norm = true;
  q.head_dim = 16;
  std::string qg = tmp.file("qwen3.gguf");
  ASSERT_TRUE(write_fixture_gguf(q, qg).ok());
  auto qm = Model::load(qg);
  ASSERT_TRUE(qm.ok()) << qm.message();
  EXPECT_EQ((*qm)->config().arch, "qwen3");
  EXPECT_EQ((*qm)->config().head_dim, 16);
  EXPECT_FALSE((*qm)->config().rope_interleaved);
  EXPECT_TRUE((*qm)->config().qk_norm);

  FixtureSpec p = small();
  p.arch = "phi3";
  auto pm = Model::load(make_hf(tmp, "phi3", p));
  ASSERT_TRUE(pm.ok()) << pm.message();
  // Fused tensors are split into zero-copy row ranges.
  const LayerWeights& L = (*pm)->weights().layers[0];
  EXPECT_EQ(L.wq.ne[1], 32);
  EXPECT_EQ(L.wk.ne[1], 16);
  EXPECT_EQ(static_cast<const uint8_t*>(L.wk.data),
            static_cast<const uint8_t*>(L.wq.data) + 32 * 32 * 4);
  EXPECT_EQ(L.w_gate.ne[1], 48);
  EXPECT_EQ(static_cast<const uint8_t*>(L.w_up.data),
            static_cast<const uint8_t*>(L.w_gate.data) + 48 * 32 * 4);
  auto hist = (*pm)->dtype_histogram();
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(hist[0].first, "F32");
}

TEST(ModelLoad, GgufTokenizerAndChatTemplate) {
  test::TempDir tmp;
  const std::string vocab = test::shared_dir() + "/tokenizer/ggml-vocab-llama-spm.gguf";
  auto vf = GgufFile::open(vocab);
  ASSERT_TRUE(vf.ok()) << vf.message();
  auto toks = vf->get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks.ok());
  FixtureSpec s = small();
  s.n_vocab = static_cast<int64_t>(toks->size());
  s.n_layer = 1;
  s.vocab_gguf = vocab;
  s.chat_template = "{{ messages[0]['content'] }}";
  std::string g = tmp.file("tok.gguf");
  ASSERT_TRUE(write_fixture_gguf(s, g).ok());
  auto m = Model::load(g);
  ASSERT_TRUE(m.ok()) << m.message();
  ASSERT_TRUE((*m)->has_tokenizer());
  EXPECT_EQ((*m)->tokenizer().vocab_size(), s.n_vocab);
  EXPECT_EQ((*m)->chat_template(), s.chat_template);
  // First reference string of the llama-spm test data (ids from the HF tokenizer).
  std::string inp = test::read_text(vocab + ".inp"), out = test::read_text(vocab + ".out");
  std::string first = inp.substr(0, inp.find("\n__ggml_vocab_test__\n"));
  std::istringstream line(out.substr(0, out.find('\n')));
  std::vector<int32_t> want;
  for (int32_t id; line >> id;) want.push_back(id);
  EXPECT_EQ((*m)->tokenizer().encode(first, false, false), want);
  Session sess(**m, 16, 1);
  auto lg = sess.forward((*m)->tokenizer().encode("Hello", true, false));
  ASSERT_TRUE(lg.ok()) << lg.message();
  EXPECT_EQ(lg->size(), static_cast<size_t>(s.n_vocab));
}

TEST(ModelLoad, HfChatTemplateAndEos) {
  test::TempDir tmp;
  FixtureSpec s = small();
  s.chat_template = "T1";
  s.eos_ids = {2, 7};
  std::string dir = make_hf(tmp, "a", s);
  auto m = Model::load(dir);
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_FALSE((*m)->has_tokenizer());
  EXPECT_EQ((*m)->chat_template(), "T1");
  EXPECT_EQ((*m)->extra_eos_ids(), (std::vector<int32_t>{2, 7}));

  // A list of named templates: "default" is taken; a single eos id is accepted too.
  json tc = {{"chat_template", json::array({{{"name", "tool_use"}, {"template", "B"}},
                                            {{"name", "default"}, {"template", "A"}}})}};
  test::write_text(dir + "/tokenizer_config.json", tc.dump());
  test::write_text(dir + "/generation_config.json", R"({"eos_token_id": 5})");
  auto m2 = Model::load(dir);
  ASSERT_TRUE(m2.ok()) << m2.message();
  EXPECT_EQ((*m2)->chat_template(), "A");
  EXPECT_EQ((*m2)->extra_eos_ids(), (std::vector<int32_t>{5}));
}

// Broken HF configs: each edit must make load fail with a message naming the problem.
TEST(ModelLoad, BrokenHfConfigsAreErrors) {
  struct Edit {
    const char* what;
    std::function<void(json&)> edit;
    const char* expect;  // substring of the error
  };
  const std::vector<Edit> edits = {
      {"unknown model_type", [](json& c) { c["model_type"] = "gpt2"; }, "model_type"},
      {"missing hidden_size", [](json& c) { c.erase("hidden_size"); }, "hidden_size"},
      {"string hidden_size", [](json& c) { c["hidden_size"] = "32"; }, "hidden_size"},
      {"heads not dividing", [](json& c) { c["num_key_value_heads"] = 3; }, "n_head_kv"},
      {"zero layers", [](json& c) { c["num_hidden_layers"] = 0; }, "n_layer"},
      {"negative vocab", [](json& c) { c["vocab_size"] = -5; }, "n_vocab"},
      {"more layers than tensors", [](json& c) { c["num_hidden_layers"] = 3; }, "blk.2"},
      {"wrong ffn size", [](json& c) { c["intermediate_size"] = 40; }, "ffn_gate"},
      {"wrong vocab", [](json& c) { c["vocab_size"] = 65; }, "token_embd"},
      {"yarn scaling",
       [](json& c) {
         c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
       },
       "yarn"},
      {"partial rotary", [](json& c) { c["partial_rotary_factor"] = 0.5; }, "partial_rotary"},
      {"huge head_dim", [](json& c) { c["head_dim"] = 1 << 30; }, "attn_q"},
  };
  test::TempDir tmp;
  std::string dir = make_hf(tmp, "m", small());
  json orig = json::parse(test::read_text(dir + "/config.json"));
  for (const auto& e : edits) {
    json c = orig;
    e.edit(c);
    test::write_text(dir + "/config.json", c.dump());
    auto m = Model::load(dir);
    EXPECT_FALSE(m.ok()) << e.what;
    EXPECT_NE(m.message().find(e.expect), std::string::npos) << e.what << ": " << m.message();
  }
  test::write_text(dir + "/config.json", "{not json");
  EXPECT_FALSE(Model::load(dir).ok());
  fs::remove(dir + "/config.json");
  EXPECT_FALSE(Model::load(dir).ok());
}

// Rewrites a GGUF with one metadata key changed (or dropped) and one tensor optionally dropped.
std::string rewrite_gguf(const std::string& src, const std::string& dst, const std::string& key,
                         const GgufValue* value, const std::string& drop_tensor) {
  auto g = GgufFile::open(src);
  EXPECT_TRUE(g.ok());
  GgufWriter w;
  if (value && !g->has(key)) w.set_value(key, *value);
  for (const auto& [k, v] : g->metadata()) {
    if (k == key) {
      if (value) w.set_value(k, *value);
    } else {
      w.set_value(k, v);
    }
  }
  for (const auto& t : g->tensors()) {
    if (t.name == drop_tensor) continue;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    EXPECT_TRUE(
        w.add_tensor(t.name, t.dtype, ne, std::string(static_cast<const char*>(t.data), t.nbytes))
            .ok());
  }
  EXPECT_TRUE(w.write(dst).ok());
  return dst;
}

TEST(ModelLoad, BrokenGgufsAreErrors) {
  test::TempDir tmp;
  std::string g = tmp.file("m.gguf");
  ASSERT_TRUE(write_fixture_gguf(small(), g).ok());
  ASSERT_TRUE(Model::load(rewrite_gguf(g, tmp.file("same.gguf"), "", nullptr, "")).ok());
  GgufValue arch;
  arch.type = GgufType::STRING;
  arch.s = "mamba";
  GgufValue str;
  str.type = GgufType::STRING;
  str.s = "12";
  GgufValue big;
  big.type = GgufType::UINT32;
  big.i = 33;
  big.u = 33;
  GgufValue yarn;
  yarn.type = GgufType::STRING;
  yarn.s = "yarn";
  struct Case {
    const char* key;
    const GgufValue* value;
    const char* drop;
    const char* expect;
  } cases[] = {
      {"general.architecture", &arch, "", "mamba"},
      {"general.architecture", nullptr, "", "general.architecture"},
      {"llama.block_count", nullptr, "", "block_count"},
      {"llama.embedding_length", &str, "", "embedding_length"},
      {"llama.embedding_length", &big, "", "token_embd"},
      {"llama.rope.dimension_count", &big, "", "dimension_count"},
      {"llama.rope.scaling.type", &yarn, "", "yarn"},
      {"", nullptr, "blk.1.ffn_down.weight", "blk.1.ffn_down.weight"},
      {"", nullptr, "output_norm.weight", "output_norm.weight"},
  };
  int i = 0;
  for (const auto& c : cases) {
    auto m = Model::load(
        rewrite_gguf(g, tmp.file("bad" + std::to_string(i++) + ".gguf"), c.key, c.value, c.drop));
    EXPECT_FALSE(m.ok()) << c.key << c.drop;
    EXPECT_NE(m.message().find(c.expect), std::string::npos) << m.message();
  }
}

TEST(ModelLoad, NotAModel) {
  test::TempDir tmp;
  EXPECT_FALSE(Model::load(tmp.file("missing.bin")).ok());
  test::write_text(tmp.file("junk.bin"), "this is not a model at all");
  EXPECT_FALSE(Model::load(tmp.file("junk.bin")).ok());
  test::write_text(tmp.file("trunc.gguf"), "GGUF\3\0\0\0");
  EXPECT_FALSE(Model::load(tmp.file("trunc.gguf")).ok());
  EXPECT_FALSE(Model::load(tmp.path()).ok());  // a directory without config.json
}

}  // namespace
}  // namespace slm
