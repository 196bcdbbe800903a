// stories260K (a real llama2.c checkpoint) against the independent PyTorch reference
// tests/ref/torch_model.py: greedy continuation token for token and logits at every step.
// Metric: rel = max_i |slm_i - ref_i| / max_i |ref_i| over one logits row, required <= 1e-4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "torch_ref.h"

namespace slm {
namespace {

constexpr int k_new_tokens = 160;

struct Reference {
  std::vector<int32_t> prompt, generated;
  std::vector<float> logits;  // (prompt + generated - 1) x vocab
};

const Reference& reference() {
  static Reference ref = [] {
    Reference r;
    test::TempDir tmp;
    std::string cmd = test::python_exe() + " " +
                      test::sh_quote(test::source_dir() + "/tests/ref/torch_model.py") +
                      " --llama2c " +
                      test::sh_quote(test::shared_dir() + "/models/stories260K.bin") +
                      " --tokenizer " + test::sh_quote(test::shared_dir() + "/models/tok512.bin") +
                      " --prompt 'Once upon a time' --generate " + std::to_string(k_new_tokens) +
                      " --logits-out " + test::sh_quote(tmp.file("logits.bin"));
    test::RunResult res = test::run(cmd);
    if (res.exit_code != 0) {
      ADD_FAILURE() << "reference failed (" << res.exit_code << "): " << res.err;
      return r;
    }
    auto j = nlohmann::json::parse(res.out);
    r.prompt = j["prompt"].get<std::vector<int32_t>>();
    r.generated = j["generated"].get<std::vector<int32_t>>();
    std::string bytes = test::read_text(tmp.file("logits.bin"));
    r.logits.resize(bytes.size() / 4);
    std::memcpy(r.logits.data(), bytes.data(), r.logits.size() * 4);
    return r;
  }();
  return ref;
}

std::unique_ptr<Model> load_stories() {
  LoadOptions opts;
  opts.tokenizer_path = test::shared_dir() + "/models/tok512.bin";
  auto m = Model::load(test::shared_dir() + "/models/stories260K.bin", opts);
  if (!m.ok()) {
    ADD_FAILURE() << m.message();
    return nullptr;
  }
  return std::move(m).value();
}

TEST(Stories260K, ConfigFromHeader) {
  auto m = load_stories();
  ASSERT_TRUE(m);
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.source_format, "llama2c");
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_ff, 172);
  EXPECT_EQ(c.n_layer, 5);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_TRUE(c.rope_interleaved);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_TRUE(m->has_tokenizer());
}

TEST(Stories260K, PromptTokensMatchReferenceEncoder) {
  const Reference& ref = reference();
  ASSERT_FALSE(ref.prompt.empty());
  auto m = load_stories();
  ASSERT_TRUE(m && m->has_tokenizer());
  EXPECT_EQ(m->tokenizer().encode("Once upon a time", true, false), ref.prompt);
}

TEST(Stories260K, GreedyContinuationMatchesPyTorch) {
  const Reference& ref = reference();
  ASSERT_EQ(ref.generated.size(), static_cast<size_t>(k_new_tokens));
  auto m = load_stories();
  ASSERT_TRUE(m);
  const int64_t V = m->config().n_vocab;
  const int64_t P = static_cast<int64_t>(ref.prompt.size());
  ASSERT_EQ(ref.logits.size(), static_cast<size_t>((P + k_new_tokens - 1) * V));
  Session s(*m, 512, 2, DType::F32);
  auto out = s.forward(ref.prompt);
  double worst = 0;
  std::vector<int32_t> got;
  for (int step = 0; step < k_new_tokens; ++step) {
    ASSERT_TRUE(out.ok()) << out.message();
    const float* l = out->data();
    double rel = test::logits_rel_err(l, ref.logits.data() + (P - 1 + step) * V, V);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-4) << "step " << step;
    int32_t next = static_cast<int32_t>(std::max_element(l, l + V) - l);
    got.push_back(next);
    if (next != ref.generated[static_cast<size_t>(step)]) break;
    if (step + 1 < k_new_tokens) out = s.forward(std::vector<int32_t>{next});
  }
  EXPECT_EQ(got, ref.generated);
  std::printf("stories260K: %d greedy tokens equal, worst per-step logits rel err %.3g\n",
              k_new_tokens, worst);
}

TEST(Stories260K, BatchedAllLogitsMatchPyTorch) {
  const Reference& ref = reference();
  auto m = load_stories();
  ASSERT_TRUE(m);
  const int64_t V = m->config().n_vocab;
  std::vector<int32_t> seq = ref.prompt;
  seq.insert(seq.end(), ref.generated.begin(), ref.generated.end() - 1);
  Session s(*m, 512, 2, DType::F32);
  auto out = s.forward(seq, /*all_logits=*/true);
  ASSERT_TRUE(out.ok()) << out.message();
  ASSERT_EQ(out->size(), seq.size() * static_cast<size_t>(V));
  double worst = 0;
  for (size_t t = 0; t < seq.size(); ++t) {
    worst =
        std::max(worst, test::logits_rel_err(out->data() + t * V, ref.logits.data() + t * V, V));
  }
  EXPECT_LE(worst, 1e-4);
  std::printf("stories260K: batched %zu positions, worst rel err %.3g\n", seq.size(), worst);
}

TEST(Stories260K, ContextFullAndBadTokenAreErrors) {
  auto m = load_stories();
  ASSERT_TRUE(m);
  Session s(*m, 4, 1, DType::F32);
  EXPECT_FALSE(s.forward(std::vector<int32_t>{1, 2, 3, 4, 5}).ok());
  EXPECT_FALSE(s.forward(std::vector<int32_t>{512}).ok());
  EXPECT_FALSE(s.forward(std::vector<int32_t>{-1}).ok());
  EXPECT_EQ(s.n_past(), 0);
  EXPECT_TRUE(s.forward(std::vector<int32_t>{1, 2, 3, 4}).ok());
  EXPECT_FALSE(s.forward(std::vector<int32_t>{1}).ok());
  s.truncate(2);
  EXPECT_EQ(s.n_past(), 2);
  EXPECT_TRUE(s.forward(std::vector<int32_t>{5}).ok());
}

}  // namespace
}  // namespace slm
