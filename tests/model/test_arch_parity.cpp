// Every supported architecture as a random-weight fixture, written by slm's writers as a
// Hugging Face dir and as GGUF, against the PyTorch reference (tests/ref/torch_model.py) run
// on the HF dir. Metric per logits row: max|slm - ref| / max|ref|; F32 must be <= 1e-4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "model/fixture.h"
#include "model/model.h"
#include "test_util.h"
#include "torch_ref.h"

namespace slm {
namespace {

struct Case {
  const char* name;
  FixtureSpec spec;
};

FixtureSpec base() {
  FixtureSpec s;
  s.n_vocab = 200;
  s.n_embd = 64;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 4;
  s.n_ff = 96;
  return s;
}

std::vector<Case> cases() {
  std::vector<Case> v;
  {
    FixtureSpec s = base();
    v.push_back({"llama", s});
  }
  {
    FixtureSpec s = base();
    s.rope_theta = 500000.0f;
    s.rope_scaling = RopeScalingType::llama3;
    s.rope_factor = 8.0f;
    s.rope_low_freq_factor = 1.0f;
    s.rope_high_freq_factor = 4.0f;
    s.rope_orig_ctx = 64;  // small, so low, high and interpolated bands all occur at D=16
    s.n_head_kv = 2;
    v.push_back({"llama3_scaled", s});
  }
  {
    FixtureSpec s = base();
    s.hf_model_type = "mistral";  // also TinyLlama's shape: GQA 8 heads on 2 KV heads
    s.n_head = 8;
    s.n_head_kv = 2;
    v.push_back({"mistral_gqa", s});
  }
  {
    FixtureSpec s = base();
    s.tied = true;  // SmolLM / SmolLM2
    s.n_head_kv = 2;
    s.n_layer = 3;
    v.push_back({"smollm_tied", s});
  }
  {
    FixtureSpec s = base();
    s.arch = "qwen2";
    s.qkv_bias = true;
    s.n_head_kv = 2;
    s.rope_theta = 1000000.0f;
    s.norm_eps = 1e-6f;
    v.push_back({"qwen2_bias", s});
  }
  {
    FixtureSpec s = base();
    s.arch = "qwen2";
    s.qkv_bias = true;
    s.tied = true;
    v.push_back({"qwen25_bias_tied", s});
  }
  {
    FixtureSpec s = base();
    s.arch = "qwen3";
    s.qk_norm = true;
    s.head_dim = 32;  // != n_embd / n_head = 16
    s.n_head_kv = 2;
    s.tied = true;
    s.rope_theta = 1000000.0f;
    v.push_back({"qwen3_qknorm", s});
  }
  {
    FixtureSpec s = base();
    s.arch = "phi3";
    s.n_head_kv = 4;
    v.push_back({"phi3_fused", s});
  }
  {
    FixtureSpec s = base();
    s.n_head_kv = 1;  // multi-query attention
    v.push_back({"mqa", s});
  }
  return v;
}

// Worst row error of slm on `path` against ref, over: one batch of all tokens (all logits),
// token-by-token decoding, a 13-token prompt followed by single-token steps, and a rewind.
double worst_error(const std::string& path, const std::vector<int32_t>& toks,
                   const std::vector<float>& ref, const ModelConfig* expect) {
  auto loaded = Model::load(path);
  if (!loaded.ok()) {
    ADD_FAILURE() << path << ": " << loaded.message();
    return 1e9;
  }
  const Model& m = **loaded;
  if (expect) {
    EXPECT_EQ(m.config().n_head_kv, expect->n_head_kv);
    EXPECT_EQ(m.config().head_dim, expect->head_dim);
    EXPECT_EQ(m.config().tied_embeddings, expect->tied_embeddings);
    EXPECT_EQ(m.config().qkv_bias, expect->qkv_bias);
    EXPECT_EQ(m.config().qk_norm, expect->qk_norm);
  }
  EXPECT_FALSE(m.has_tokenizer());
  const int64_t V = m.config().n_vocab, T = static_cast<int64_t>(toks.size());
  double worst = 0;
  {
    Session s(m, SessionOptions{64, 2, DType::F32, true});
    auto out = s.forward(toks, true);
    if (!out.ok()) {
      ADD_FAILURE() << out.message();
      return 1e9;
    }
    for (int64_t t = 0; t < T; ++t)
      worst = std::max(worst, test::logits_rel_err(out->data() + t * V, ref.data() + t * V, V));
  }
  {
    Session s(m, SessionOptions{64, 1, DType::F32, true});
    for (int64_t t = 0; t < T; ++t) {
      auto out = s.forward(std::span<const int32_t>(toks.data() + t, 1));
      if (!out.ok()) {
        ADD_FAILURE() << out.message();
        return 1e9;
      }
      worst = std::max(worst, test::logits_rel_err(out->data(), ref.data() + t * V, V));
    }
  }
  {
    Session s(m, SessionOptions{64, 2, DType::F32, true});
    const int64_t P = 13;
    auto out = s.forward(std::span<const int32_t>(toks.data(), P));
    if (!out.ok()) {
      ADD_FAILURE() << out.message();
      return 1e9;
    }
    worst = std::max(worst, test::logits_rel_err(out->data(), ref.data() + (P - 1) * V, V));
    for (int64_t t = P; t < T; ++t) {
      out = s.forward(std::span<const int32_t>(toks.data() + t, 1));
      if (!out.ok()) {
        ADD_FAILURE() << out.message();
        return 1e9;
      }
      worst = std::max(worst, test::logits_rel_err(out->data(), ref.data() + t * V, V));
    }
  }
  {
    // Rewind: after a full pass, truncate to 10 and replay the rest; stale cache rows past the
    // cut must not leak into the new logits.
    Session s(m, SessionOptions{64, 2, DType::F32, true});
    auto out = s.forward(toks);
    if (!out.ok()) {
      ADD_FAILURE() << out.message();
      return 1e9;
    }
    s.truncate(10);
    out = s.forward(std::span<const int32_t>(toks.data() + 10, 5), true);
    if (!out.ok()) {
      ADD_FAILURE() << out.message();
      return 1e9;
    }
    for (int64_t t = 0; t < 5; ++t)
      worst =
          std::max(worst, test::logits_rel_err(out->data() + t * V, ref.data() + (10 + t) * V, V));
  }
  return worst;
}

class ArchParity : public ::testing::TestWithParam<Case> {};

TEST_P(ArchParity, HfAndGgufMatchPyTorch) {
  const Case& c = GetParam();
  test::TempDir tmp;
  const std::string hf = tmp.file("hf"), gguf = tmp.file("model.gguf");
  ASSERT_EQ(0, system(("mkdir -p " + test::sh_quote(hf)).c_str()));
  ASSERT_TRUE(write_fixture_hf(c.spec, hf).ok());
  ASSERT_TRUE(write_fixture_gguf(c.spec, gguf).ok());
  auto toks = test::lcg_tokens(c.spec.n_vocab, 12345);
  auto ref = test::torch_logits_hf(hf, toks, tmp.file("ref.bin"));
  ASSERT_EQ(ref.size(), toks.size() * static_cast<size_t>(c.spec.n_vocab));

  ModelConfig expect;
  expect.n_head_kv = c.spec.n_head_kv;
  expect.head_dim = c.spec.head_dim ? c.spec.head_dim : c.spec.n_embd / c.spec.n_head;
  expect.tied_embeddings = c.spec.tied;
  expect.qkv_bias = c.spec.qkv_bias;
  expect.qk_norm = c.spec.qk_norm;
  double e_hf = worst_error(hf, toks, ref, &expect);
  double e_gguf = worst_error(gguf, toks, ref, &expect);
  EXPECT_LE(e_hf, 1e-4) << "HF dir";
  EXPECT_LE(e_gguf, 1e-4) << "GGUF F32";
  std::printf("%s: worst rel err HF %.3g, GGUF F32 %.3g\n", c.name, e_hf, e_gguf);
}

INSTANTIATE_TEST_SUITE_P(All, ArchParity, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// Half-precision weights: GGUF F16 and HF BF16 against the reference run on an HF dir holding
// the same rounded values (tight), and against the F32 reference (loose, rounding error only).
TEST(ArchParityHalf, F16GgufAndBf16Hf) {
  for (const char* arch : {"llama", "qwen2"}) {
    FixtureSpec s = base();
    s.arch = arch;
    s.n_head_kv = 2;
    s.qkv_bias = s.arch == "qwen2";
    test::TempDir tmp;
    const std::string hf32 = tmp.file("hf32"), hf16 = tmp.file("hf16"), hfbf = tmp.file("hfbf");
    const std::string g16 = tmp.file("f16.gguf");
    ASSERT_EQ(0, system(("mkdir -p " + test::sh_quote(hf32) + " " + test::sh_quote(hf16) + " " +
                         test::sh_quote(hfbf))
                            .c_str()));
    ASSERT_TRUE(write_fixture_hf(s, hf32).ok());
    ASSERT_TRUE(write_fixture_hf(s, hf16, DType::F16).ok());
    ASSERT_TRUE(write_fixture_hf(s, hfbf, DType::BF16).ok());
    ASSERT_TRUE(write_fixture_gguf(s, g16, DType::F16).ok());
    auto toks = test::lcg_tokens(s.n_vocab, 12345);
    auto ref32 = test::torch_logits_hf(hf32, toks, tmp.file("r32.bin"));
    auto ref16 = test::torch_logits_hf(hf16, toks, tmp.file("r16.bin"));
    auto refbf = test::torch_logits_hf(hfbf, toks, tmp.file("rbf.bin"));
    ASSERT_FALSE(ref32.empty());
    ASSERT_FALSE(ref16.empty());
    ASSERT_FALSE(refbf.empty());
    double e16 = worst_error(g16, toks, ref16, nullptr);
    double e16_vs32 = worst_error(g16, toks, ref32, nullptr);
    double ebf = worst_error(hfbf, toks, refbf, nullptr);
    EXPECT_LE(e16, 1e-4);
    EXPECT_LE(e16_vs32, 2e-2);
    EXPECT_LE(ebf, 1e-4);
    std::printf("%s: GGUF F16 vs F16 ref %.3g, vs F32 ref %.3g; HF BF16 vs BF16 ref %.3g\n", arch,
                e16, e16_vs32, ebf);
  }
}

// Quantized GGUF weights: the reference runs on an F32 HF dir holding the same rounded values
// (quantize then dequantize), so only the arithmetic differs.
TEST(ArchParityQuant, QuantizedGgufMatchesRoundedReference) {
  for (DType dt : {DType::Q8_0, DType::Q4_0, DType::Q5_1}) {
    FixtureSpec s = base();
    s.arch = dt == DType::Q4_0 ? "qwen2" : "llama";
    s.qkv_bias = s.arch == "qwen2";
    s.n_head_kv = 2;
    s.round_matrices = dt;
    test::TempDir tmp;
    const std::string hf = tmp.file("hf"), g = tmp.file("q.gguf");
    ASSERT_EQ(0, system(("mkdir -p " + test::sh_quote(hf)).c_str()));
    ASSERT_TRUE(write_fixture_hf(s, hf).ok());
    Status st = write_fixture_gguf(s, g, dt);
    ASSERT_TRUE(st.ok()) << st.message();
    auto toks = test::lcg_tokens(s.n_vocab, 12345);
    auto ref = test::torch_logits_hf(hf, toks, tmp.file("ref.bin"));
    ASSERT_FALSE(ref.empty());
    double e = worst_error(g, toks, ref, nullptr);
    EXPECT_LE(e, 1e-4) << dtype_name(dt);
    std::printf("%s %s GGUF vs rounded F32 reference: worst rel err %.3g\n", s.arch.c_str(),
                dtype_name(dt), e);
  }
}

}  // namespace
}  // namespace slm
