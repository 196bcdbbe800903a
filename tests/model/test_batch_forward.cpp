// BatchSession (many sequences in one forward pass) against Session, one per sequence: the
// logits must be bit-identical, whatever the batch's composition, size and thread count.
// Session itself is checked against PyTorch in test_arch_parity.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "model/fixture.h"
#include "model/model.h"
#include "test_util.h"

namespace slm {
namespace {

struct Case {
  const char* name;
  FixtureSpec spec;
  bool gguf;           // false: HF dir (F32)
  DType wtype;         // GGUF matrix type
  DType kv = DType::F16;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

FixtureSpec base() {
  FixtureSpec s;
  s.n_vocab = 200;
  s.n_embd = 64;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_ff = 96;
  return s;
}

std::vector<Case> cases() {
  std::vector<Case> v;
  v.push_back({"llama_gqa_hf", base(), false, DType::F32});
  {
    FixtureSpec s = base();
    s.arch = "qwen2";
    s.qkv_bias = true;
    s.tied = true;
    v.push_back({"qwen2_bias_q8_0", s, true, DType::Q8_0});
  }
  {
    FixtureSpec s = base();
    s.arch = "qwen3";
    s.qk_norm = true;
    s.head_dim = 32;
    v.push_back({"qwen3_qknorm_f16_kvq8", s, true, DType::F16, DType::Q8_0});
  }
  {
    FixtureSpec s = base();
    s.arch = "phi3";
    s.n_head_kv = 4;
    v.push_back({"phi3_q4_0_kvf32", s, true, DType::Q4_0, DType::F32});
  }
  return v;
}

std::unique_ptr<Model> load_case(const Case& c, const test::TempDir& tmp) {
  std::string path;
  Status st;
  if (c.gguf) {
    path = tmp.file("model.gguf");
    st = write_fixture_gguf(c.spec, path, c.wtype);
  } else {
    path = tmp.file("hf");
    if (system(("mkdir -p " + test::sh_quote(path)).c_str()) != 0) return nullptr;
    st = write_fixture_hf(c.spec, path);
  }
  if (!st.ok()) {
    ADD_FAILURE() << st.message();
    return nullptr;
  }
  auto m = Model::load(path);
  if (!m.ok()) {
    ADD_FAILURE() << m.message();
    return nullptr;
  }
  return std::move(*m);
}

std::vector<int32_t> tokens(int64_t n, int64_t vocab, uint32_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<int32_t>((seed >> 8) % static_cast<uint32_t>(vocab));
  }
  return t;
}

bool same_bits(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, static_cast<size_t>(n) * sizeof(float)) == 0;
}

class BatchForward : public ::testing::TestWithParam<Case> {};

// Three sequences with prompts of 5, 40 (GEMM-sized) and 150 (two chunks) tokens, each fed
// alone through the BatchSession, then decode steps over changing subsets of the sequences
// (including a step that gives one sequence three tokens), compared with one Session each.
TEST_P(BatchForward, MatchesOneSessionPerSequence) {
  const Case& c = GetParam();
  test::TempDir tmp;
  auto model = load_case(c, tmp);
  ASSERT_TRUE(model);
  const int64_t V = c.spec.n_vocab, n_ctx = 200;
  const std::vector<int64_t> prompt_len = {5, 40, 150};
  const int64_t S = static_cast<int64_t>(prompt_len.size());

  BatchSession batch(*model, BatchSessionOptions{S, n_ctx, 2, c.kv, false});
  std::vector<std::unique_ptr<Session>> alone;
  for (int64_t s = 0; s < S; ++s) {
    // One thread here, two in the batch: the thread count must not matter either.
    alone.push_back(std::make_unique<Session>(*model, SessionOptions{n_ctx, 1, c.kv, false}));
  }
  EXPECT_EQ(batch.kv_bytes(), static_cast<uint64_t>(S) * alone[0]->kv_bytes());

  for (int64_t s = 0; s < S; ++s) {
    auto p = tokens(prompt_len[s], V, 100 + static_cast<uint32_t>(s));
    std::vector<BatchEntry> entries;
    for (size_t i = 0; i < p.size(); ++i)
      entries.push_back({static_cast<int32_t>(s), p[i], i + 1 == p.size()});
    auto got = batch.forward(entries);
    ASSERT_TRUE(got.ok()) << got.message();
    ASSERT_EQ(got->size(), static_cast<size_t>(V));
    std::vector<float> b(got->begin(), got->end());
    auto want = alone[static_cast<size_t>(s)]->forward(p);
    ASSERT_TRUE(want.ok()) << want.message();
    EXPECT_TRUE(same_bits(b.data(), want->data(), V)) << c.name << " prompt of seq " << s;
    EXPECT_EQ(batch.n_past(s), prompt_len[s]);
  }

  // Steps: which sequences take part, and how many tokens each.
  const std::vector<std::vector<int>> steps = {
      {1, 1, 1}, {1, 0, 1}, {0, 1, 0}, {3, 1, 2}, {1, 1, 1}, {0, 0, 1}, {1, 1, 1}};
  uint32_t seed = 7;
  for (size_t st = 0; st < steps.size(); ++st) {
    std::vector<BatchEntry> entries;
    std::vector<std::vector<int32_t>> per_seq(static_cast<size_t>(S));
    // Interleave the sequences' tokens: round r takes the r-th token of each sequence.
    for (int r = 0; r < 3; ++r) {
      for (int64_t s = 0; s < S; ++s) {
        if (r >= steps[st][static_cast<size_t>(s)]) continue;
        const int32_t tok = tokens(1, V, seed++)[0];
        per_seq[static_cast<size_t>(s)].push_back(tok);
        entries.push_back({static_cast<int32_t>(s), tok, true});
      }
    }
    auto got = batch.forward(entries);
    ASSERT_TRUE(got.ok()) << got.message();
    ASSERT_EQ(got->size(), entries.size() * static_cast<size_t>(V));
    std::vector<float> b(got->begin(), got->end());
    std::vector<int64_t> used(static_cast<size_t>(S), 0);
    for (int64_t s = 0; s < S; ++s) {
      const auto& toks = per_seq[static_cast<size_t>(s)];
      if (toks.empty()) continue;
      auto want = alone[static_cast<size_t>(s)]->forward(toks, true);
      ASSERT_TRUE(want.ok()) << want.message();
      // Find this sequence's rows among the entries, in order.
      int64_t k = 0;
      for (size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].seq != s) continue;
        EXPECT_TRUE(same_bits(b.data() + i * V, want->data() + k * V, V))
            << c.name << " step " << st << " seq " << s << " token " << k;
        ++k;
      }
    }
    for (int64_t s = 0; s < S; ++s)
      EXPECT_EQ(batch.n_past(s), alone[static_cast<size_t>(s)]->n_past());
  }

  // A sequence reused for a new stream: truncate to 0, then a fresh prompt matches a fresh
  // Session although the region still holds the old rows.
  batch.truncate(2, 0);
  EXPECT_EQ(batch.n_past(2), 0);
  auto p = tokens(9, V, 999);
  std::vector<BatchEntry> entries;
  for (size_t i = 0; i < p.size(); ++i) entries.push_back({2, p[i], i + 1 == p.size()});
  entries.push_back({0, 3, true});  // with a decode step of another sequence in the same call
  auto got = batch.forward(entries);
  ASSERT_TRUE(got.ok()) << got.message();
  std::vector<float> b(got->begin(), got->end());
  Session fresh(*model, SessionOptions{n_ctx, 1, c.kv, false});
  std::vector<float> want;
  for (int32_t t : p) {  // token by token: the dot kernels, as in a multi-sequence call
    auto r = fresh.forward(std::span<const int32_t>(&t, 1));
    ASSERT_TRUE(r.ok());
    want.assign(r->begin(), r->end());
  }
  EXPECT_TRUE(same_bits(b.data(), want.data(), V)) << c.name << " reused sequence";
  const int32_t three = 3;
  auto w0 = alone[0]->forward(std::span<const int32_t>(&three, 1));
  ASSERT_TRUE(w0.ok());
  EXPECT_TRUE(same_bits(b.data() + V, w0->data(), V)) << c.name << " neighbour of reused";
}

INSTANTIATE_TEST_SUITE_P(Models, BatchForward, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// 40 sequences decoding together: past the GEMM threshold of 32 tokens, the batch must still
// use the batch-invariant kernels.
TEST(BatchForwardLarge, FortySequencesMatchAlone) {
  test::TempDir tmp;
  Case c{"llama_q8", base(), true, DType::Q8_0};
  auto model = load_case(c, tmp);
  ASSERT_TRUE(model);
  const int64_t V = c.spec.n_vocab, S = 40, n_ctx = 16;
  BatchSession batch(*model, BatchSessionOptions{S, n_ctx, 2, DType::F16, false});
  std::vector<std::unique_ptr<Session>> alone;
  for (int64_t s = 0; s < S; ++s) {
    alone.push_back(std::make_unique<Session>(*model, SessionOptions{n_ctx, 1, DType::F16, false}));
    auto p = tokens(1 + s % 4, V, 500 + static_cast<uint32_t>(s));
    std::vector<BatchEntry> e;
    for (int32_t t : p) e.push_back({static_cast<int32_t>(s), t, false});
    ASSERT_TRUE(batch.forward(e).ok());
    ASSERT_TRUE(alone.back()->forward(p).ok());
  }
  for (int step = 0; step < 3; ++step) {
    std::vector<BatchEntry> e;
    for (int64_t s = 0; s < S; ++s)
      e.push_back({static_cast<int32_t>(s), static_cast<int32_t>((s * 7 + step) % V), true});
    auto got = batch.forward(e);
    ASSERT_TRUE(got.ok()) << got.message();
    std::vector<float> b(got->begin(), got->end());
    for (int64_t s = 0; s < S; ++s) {
      auto want = alone[static_cast<size_t>(s)]->forward(
          std::span<const int32_t>(&e[static_cast<size_t>(s)].token, 1));
      ASSERT_TRUE(want.ok());
      EXPECT_TRUE(same_bits(b.data() + s * V, want->data(), V)) << "step " << step << " seq " << s;
    }
  }
}

// invariant = true on a one-sequence call of 40 tokens: the dot kernels, as token by token.
TEST(BatchForwardLarge, InvariantFlagOnOneSequence) {
  test::TempDir tmp;
  Case c{"llama_q4_0", base(), true, DType::Q4_0};
  auto model = load_case(c, tmp);
  ASSERT_TRUE(model);
  const int64_t V = c.spec.n_vocab;
  auto p = tokens(40, V, 4242);
  BatchSession batch(*model, BatchSessionOptions{2, 64, 2, DType::F16, false});
  std::vector<BatchEntry> e;
  for (int32_t t : p) e.push_back({1, t, true});
  auto got = batch.forward(e, /*invariant=*/true);
  ASSERT_TRUE(got.ok()) << got.message();
  std::vector<float> b(got->begin(), got->end());
  Session alone(*model, SessionOptions{64, 1, DType::F16, false});
  for (int64_t t = 0; t < 40; ++t) {
    auto want = alone.forward(std::span<const int32_t>(&p[static_cast<size_t>(t)], 1));
    ASSERT_TRUE(want.ok());
    EXPECT_TRUE(same_bits(b.data() + t * V, want->data(), V)) << "token " << t;
  }
}

TEST(BatchForwardErrors, RejectsBadEntriesWithoutAppending) {
  test::TempDir tmp;
  Case c{"llama", base(), false, DType::F32};
  auto model = load_case(c, tmp);
  ASSERT_TRUE(model);
  BatchSession batch(*model, BatchSessionOptions{2, 4, 1, DType::F16, false});
  EXPECT_FALSE(batch.forward({}).ok());

  std::vector<BatchEntry> bad_seq = {{0, 1, true}, {2, 1, true}};
  auto r = batch.forward(bad_seq);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("sequence 2"), std::string::npos) << r.message();

  std::vector<BatchEntry> bad_tok = {{1, 200, true}};
  r = batch.forward(bad_tok);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("200"), std::string::npos) << r.message();

  std::vector<BatchEntry> full = {{0, 1, false}, {1, 1, false}, {0, 2, false},
                                  {0, 3, false}, {0, 4, false}, {0, 5, true}};
  r = batch.forward(full);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("context full"), std::string::npos) << r.message();
  EXPECT_EQ(batch.n_past(0), 0);
  EXPECT_EQ(batch.n_past(1), 0);

  std::vector<BatchEntry> fits = {{0, 1, false}, {1, 1, true}, {0, 2, true}};
  r = batch.forward(fits);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->size(), 2u * 200u);
  EXPECT_EQ(batch.n_past(0), 2);
  EXPECT_EQ(batch.n_past(1), 1);
  batch.truncate(0, 1);
  EXPECT_EQ(batch.n_past(0), 1);
  batch.truncate(0, 5);  // never grows
  EXPECT_EQ(batch.n_past(0), 1);
  batch.truncate(7, 0);  // out of range: no-op
}

}  // namespace
}  // namespace slm
