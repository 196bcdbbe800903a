// The C API (include/slm/slm.h): greedy tokens of stories260K through slm_generate equal the
// PyTorch reference's, the C99 example prints what `slm run` prints, and every error path
// returns a status and a message instead of crashing.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "slm/slm.h"
#include "test_util.h"

namespace {

using namespace slm;

constexpr int k_tokens = 48;

std::string stories() { return test::shared_dir() + "/models/stories260K.bin"; }
std::string tok512() { return test::shared_dir() + "/models/tok512.bin"; }

// Loads stories260K with its tokenizer; the handle frees itself.
struct Loaded {
  slm_model* model = nullptr;
  slm_context* ctx = nullptr;
  Loaded() {
    slm_model_params mp = slm_model_default_params();
    const std::string tok = tok512();
    mp.tokenizer_path = tok.c_str();
    EXPECT_EQ(slm_model_load(stories().c_str(), &mp, &model), SLM_OK) << slm_last_error();
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 1;
    if (model) {
      EXPECT_EQ(slm_context_create(model, &cp, &ctx), SLM_OK) << slm_last_error();
    }
  }
  ~Loaded() {
    slm_context_free(ctx);
    slm_model_free(model);
  }
};

struct Collected {
  std::vector<int32_t> tokens;
  std::string text;
  int calls = 0;
  int stop_after = -1;  // return nonzero on this call (1-based)
  int tail_calls = 0;   // calls with token -1
};

int collect(int32_t token, const char* piece, size_t len, void* user) {
  auto* c = static_cast<Collected*>(user);
  ++c->calls;
  if (token >= 0) {
    c->tokens.push_back(token);
  } else {
    ++c->tail_calls;
  }
  c->text.append(piece, len);
  return c->calls == c->stop_after ? 1 : 0;
}

slm_generate_params greedy(int n) {
  slm_generate_params p = slm_generate_default_params();
  p.temperature = 0.0f;
  p.max_tokens = n;
  return p;
}

TEST(CApi, Version) {
  EXPECT_EQ(slm_api_version(), SLM_API_VERSION);
  EXPECT_STREQ(slm_status_name(SLM_OK), "ok");
  EXPECT_STREQ(slm_status_name(999), "unknown status");
}

// Prompt ids and greedy continuation equal tests/ref/torch_model.py (PyTorch + a Python
// llama2.c encoder) on the real stories260K model.
TEST(CApi, GreedyTokensMatchPyTorch) {
  const std::string prompt = "Once upon a time";
  auto ref = test::run(test::python_exe() + " " +
                       test::sh_quote(test::source_dir() + "/tests/ref/torch_model.py") +
                       " --llama2c " + test::sh_quote(stories()) + " --tokenizer " +
                       test::sh_quote(tok512()) + " --prompt " + test::sh_quote(prompt) +
                       " --generate " + std::to_string(k_tokens));
  ASSERT_EQ(ref.exit_code, 0) << "PyTorch reference failed (python3-torch needed): " << ref.err;
  auto j = nlohmann::json::parse(ref.out);
  const auto ref_prompt = j["prompt"].get<std::vector<int32_t>>();
  const auto ref_gen = j["generated"].get<std::vector<int32_t>>();

  Loaded l;
  ASSERT_TRUE(l.ctx);
  size_t n = 0;
  ASSERT_EQ(slm_tokenize(l.model, prompt.data(), prompt.size(), 1, 1, nullptr, 0, &n), SLM_OK);
  std::vector<int32_t> ids(n);
  ASSERT_EQ(slm_tokenize(l.model, prompt.data(), prompt.size(), 1, 1, ids.data(), ids.size(), &n),
            SLM_OK);
  EXPECT_EQ(ids, ref_prompt);

  Collected c;
  slm_generate_params p = greedy(k_tokens);
  slm_generate_result r;
  ASSERT_EQ(slm_generate(l.ctx, prompt.c_str(), &p, collect, &c, &r), SLM_OK) << slm_last_error();
  EXPECT_EQ(r.finish_reason, SLM_FINISH_LENGTH);
  EXPECT_EQ(r.n_prompt, static_cast<int64_t>(ref_prompt.size()));
  EXPECT_EQ(r.n_generated, k_tokens);
  EXPECT_EQ(c.tokens, ref_gen);
  EXPECT_EQ(c.calls, k_tokens);  // one per token, nothing held back without stop strings

  // The streamed pieces are the continuation: decode(prompt + generated) = decode(prompt) +
  // pieces (whole-sequence decoding drops only the very first leading space).
  auto detok = [&](const std::vector<int32_t>& v) {
    size_t len = 0;
    EXPECT_EQ(slm_detokenize(l.model, v.data(), v.size(), 0, nullptr, 0, &len), SLM_OK);
    std::string text(len + 1, '\0');
    EXPECT_EQ(slm_detokenize(l.model, v.data(), v.size(), 0, text.data(), text.size(), &len),
              SLM_OK);
    text.resize(len);
    return text;
  };
  std::vector<int32_t> all = ids;
  all.insert(all.end(), c.tokens.begin(), c.tokens.end());
  EXPECT_EQ(detok(all), detok(ids) + c.text);
  EXPECT_EQ(detok(ids), prompt);

  // A second call starts from an empty context and gives the same tokens.
  Collected again;
  ASSERT_EQ(slm_generate(l.ctx, prompt.c_str(), &p, collect, &again, nullptr), SLM_OK);
  EXPECT_EQ(again.tokens, c.tokens);
}

TEST(CApi, StopStringAndCallbackStop) {
  Loaded l;
  ASSERT_TRUE(l.ctx);
  Collected all;
  slm_generate_params p = greedy(k_tokens);
  ASSERT_EQ(slm_generate(l.ctx, "Once upon a time", &p, collect, &all, nullptr), SLM_OK);
  const size_t cut = all.text.find("Lily");
  ASSERT_NE(cut, std::string::npos) << all.text;

  const char* stops[] = {"Lily"};
  p.stop = stops;
  p.n_stop = 1;
  Collected s;
  slm_generate_result r;
  ASSERT_EQ(slm_generate(l.ctx, "Once upon a time", &p, collect, &s, &r), SLM_OK);
  EXPECT_EQ(r.finish_reason, SLM_FINISH_STOP);
  EXPECT_EQ(s.text, all.text.substr(0, cut));

  Collected three;
  three.stop_after = 3;
  p = greedy(k_tokens);
  ASSERT_EQ(slm_generate(l.ctx, "Once upon a time", &p, collect, &three, &r), SLM_OK);
  EXPECT_EQ(r.finish_reason, SLM_FINISH_CANCELLED);
  EXPECT_EQ(three.calls, 3);
  EXPECT_EQ(std::vector<int32_t>(all.tokens.begin(), all.tokens.begin() + 3), three.tokens);
}

// The strict-C99 example (linked against libslm.so) prints exactly what `slm run` prints.
TEST(CApi, ExampleMatchesSlmRun) {
  const std::string example = std::string(SLM_BINARY_DIR) + "/slm_c_example";
  const std::string args = " --tokenizer " + test::sh_quote(tok512()) + " -n 40 ";
  auto ex = test::run(test::sh_quote(example) + args + test::sh_quote(stories()) +
                      " 'Lily and Ben went to the park.'");
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  auto cli = test::run(test::sh_quote(test::slm_exe()) + " run " + test::sh_quote(stories()) +
                       args + "--temp 0 -t 1 -p 'Lily and Ben went to the park.'");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_GT(ex.out.size(), 20u);
  EXPECT_EQ(ex.out, cli.out);

  auto bad = test::run(test::sh_quote(example) + " /nonexistent/model.gguf hello");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("/nonexistent/model.gguf"), std::string::npos) << bad.err;
}

TEST(CApi, LoadErrors) {
  slm_model* m = reinterpret_cast<slm_model*>(&m);  // must be reset to NULL on failure
  EXPECT_EQ(slm_model_load(nullptr, nullptr, &m), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(slm_last_error()).find("path"), std::string::npos);
  EXPECT_EQ(slm_model_load(stories().c_str(), nullptr, nullptr), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(slm_model_load("/nonexistent/m.gguf", nullptr, &m), SLM_ERR_LOAD);
  EXPECT_NE(std::string(slm_last_error()).find("/nonexistent/m.gguf"), std::string::npos);
  // llama2.c without its tokenizer: a load error that says what to pass.
  EXPECT_EQ(slm_model_load(stories().c_str(), nullptr, &m), SLM_ERR_LOAD);
  EXPECT_NE(std::string(slm_last_error()).find("tokenizer_path"), std::string::npos)
      << slm_last_error();
  EXPECT_EQ(m, nullptr);
  // A file that is not a model.
  test::TempDir dir;
  test::write_text(dir.file("junk.gguf"), "GGUF\x03\x00\x00\x00garbage");
  EXPECT_EQ(slm_model_load(dir.file("junk.gguf").c_str(), nullptr, &m), SLM_ERR_LOAD);
  EXPECT_STRNE(slm_last_error(), "");
  // A successful call clears the message.
  EXPECT_EQ(slm_api_version(), SLM_API_VERSION);
  slm_model_free(nullptr);
  slm_context_free(nullptr);
  EXPECT_EQ(slm_model_n_vocab(nullptr), -1);
  EXPECT_EQ(slm_context_n_ctx(nullptr), -1);
}

TEST(CApi, ArgumentErrors) {
  Loaded l;
  ASSERT_TRUE(l.ctx);
  EXPECT_EQ(slm_model_n_vocab(l.model), 512);
  EXPECT_EQ(slm_model_bos(l.model), 1);
  EXPECT_EQ(slm_model_eos(l.model), 2);
  EXPECT_EQ(slm_context_n_ctx(l.ctx), 256);
  size_t n = 0;
  int32_t ids[2];
  EXPECT_EQ(slm_tokenize(nullptr, "a", 1, 1, 1, ids, 2, &n), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(slm_tokenize(l.model, "a", 1, 1, 1, ids, 2, nullptr), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(slm_tokenize(l.model, nullptr, 3, 1, 1, ids, 2, &n), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(slm_tokenize(l.model, nullptr, 0, 1, 1, nullptr, 0, &n), SLM_OK);
  EXPECT_EQ(n, 1u);  // BOS only
  const std::string long_text = "Once upon a time there was a dog";
  EXPECT_EQ(slm_tokenize(l.model, long_text.data(), long_text.size(), 1, 1, ids, 2, &n),
            SLM_ERR_BUFFER_TOO_SMALL);
  EXPECT_GT(n, 2u);
  EXPECT_NE(std::string(slm_last_error()).find("room for 2"), std::string::npos);
  EXPECT_EQ(slm_tokenize(l.model, long_text.data(), long_text.size(), 1, 1, nullptr, 5, &n),
            SLM_ERR_INVALID_ARGUMENT);

  size_t len = 0;
  char buf[4];
  const int32_t bad[] = {5, 512};
  EXPECT_EQ(slm_detokenize(l.model, bad, 2, 0, buf, sizeof buf, &len), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(slm_last_error()).find("ids[1] = 512"), std::string::npos);
  const int32_t neg[] = {-1};
  EXPECT_EQ(slm_detokenize(l.model, neg, 1, 0, buf, sizeof buf, &len), SLM_ERR_INVALID_ARGUMENT);
  const int32_t good[] = {403, 407, 261, 378};
  EXPECT_EQ(slm_detokenize(l.model, good, 4, 0, buf, sizeof buf, &len), SLM_ERR_BUFFER_TOO_SMALL);
  EXPECT_GT(len, 3u);
  EXPECT_EQ(slm_detokenize(l.model, nullptr, 2, 0, buf, sizeof buf, &len), SLM_ERR_INVALID_ARGUMENT);

  // stories260K has no chat template.
  slm_chat_message msg = {"user", "Hi"};
  EXPECT_EQ(slm_apply_chat_template(l.model, &msg, 1, 1, nullptr, 0, &len), SLM_ERR_TEMPLATE);
  EXPECT_EQ(slm_apply_chat_template(nullptr, &msg, 1, 1, nullptr, 0, &len), SLM_ERR_INVALID_ARGUMENT);

  slm_context* c = nullptr;
  slm_context_params cp = slm_context_default_params();
  cp.n_ctx = -5;
  EXPECT_EQ(slm_context_create(l.model, &cp, &c), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(c, nullptr);
  cp = slm_context_default_params();
  cp.n_threads = -1;
  EXPECT_EQ(slm_context_create(l.model, &cp, &c), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(slm_context_create(nullptr, nullptr, &c), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(slm_context_create(l.model, nullptr, nullptr), SLM_ERR_INVALID_ARGUMENT);

  slm_generate_params p = greedy(4);
  EXPECT_EQ(slm_generate(nullptr, "x", &p, nullptr, nullptr, nullptr), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(slm_generate(l.ctx, nullptr, &p, nullptr, nullptr, nullptr), SLM_ERR_INVALID_ARGUMENT);
  p.temperature = std::nanf("");
  EXPECT_EQ(slm_generate(l.ctx, "x", &p, nullptr, nullptr, nullptr), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(slm_last_error()).find("temperature"), std::string::npos);
  p = greedy(4);
  p.top_p = 0.0f;
  EXPECT_EQ(slm_generate(l.ctx, "x", &p, nullptr, nullptr, nullptr), SLM_ERR_INVALID_ARGUMENT);
  p = greedy(4);
  p.n_stop = 2;
  EXPECT_EQ(slm_generate(l.ctx, "x", &p, nullptr, nullptr, nullptr), SLM_ERR_INVALID_ARGUMENT);
  const char* stops[] = {"a", nullptr};
  p.stop = stops;
  EXPECT_EQ(slm_generate(l.ctx, "x", &p, nullptr, nullptr, nullptr), SLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(slm_last_error()).find("stop[1]"), std::string::npos);

  // A prompt longer than the context is a generation error naming both sizes, and the
  // context stays usable.
  slm_context* small = nullptr;
  cp = slm_context_default_params();
  cp.n_ctx = 4;
  ASSERT_EQ(slm_context_create(l.model, &cp, &small), SLM_OK);
  p = greedy(4);
  EXPECT_EQ(slm_generate(small, "Once upon a time there was a dog", &p, nullptr, nullptr, nullptr),
            SLM_ERR_GENERATE);
  EXPECT_NE(std::string(slm_last_error()).find("n_ctx = 4"), std::string::npos) << slm_last_error();
  slm_generate_result r;
  EXPECT_EQ(slm_generate(small, "Once", &p, nullptr, nullptr, &r), SLM_OK) << slm_last_error();
  EXPECT_EQ(r.finish_reason, SLM_FINISH_LENGTH);
  slm_context_free(small);
}

}  // namespace
