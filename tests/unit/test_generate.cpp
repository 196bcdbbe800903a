// Generation loop tests over a scripted fake model and a table decoder: stop strings across
// token boundaries, hold-back release, EOG, max_tokens, context limits, cancellation, seeding;
// plus UTF-8 streaming through the real llama2.c tokenizer's byte tokens.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "generate/generate.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

// A model that, after the prompt, makes script[i] the clear argmax for the i-th sampled token
// (and repeats the last one when the script runs out). Records every forward call.
class ScriptedModel final : public LogitsSource {
 public:
  ScriptedModel(int64_t n_vocab, int64_t n_ctx, std::vector<int32_t> script)
      : n_ctx_(n_ctx), script_(std::move(script)), logits_(static_cast<size_t>(n_vocab)) {}
  Expected<std::span<const float>> forward(std::span<const int32_t> tokens, bool) override {
    if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx_) return error("context full");
    calls.emplace_back(tokens.begin(), tokens.end());
    if (prompt_len_ < 0) prompt_len_ = static_cast<int64_t>(tokens.size());
    n_past_ += static_cast<int64_t>(tokens.size());
    // Index of the token about to be sampled (0 while the prompt is still going in).
    const int64_t step = std::max<int64_t>(n_past_ - prompt_len_, 0);
    const int32_t next = script_[static_cast<size_t>(
        std::min<int64_t>(step, static_cast<int64_t>(script_.size()) - 1))];
    std::fill(logits_.begin(), logits_.end(), 0.0f);
    logits_[static_cast<size_t>(next)] = 20.0f;
    return std::span<const float>(logits_);
  }
  void truncate(int64_t n) override { n_past_ = std::min(n_past_, n); }
  int64_t n_ctx() const override { return n_ctx_; }
  int64_t n_past() const override { return n_past_; }

  std::vector<std::vector<int32_t>> calls;
  void set_prompt_len(int64_t n) { prompt_len_ = n; }  // when the prompt is fed in batches

 private:
  int64_t n_ctx_;
  std::vector<int32_t> script_;
  std::vector<float> logits_;
  int64_t n_past_ = 0;
  int64_t prompt_len_ = -1;
};

// id -> fixed text; ids in eog are end-of-generation.
class TableDecoder final : public TextDecoder {
 public:
  TableDecoder(std::vector<std::string> pieces, std::vector<int32_t> eog)
      : pieces_(std::move(pieces)), eog_(std::move(eog)) {}
  void push(int32_t id, std::string& out) override {
    out.append(pieces_.at(static_cast<size_t>(id)));
  }
  void flush(std::string&) override {}
  bool is_eog(int32_t id) const override {
    return std::find(eog_.begin(), eog_.end(), id) != eog_.end();
  }

 private:
  std::vector<std::string> pieces_;
  std::vector<int32_t> eog_;
};

// Vocabulary for the scripted tests. Token 0 is EOS.
const std::vector<std::string> k_pieces = {
    "</s>", "Hel", "lo", " wor", "ld", "!", "o wo", "\n", "x", "y", "\xC3\xA9t\xC3\xA9"};
enum : int32_t { EOS = 0, HEL, LO, WOR, LD, BANG, OWO, NL, X, Y, ETE };

GenerateOptions greedy() {
  GenerateOptions o;
  o.sampling.temperature = 0.0f;
  o.max_tokens = 100;
  return o;
}

struct GenRun {
  Expected<GenerateResult> res = error("not run");
  std::vector<std::string> chunks;
  std::string joined() const {
    std::string s;
    for (const auto& c : chunks) s += c;
    return s;
  }
};

GenRun run(ScriptedModel& m, std::vector<int32_t> prompt, const GenerateOptions& o,
           std::vector<int32_t> eog = {EOS}) {
  TableDecoder dec(k_pieces, std::move(eog));
  GenRun r;
  r.res = generate(m, dec, prompt, o, [&](std::string_view s) { r.chunks.emplace_back(s); });
  return r;
}

TEST(Generate, StopStringAcrossTokensIsNotEmitted) {
  ScriptedModel m(11, 64, {HEL, LO, WOR, LD, BANG, EOS});
  GenerateOptions o = greedy();
  o.stop = {"o wo"};
  GenRun r = run(m, {X}, o);
  ASSERT_TRUE(r.res.ok()) << r.res.message();
  EXPECT_EQ(r.res->finish_reason, FinishReason::stop);
  EXPECT_EQ(r.res->stop_matched, "o wo");
  EXPECT_EQ(r.res->text, "Hell");
  EXPECT_EQ(r.joined(), "Hell");
  // "Hel" goes out at once; after "lo" the "o" is held (it could start "o wo").
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[0], "Hel");
  EXPECT_EQ(r.chunks[1], "l");
  EXPECT_EQ(r.res->tokens, (std::vector<int32_t>{HEL, LO, WOR}));
}

TEST(Generate, StopInsideOneTokenAndEarliestOfSeveral) {
  ScriptedModel m(11, 64, {HEL, LO, WOR, LD, BANG, EOS});
  GenerateOptions o = greedy();
  o.stop = {"ld!", "wor", "lo w"};  // "lo w" starts earliest (at "Hel|lo w")
  GenRun r = run(m, {X}, o);
  ASSERT_TRUE(r.res.ok());
  EXPECT_EQ(r.res->text, "Hel");
  EXPECT_EQ(r.res->stop_matched, "lo w");
  // A stop string that is the very first text.
  ScriptedModel m2(11, 64, {NL, X, EOS});
  o.stop = {"\n"};
  r = run(m2, {X}, o);
  EXPECT_EQ(r.res->text, "");
  EXPECT_TRUE(r.chunks.empty());
  EXPECT_EQ(r.res->finish_reason, FinishReason::stop);
}

TEST(Generate, HeldBackTextIsReleasedWhenNotAStop) {
  ScriptedModel m(11, 64, {HEL, LO, WOR, LD});
  GenerateOptions o = greedy();
  o.stop = {"lox"};
  o.max_tokens = 4;
  GenRun r = run(m, {X}, o);
  ASSERT_TRUE(r.res.ok());
  EXPECT_EQ(r.res->finish_reason, FinishReason::length);
  EXPECT_EQ(r.res->text, "Hello world");
  EXPECT_EQ(r.joined(), "Hello world");
  // "l" held after "Hel", "lo" held after "lo", both released by " wor".
  ASSERT_GE(r.chunks.size(), 3u);
  EXPECT_EQ(r.chunks[0], "He");
  EXPECT_EQ(r.chunks[1], "l");
  EXPECT_EQ(r.chunks[2], "lo wor");
  // Held text at the very end (EOS) is released too.
  ScriptedModel m2(11, 64, {HEL, LO, EOS});
  r = run(m2, {X}, o);
  EXPECT_EQ(r.res->finish_reason, FinishReason::eos);
  EXPECT_EQ(r.res->text, "Hello");
  EXPECT_EQ(r.joined(), "Hello");
}

TEST(Generate, MultiByteStopIsCutAtCharacterBoundary) {
  ScriptedModel m(11, 64, {X, ETE, Y});
  GenerateOptions o = greedy();
  o.stop = {"t\xC3\xA9"};
  GenRun r = run(m, {X}, o);
  ASSERT_TRUE(r.res.ok());
  EXPECT_EQ(r.res->text, "x\xC3\xA9");
}

TEST(Generate, EndOfGenerationStopsAndIsNotEmitted) {
  ScriptedModel m(11, 64, {HEL, LO, EOS, WOR});
  GenRun r = run(m, {X, Y}, greedy());
  ASSERT_TRUE(r.res.ok());
  EXPECT_EQ(r.res->finish_reason, FinishReason::eos);
  EXPECT_EQ(r.res->text, "Hello");
  EXPECT_EQ(r.res->tokens, (std::vector<int32_t>{HEL, LO, EOS}));
  EXPECT_EQ(r.res->n_prompt, 2);
  EXPECT_EQ(r.res->n_generated, 3);
  // The prompt went in once, then each sampled token but the last.
  ASSERT_EQ(m.calls.size(), 3u);
  EXPECT_EQ(m.calls[0], (std::vector<int32_t>{X, Y}));
  EXPECT_EQ(m.calls[1], (std::vector<int32_t>{HEL}));
  EXPECT_EQ(m.calls[2], (std::vector<int32_t>{LO}));
  EXPECT_EQ(m.n_past(), 2 + 3 - 1);

  // extra_eos (the model's own EOS ids) also stop; ignore_eos goes through them.
  ScriptedModel m2(11, 64, {HEL, BANG, LO});
  GenerateOptions o = greedy();
  o.extra_eos = {BANG};
  r = run(m2, {X}, o);
  EXPECT_EQ(r.res->finish_reason, FinishReason::eos);
  EXPECT_EQ(r.res->text, "Hel");
  ScriptedModel m3(11, 64, {HEL, EOS, LO});
  o = greedy();
  o.ignore_eos = true;
  o.max_tokens = 3;
  r = run(m3, {X}, o);
  EXPECT_EQ(r.res->finish_reason, FinishReason::length);
  EXPECT_EQ(r.res->text, "Hel</s>lo");
}

TEST(Generate, MaxTokens) {
  ScriptedModel m(11, 64, {X, Y, X, Y, X});
  GenerateOptions o = greedy();
  o.max_tokens = 3;
  GenRun r = run(m, {HEL}, o);
  ASSERT_TRUE(r.res.ok());
  EXPECT_EQ(r.res->finish_reason, FinishReason::length);
  EXPECT_EQ(r.res->tokens.size(), 3u);
  EXPECT_EQ(r.res->text, "xyx");
  EXPECT_EQ(m.calls.size(), 3u);  // prompt + 2: the last token is not evaluated
  EXPECT_TRUE(r.res->note.empty());
  ScriptedModel m0(11, 64, {X});
  o.max_tokens = 0;
  r = run(m0, {HEL}, o);
  EXPECT_EQ(r.res->tokens.size(), 0u);
  EXPECT_EQ(r.res->finish_reason, FinishReason::length);
}

TEST(Generate, PromptTooLongIsAClearError) {
  ScriptedModel m(11, 8, {X});
  std::vector<int32_t> prompt(9, X);
  GenRun r = run(m, prompt, greedy());
  ASSERT_FALSE(r.res.ok());
  EXPECT_NE(r.res.message().find("n_ctx = 8"), std::string::npos) << r.res.message();
  EXPECT_NE(r.res.message().find("9 tokens"), std::string::npos) << r.res.message();
  EXPECT_TRUE(m.calls.empty());
  EXPECT_FALSE(run(m, {}, greedy()).res.ok());
}

TEST(Generate, ContextFullStopsWithLengthAndNote) {
  ScriptedModel m(11, 6, {X});
  GenerateOptions o = greedy();
  o.max_tokens = -1;
  GenRun r = run(m, {HEL, LO, WOR, LD}, o);
  ASSERT_TRUE(r.res.ok()) << r.res.message();
  EXPECT_EQ(r.res->finish_reason, FinishReason::length);
  EXPECT_EQ(r.res->tokens.size(), 3u);  // n_ctx - n_prompt + 1
  EXPECT_NE(r.res->note.find("context full"), std::string::npos);
  EXPECT_EQ(m.n_past(), 6);
  // A prompt that fills the context exactly still yields one token.
  ScriptedModel m2(11, 4, {X});
  r = run(m2, {HEL, LO, WOR, LD}, o);
  ASSERT_TRUE(r.res.ok());
  EXPECT_EQ(r.res->tokens.size(), 1u);
}

TEST(Generate, PromptBatches) {
  ScriptedModel m(11, 64, {X, EOS});
  m.set_prompt_len(5);
  GenerateOptions o = greedy();
  o.n_batch = 2;
  GenRun r = run(m, {HEL, LO, WOR, LD, BANG}, o);
  ASSERT_TRUE(r.res.ok());
  ASSERT_EQ(m.calls.size(), 4u);
  EXPECT_EQ(m.calls[0], (std::vector<int32_t>{HEL, LO}));
  EXPECT_EQ(m.calls[2], (std::vector<int32_t>{BANG}));
  EXPECT_EQ(r.res->text, "x");
}

TEST(Generate, CancellationIsCheckedEveryToken) {
  ScriptedModel m(11, 64, {X, Y, X, Y, X, Y});
  std::atomic<bool> cancel{false};
  GenerateOptions o = greedy();
  o.cancel = &cancel;
  TableDecoder dec(k_pieces, {EOS});
  int n = 0;
  auto res = generate(m, dec, std::vector<int32_t>{HEL}, o, [&](std::string_view) {
    if (++n == 2) cancel = true;
  });
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->finish_reason, FinishReason::cancelled);
  EXPECT_EQ(res->tokens.size(), 2u);
  EXPECT_EQ(res->text, "xy");
  // Already cancelled: nothing is evaluated.
  ScriptedModel m2(11, 64, {X});
  res = generate(m2, dec, std::vector<int32_t>{HEL}, o, nullptr);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->finish_reason, FinishReason::cancelled);
  EXPECT_TRUE(m2.calls.empty());
  EXPECT_TRUE(res->tokens.empty());
}

// A model with flat logits over 8 tokens, to exercise seeded sampling through the loop.
class FlatModel final : public LogitsSource {
 public:
  Expected<std::span<const float>> forward(std::span<const int32_t> t, bool) override {
    n_past_ += static_cast<int64_t>(t.size());
    return std::span<const float>(logits_);
  }
  void truncate(int64_t n) override { n_past_ = std::min(n_past_, n); }
  int64_t n_ctx() const override { return 1000; }
  int64_t n_past() const override { return n_past_; }

 private:
  std::vector<float> logits_ = std::vector<float>(11, 0.0f);
  int64_t n_past_ = 0;
};

TEST(Generate, SeededSamplingIsReproducible) {
  GenerateOptions o;
  o.sampling.temperature = 1.0f;
  o.sampling.top_k = 0;
  o.sampling.top_p = 1.0f;
  o.sampling.min_p = 0.0f;
  o.sampling.seed = 99;
  o.max_tokens = 50;
  o.ignore_eos = true;
  TableDecoder dec(k_pieces, {EOS});
  FlatModel a, b, c;
  auto ra = generate(a, dec, std::vector<int32_t>{X}, o, nullptr);
  auto rb = generate(b, dec, std::vector<int32_t>{X}, o, nullptr);
  o.sampling.seed = 100;
  auto rc = generate(c, dec, std::vector<int32_t>{X}, o, nullptr);
  ASSERT_TRUE(ra.ok() && rb.ok() && rc.ok());
  EXPECT_EQ(ra->tokens, rb->tokens);
  EXPECT_NE(ra->tokens, rc->tokens);
  EXPECT_EQ(ra->seed, 99u);
  // A sampler of the wrong vocabulary size is refused.
  auto small = Sampler::create(o.sampling, 5);
  ASSERT_TRUE(small.ok());
  FlatModel d;
  EXPECT_FALSE(generate(d, dec, std::vector<int32_t>{X}, o, *small, nullptr).ok());
}

TEST(StopMatcher, HoldsOnlyPossiblePrefixes) {
  StopMatcher sm({"</end>", "", "STOP"});
  std::string out;
  EXPECT_FALSE(sm.push("abc<", out));
  EXPECT_EQ(out, "abc");
  EXPECT_FALSE(sm.push("/e", out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(sm.push("x", out));
  EXPECT_EQ(out, "</ex");
  EXPECT_FALSE(sm.push("ST", out));
  EXPECT_EQ(out, "");
  EXPECT_TRUE(sm.push("OP tail", out));
  EXPECT_EQ(out, "");
  EXPECT_EQ(sm.matched(), "STOP");
  EXPECT_TRUE(sm.push("more", out));
  EXPECT_EQ(out, "");
}

// UTF-8: a two-byte character produced as two byte tokens must come out whole, in one piece.
TEST(Generate, Utf8CharacterSplitOverByteTokens) {
  auto tok = Tokenizer::from_llama2c(test::shared_dir() + "/models/tok512.bin", 512);
  ASSERT_TRUE(tok.ok()) << tok.message();
  // llama2.c tok512: ids 3..258 are the byte tokens <0x00>..<0xFF>.
  const int32_t c3 = 3 + 0xC3, a9 = 3 + 0xA9, e2 = 3 + 0xE2, x82 = 3 + 0x82, xac = 3 + 0xAC;
  ASSERT_EQ((*tok)->token_text(c3), "<0xC3>");
  ScriptedModel m(512, 64, {c3, a9, e2, x82, xac, c3, a9, 2});
  TokenizerTextDecoder dec(**tok);
  GenerateOptions o = greedy();
  std::vector<std::string> chunks;
  auto res = generate(m, dec, std::vector<int32_t>{1}, o,
                      [&](std::string_view s) { chunks.emplace_back(s); });
  ASSERT_TRUE(res.ok()) << res.message();
  EXPECT_EQ(res->finish_reason, FinishReason::eos);      // token 2 is EOS
  EXPECT_EQ(res->text, "\xC3\xA9\xE2\x82\xAC\xC3\xA9");  // "é€é"
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0], "\xC3\xA9");
  EXPECT_EQ(chunks[1], "\xE2\x82\xAC");
  EXPECT_EQ(chunks[2], "\xC3\xA9");

  // A stop string made of one multi-byte character split across byte tokens.
  ScriptedModel m2(512, 64, {c3, a9, e2, x82, xac, c3, a9, 2});
  o.stop = {"\xE2\x82\xAC"};
  chunks.clear();
  TokenizerTextDecoder dec2(**tok);
  res = generate(m2, dec2, std::vector<int32_t>{1}, o,
                 [&](std::string_view s) { chunks.emplace_back(s); });
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->text, "\xC3\xA9");
  EXPECT_EQ(res->finish_reason, FinishReason::stop);
}

// The real stories260K model through Session: greedy generation must reproduce the independent
// PyTorch reference (tests/ref/torch_model.py) token for token, and the streamed text must equal
// the whole-sequence decode of the continuation.
TEST(Generate, Stories260KGreedyMatchesPyTorchReference) {
  const int n_new = 48;
  const std::string cmd =
      test::python_exe() + " " + test::sh_quote(test::source_dir() + "/tests/ref/torch_model.py") +
      " --llama2c " + test::sh_quote(test::shared_dir() + "/models/stories260K.bin") +
      " --tokenizer " + test::sh_quote(test::shared_dir() + "/models/tok512.bin") +
      " --prompt 'Once upon a time,' --generate " + std::to_string(n_new);
  const test::RunResult ref = test::run(cmd);
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  const auto j = nlohmann::json::parse(ref.out);
  const auto prompt = j["prompt"].get<std::vector<int32_t>>();
  auto expect = j["generated"].get<std::vector<int32_t>>();

  LoadOptions lo;
  lo.tokenizer_path = test::shared_dir() + "/models/tok512.bin";
  auto model = Model::load(test::shared_dir() + "/models/stories260K.bin", lo);
  ASSERT_TRUE(model.ok()) << model.message();
  const Tokenizer& tok = (*model)->tokenizer();
  // The loop stops at the first end-of-generation token (kept in the result).
  for (size_t i = 0; i < expect.size(); ++i) {
    if (tok.is_eog(expect[i])) {
      expect.resize(i + 1);
      break;
    }
  }
  Session session(**model, 256, 1, DType::F32);
  GenerateOptions o;
  o.sampling.temperature = 0.0f;
  o.max_tokens = n_new;
  std::string streamed;
  auto res = generate(session, **model, prompt, o, [&](std::string_view s) { streamed += s; });
  ASSERT_TRUE(res.ok()) << res.message();
  EXPECT_EQ(res->tokens, expect);
  EXPECT_EQ(streamed, res->text);

  std::vector<int32_t> body(res->tokens.begin(), res->tokens.end());
  if (!body.empty() && tok.is_eog(body.back())) body.pop_back();
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), body.begin(), body.end());
  const std::string whole = tok.decode(all), head = tok.decode(prompt);
  ASSERT_EQ(whole.compare(0, head.size(), head), 0);
  const std::string continuation = whole.substr(head.size());
  EXPECT_EQ(res->text, continuation);
  ASSERT_GT(continuation.size(), 20u);
  EXPECT_EQ(continuation[0], ' ');  // the continuation keeps the space before its first word

  // A stop string taken from the middle of that text cuts it exactly before its first occurrence.
  const std::string stop = continuation.substr(12, 5);
  Session s2(**model, 256, 1);
  o.stop = {stop};
  auto cut = generate(s2, **model, prompt, o, nullptr);
  ASSERT_TRUE(cut.ok()) << cut.message();
  EXPECT_EQ(cut->finish_reason, FinishReason::stop);
  EXPECT_EQ(cut->text, continuation.substr(0, continuation.find(stop)));
}

}  // namespace
}  // namespace slm
