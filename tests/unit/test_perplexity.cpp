// Perplexity tests: a uniform fake model must give PPL == V exactly; a fake model whose logits
// depend on the whole window prefix is scored here independently, straight from the llama.cpp
// protocol (windows, BOS replacement, second-half scoring, running values, the +/- formula).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "generate/perplexity.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

// Uniform logits (all zero) over n_vocab tokens.
class UniformModel final : public LogitsSource {
 public:
  UniformModel(int64_t n_vocab, int64_t n_ctx) : n_vocab_(n_vocab), n_ctx_(n_ctx) {}
  Expected<std::span<const float>> forward(std::span<const int32_t> t, bool all) override {
    n_past_ += static_cast<int64_t>(t.size());
    buf_.assign(static_cast<size_t>(n_vocab_) * (all ? t.size() : 1), 0.0f);
    return std::span<const float>(buf_);
  }
  void truncate(int64_t n) override { n_past_ = std::min(n_past_, n); }
  int64_t n_ctx() const override { return n_ctx_; }
  int64_t n_past() const override { return n_past_; }

 private:
  int64_t n_vocab_, n_ctx_, n_past_ = 0;
  std::vector<float> buf_;
};

// The logits at a position are a deterministic function of every token in the cache up to and
// including it, and of the position: a toy causal "model".
std::vector<float> toy_logits(const std::vector<int32_t>& prefix, int64_t n_vocab) {
  uint64_t h = 1469598103934665603ULL;
  for (int32_t t : prefix) h = (h ^ static_cast<uint64_t>(t + 1)) * 1099511628211ULL;
  h ^= static_cast<uint64_t>(prefix.size()) * 0x9E3779B97F4A7C15ULL;
  std::vector<float> l(static_cast<size_t>(n_vocab));
  for (auto& v : l) {
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
    v = static_cast<float>((h >> 40) % 10000) / 1000.0f - 5.0f;  // [-5, 5)
  }
  return l;
}

class ToyModel final : public LogitsSource {
 public:
  ToyModel(int64_t n_vocab, int64_t n_ctx) : n_vocab_(n_vocab), n_ctx_(n_ctx) {}
  Expected<std::span<const float>> forward(std::span<const int32_t> t, bool all) override {
    if (static_cast<int64_t>(cache_.size() + t.size()) > n_ctx_) return error("context full");
    buf_.clear();
    for (size_t i = 0; i < t.size(); ++i) {
      cache_.push_back(t[i]);
      if (all || i + 1 == t.size()) {
        auto l = toy_logits(cache_, n_vocab_);
        buf_.insert(buf_.end(), l.begin(), l.end());
      }
    }
    ++calls;
    return std::span<const float>(buf_);
  }
  void truncate(int64_t n) override {
    cache_.resize(static_cast<size_t>(std::min<int64_t>(n, n_past())));
  }
  int64_t n_ctx() const override { return n_ctx_; }
  int64_t n_past() const override { return static_cast<int64_t>(cache_.size()); }
  int calls = 0;

 private:
  int64_t n_vocab_, n_ctx_;
  std::vector<int32_t> cache_;
  std::vector<float> buf_;
};

std::vector<int32_t> test_tokens(int64_t n, int64_t n_vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  uint32_t x = 12345;
  for (auto& v : t) {
    x = x * 1103515245u + 12345u;
    v = static_cast<int32_t>((x >> 16) % static_cast<uint32_t>(n_vocab));
  }
  return t;
}

TEST(Perplexity, UniformLogitsGiveVocabularySize) {
  const int64_t V = 37, n_ctx = 16;
  UniformModel m(V, 64);
  auto tokens = test_tokens(2 * n_ctx + 5, V);
  PerplexityOptions o;
  o.n_ctx = n_ctx;
  auto r = perplexity(m, tokens, o);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_NEAR(r->ppl, 37.0, 37.0 * 1e-12);
  EXPECT_EQ(r->n_chunks, 2);
  EXPECT_EQ(r->n_scored, 2 * (n_ctx - 1 - n_ctx / 2));
  ASSERT_EQ(r->chunk_ppl.size(), 2u);
  for (double p : r->chunk_ppl) EXPECT_NEAR(p, 37.0, 37.0 * 1e-12);
  EXPECT_LT(r->ppl_error, 1e-6);
}

// The protocol, computed independently: same windows and positions, long double arithmetic.
struct Reference {
  std::vector<double> running;
  double ppl = 0, err = 0;
};
Reference reference(const std::vector<int32_t>& tokens, int64_t n_ctx, int64_t n_vocab,
                    int64_t max_chunks, int32_t bos) {
  Reference ref;
  const int64_t chunks = std::min<int64_t>(static_cast<int64_t>(tokens.size()) / n_ctx, max_chunks);
  long double sum = 0, sum2 = 0;
  int64_t count = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    std::vector<int32_t> win(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    if (bos >= 0) win[0] = bos;
    for (int64_t j = n_ctx / 2; j + 1 < n_ctx; ++j) {
      std::vector<int32_t> prefix(win.begin(), win.begin() + j + 1);
      auto l = toy_logits(prefix, n_vocab);
      long double z = 0;
      for (float v : l) z += std::exp(static_cast<long double>(v));
      const int32_t target = tokens[static_cast<size_t>(c * n_ctx + j + 1)];
      const long double nll =
          -(static_cast<long double>(l[static_cast<size_t>(target)]) - std::log(z));
      sum += nll;
      sum2 += nll * nll;
      ++count;
    }
    ref.running.push_back(static_cast<double>(std::exp(sum / count)));
  }
  const long double mean = sum / count;
  ref.ppl = static_cast<double>(std::exp(mean));
  const long double var = sum2 / count - mean * mean;
  ref.err = static_cast<double>(ref.ppl * std::sqrt(var / (count - 1)));
  return ref;
}

TEST(Perplexity, MatchesIndependentProtocolComputation) {
  const int64_t V = 23;
  for (int64_t n_ctx : {11, 16}) {
    for (int32_t bos : {-1, 1}) {
      for (int64_t n_batch : {4, 512}) {
        auto tokens = test_tokens(3 * n_ctx + 7, V);  // 3 full windows, tail dropped
        ToyModel m(V, 32);
        PerplexityOptions o;
        o.n_ctx = n_ctx;
        o.bos_id = bos;
        o.n_batch = n_batch;
        std::vector<std::pair<int64_t, double>> seen;
        o.on_chunk = [&](int64_t i, double p) { seen.emplace_back(i, p); };
        auto r = perplexity(m, tokens, o);
        ASSERT_TRUE(r.ok()) << r.message();
        Reference ref = reference(tokens, n_ctx, V, 1 << 30, bos);
        SCOPED_TRACE("n_ctx=" + std::to_string(n_ctx) + " bos=" + std::to_string(bos) +
                     " n_batch=" + std::to_string(n_batch));
        EXPECT_EQ(r->n_chunks, 3);
        EXPECT_EQ(r->n_scored, 3 * (n_ctx - 1 - n_ctx / 2));
        EXPECT_NEAR(r->ppl, ref.ppl, ref.ppl * 1e-6);
        EXPECT_NEAR(r->ppl_error, ref.err, ref.err * 1e-4);
        ASSERT_EQ(r->chunk_ppl.size(), 3u);
        ASSERT_EQ(seen.size(), 3u);
        for (size_t i = 0; i < 3; ++i) {
          EXPECT_NEAR(r->chunk_ppl[i], ref.running[i], ref.running[i] * 1e-6);
          EXPECT_EQ(seen[i].first, static_cast<int64_t>(i + 1));
          EXPECT_EQ(seen[i].second, r->chunk_ppl[i]);
        }
        // n_batch 4 splits each window into ceil(n_ctx / 4) calls.
        EXPECT_EQ(m.calls, 3 * ((n_ctx + std::min<int64_t>(n_batch, n_ctx) - 1) /
                                std::min<int64_t>(n_batch, n_ctx)));
      }
    }
  }
  // The BOS replacement changes the answer (so the comparison above really covers it).
  auto tokens = test_tokens(3 * 11 + 7, V);
  EXPECT_NE(reference(tokens, 11, V, 99, -1).ppl, reference(tokens, 11, V, 99, 1).ppl);
}

TEST(Perplexity, ChunkCap) {
  const int64_t V = 23, n_ctx = 12;
  auto tokens = test_tokens(5 * n_ctx, V);
  ToyModel m(V, 32);
  PerplexityOptions o;
  o.n_ctx = n_ctx;
  o.n_chunks = 2;
  auto r = perplexity(m, tokens, o);
  ASSERT_TRUE(r.ok());
  Reference ref = reference(tokens, n_ctx, V, 2, -1);
  EXPECT_EQ(r->n_chunks, 2);
  EXPECT_NEAR(r->ppl, ref.ppl, ref.ppl * 1e-6);
}

TEST(Perplexity, Errors) {
  UniformModel m(10, 64);
  PerplexityOptions o;
  o.n_ctx = 16;
  auto r = perplexity(m, test_tokens(31, 10), o);  // fewer than 2 * n_ctx
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("at least 32 tokens"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("only 31 tokens"), std::string::npos) << r.message();
  o.n_ctx = 128;  // larger than the session context
  EXPECT_FALSE(perplexity(m, test_tokens(512, 10), o).ok());
  o.n_ctx = 2;
  EXPECT_FALSE(perplexity(m, test_tokens(512, 10), o).ok());
  o.n_ctx = 16;
  auto bad = test_tokens(64, 10);
  bad[28] = 10;  // outside the vocabulary, in a scored position (window 2, position 12)
  EXPECT_FALSE(perplexity(m, bad, o).ok());
  std::atomic<bool> cancel{true};
  o.cancel = &cancel;
  EXPECT_FALSE(perplexity(m, test_tokens(64, 10), o).ok());
}

TEST(Perplexity, LlamaCppOutputFormat) {
  EXPECT_EQ(format_chunk_ppl(3, 12.345678), "[3]12.3457,");
  PerplexityResult r;
  r.ppl = 9.87654321;
  r.ppl_error = 0.123456789;
  EXPECT_EQ(format_final_ppl(r), "Final estimate: PPL = 9.8765 +/- 0.12346");
}

// The real stories260K model: slm's perplexity over a Session against the same protocol scored
// here on logits from the independent PyTorch reference (tests/ref/torch_model.py).
TEST(Perplexity, Stories260KMatchesPyTorchReference) {
  const std::string text =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her friends. One day, she saw a big red ball under a tree. She ran to the ball "
      "and picked it up. It was very shiny and round. Lily wanted to show the ball to her mom. "
      "She ran home as fast as she could. Her mom smiled and said, \"What a nice ball! Where "
      "did you find it?\" Lily told her mom about the tree in the park. They went back to the "
      "park together and played with the ball all day. When the sun went down, they were tired "
      "and happy. They went home and had a big dinner. Lily hugged her mom and said thank you.";
  const int64_t n_ctx = 48;
  LoadOptions lo;
  lo.tokenizer_path = test::shared_dir() + "/models/tok512.bin";
  auto model = Model::load(test::shared_dir() + "/models/stories260K.bin", lo);
  ASSERT_TRUE(model.ok()) << model.message();
  const Tokenizer& tok = (*model)->tokenizer();
  const std::vector<int32_t> tokens = tok.encode(text, true, false);
  ASSERT_GE(static_cast<int64_t>(tokens.size()), 2 * n_ctx);
  const int32_t bos = tok.add_bos() ? tok.bos_id() : -1;

  Session session(**model, n_ctx, 1, DType::F32);
  PerplexityOptions o;
  o.n_ctx = n_ctx;
  o.n_batch = 20;  // not a divisor of n_ctx: windows go in three calls
  o.n_chunks = 2;  // each reference window costs a PyTorch start-up
  auto r = perplexity(session, tok, text, o);
  ASSERT_TRUE(r.ok()) << r.message();

  const int64_t V = (*model)->config().n_vocab;
  const int64_t chunks = std::min<int64_t>(static_cast<int64_t>(tokens.size()) / n_ctx, 2);
  ASSERT_EQ(r->n_chunks, chunks);
  long double sum = 0;
  int64_t count = 0;
  test::TempDir tmp;
  for (int64_t c = 0; c < chunks; ++c) {
    std::vector<int32_t> win(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    if (bos >= 0) win[0] = bos;
    std::string list;
    for (int32_t t : win) {
      if (!list.empty()) list += ',';
      list += std::to_string(t);
    }
    const std::string cmd =
        test::python_exe() + " " +
        test::sh_quote(test::source_dir() + "/tests/ref/torch_model.py") + " --llama2c " +
        test::sh_quote(test::shared_dir() + "/models/stories260K.bin") + " --tokens " + list +
        " --logits-out " + test::sh_quote(tmp.file("l.bin"));
    const test::RunResult ref = test::run(cmd);
    ASSERT_EQ(ref.exit_code, 0) << ref.err;
    const std::string bytes = test::read_text(tmp.file("l.bin"));
    ASSERT_EQ(static_cast<int64_t>(bytes.size()), n_ctx * V * 4);
    std::vector<float> logits(static_cast<size_t>(n_ctx * V));
    std::memcpy(logits.data(), bytes.data(), bytes.size());
    for (int64_t j = n_ctx / 2; j + 1 < n_ctx; ++j) {
      const float* l = logits.data() + j * V;
      long double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(static_cast<long double>(l[v]));
      const int32_t target = tokens[static_cast<size_t>(c * n_ctx + j + 1)];
      sum += std::log(z) - l[target];
      ++count;
    }
    const double running = static_cast<double>(std::exp(sum / count));
    EXPECT_NEAR(r->chunk_ppl[static_cast<size_t>(c)], running, running * 1e-3) << "chunk " << c;
  }
  const double ppl = static_cast<double>(std::exp(sum / count));
  EXPECT_NEAR(r->ppl, ppl, ppl * 1e-3);
  EXPECT_GT(r->ppl, 1.5);  // a real model on real text: far from both 1 and V
  EXPECT_LT(r->ppl, 100.0);
  std::printf("stories260K: %lld tokens, %s\n", static_cast<long long>(tokens.size()),
              format_final_ppl(*r).c_str());
}

}  // namespace
}  // namespace slm
