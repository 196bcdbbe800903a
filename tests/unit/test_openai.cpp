// OpenAI request mapping: fields onto Request/SamplerParams as the API reference defines them,
// OpenAI's defaults, context limits, refusals, and the response/chunk/error JSON shapes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "model/fixture.h"
#include "model/model.h"
#include "serve/openai.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm::serve {
namespace {

using nlohmann::json;

const Model& stories() {
  static std::unique_ptr<Model> m = [] {
    LoadOptions o;
    o.tokenizer_path = test::shared_dir() + "/models/tok512.bin";
    auto r = Model::load(test::shared_dir() + "/models/stories260K.bin", o);
    EXPECT_TRUE(r.ok()) << r.message();
    return std::move(*r);
  }();
  return *m;
}

// Phi-3 vocabulary and the Phi-3.5 chat template on random weights.
const Model& chat_model() {
  static test::TempDir dir;  // removed at exit
  static std::unique_ptr<Model> m = [] {
    std::string vocab = test::shared_dir() + "/tokenizer/ggml-vocab-phi-3.gguf";
    auto vf = GgufFile::open(vocab);
    EXPECT_TRUE(vf.ok());
    FixtureSpec s;
    s.n_vocab = static_cast<int64_t>(vf->get_string_array("tokenizer.ggml.tokens")->size());
    s.n_layer = 1;
    s.n_embd = 32;
    s.n_head = 2;
    s.n_head_kv = 2;
    s.vocab_gguf = vocab;
    s.chat_template = test::read_text(test::shared_dir() + "/chat-templates/microsoft-Phi-3.5-mini-instruct.jinja");
    std::string path = dir.file("chat.gguf");
    EXPECT_TRUE(write_fixture_gguf(s, path).ok());
    auto r = Model::load(path);
    EXPECT_TRUE(r.ok()) << r.message();
    return std::move(*r);
  }();
  return *m;
}

bool parse(Endpoint kind, const std::string& body, const Model& m, ApiRequest* out, ApiError* err,
           int64_t n_ctx = 512) {
  ApiLimits lim;
  lim.n_ctx = n_ctx;
  return parse_api_request(kind, body, m, lim, out, err);
}

TEST(OpenAI, CompletionFieldsMapOntoTheSampler) {
  ApiRequest r;
  ApiError e;
  ASSERT_TRUE(parse(Endpoint::completion,
                    R"({"prompt": "Once upon a time", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
                        "seed": 42, "presence_penalty": 0.5, "frequency_penalty": -1, "stop": "\n",
                        "logit_bias": {"13": -100, "7": 2.5}, "stream": true,
                        "stream_options": {"include_usage": true}, "unknown_field": {"x": [1]}})",
                    stories(), &r, &e))
      << e.message;
  EXPECT_EQ(r.req.prompt, stories().tokenizer().encode("Once upon a time", true, false));
  EXPECT_EQ(r.req.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.req.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.req.sampling.top_p, 0.9f);
  EXPECT_EQ(r.req.sampling.seed, 42u);
  EXPECT_FLOAT_EQ(r.req.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.req.sampling.frequency_penalty, -1.0f);
  EXPECT_EQ(r.req.stop, std::vector<std::string>{"\n"});
  ASSERT_EQ(r.req.sampling.logit_bias.size(), 2u);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  // OpenAI semantics: no top-k / min-p filtering unless asked for.
  EXPECT_EQ(r.req.sampling.top_k, 0);
  EXPECT_EQ(r.req.sampling.min_p, 0.0f);
}

TEST(OpenAI, DefaultsAndContextCap) {
  ApiRequest r;
  ApiError e;
  ASSERT_TRUE(parse(Endpoint::completion, R"({"prompt": [1, 400, 401]})", stories(), &r, &e, 100)) << e.message;
  EXPECT_EQ(r.req.prompt, (std::vector<int32_t>{1, 400, 401}));
  EXPECT_FLOAT_EQ(r.req.sampling.temperature, 1.0f);  // OpenAI's default
  EXPECT_FLOAT_EQ(r.req.sampling.top_p, 1.0f);
  EXPECT_EQ(r.req.sampling.seed, SamplerParams::k_random_seed);
  EXPECT_EQ(r.req.max_tokens, 97);  // whatever fits after the prompt
  ASSERT_TRUE(parse(Endpoint::completion, R"({"prompt": [1, 2], "max_completion_tokens": 100000})", stories(), &r,
                    &e, 100));
  EXPECT_EQ(r.req.max_tokens, 98);
  EXPECT_FALSE(parse(Endpoint::completion, R"({"prompt": [1, 2, 3, 4]})", stories(), &r, &e, 4));
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_NE(e.message.find("the context is 4 tokens"), std::string::npos) << e.message;
  // top_p 0 keeps only the most likely token.
  ASSERT_TRUE(parse(Endpoint::completion, R"({"prompt": "a", "top_p": 0})", stories(), &r, &e));
  EXPECT_EQ(r.req.sampling.temperature, 0.0f);
}

TEST(OpenAI, ChatUsesTheTemplateWithGenerationPrompt) {
  ApiRequest r;
  ApiError e;
  ASSERT_TRUE(parse(Endpoint::chat,
                    R"({"messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]})",
                    chat_model(), &r, &e))
      << e.message;
  const Tokenizer& tok = chat_model().tokenizer();
  // The Phi-3.5 template's own text (read from the .jinja file): system, user, then the
  // assistant header as the generation prompt.
  std::string want = "<|system|>\nBe brief.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n";
  std::vector<int32_t> ids = tok.encode(want, false, true);
  if (tok.add_bos() && tok.bos_id() >= 0) ids.insert(ids.begin(), tok.bos_id());
  EXPECT_EQ(r.req.prompt, ids);
  EXPECT_FALSE(parse(Endpoint::chat, R"({"messages": [{"role": "user", "content": "x"}]})", stories(), &r, &e));
  EXPECT_EQ(e.code, "no_chat_template");
}

TEST(OpenAI, RefusalsNameTheField) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({"prompt": "a", "n": 2})", "n"},
      {R"({"prompt": "a", "response_format": {"type": "json_object"}})", "response_format"},
      {R"({"prompt": "a", "temperature": 2.01})", "temperature"},
      {R"({"prompt": "a", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "a", "seed": 1.5})", "seed"},
      {R"({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]})", "stop"},
      {R"({"prompt": "a", "logit_bias": {"512": 1}})", "logit_bias"},
      {R"({"prompt": "a", "logit_bias": {"1": 101}})", "logit_bias"},
      {R"({"prompt": "a", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": [512]})", "prompt"},
      {R"({"prompt": ["a", "b"]})", "prompt"},
      {R"({"prompt": "a", "echo": true})", "echo"},
      {R"({"prompt": "a", "logprobs": 2})", "logprobs"},
      {R"({"prompt": "a", "model": 1})", "model"},
      {R"({"max_tokens": 5})", "prompt"},
  };
  for (const Case& c : cases) {
    ApiRequest r;
    ApiError e;
    EXPECT_FALSE(parse(Endpoint::completion, c.body, stories(), &r, &e)) << c.body;
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
  }
  ApiRequest r;
  ApiError e;
  EXPECT_FALSE(parse(Endpoint::completion, "{\"prompt\": \"\xff\"}", stories(), &r, &e));
  EXPECT_NE(e.message.find("invalid JSON"), std::string::npos) << e.message;
  EXPECT_FALSE(parse(Endpoint::completion, std::string(1000, '['), stories(), &r, &e));
  EXPECT_NE(e.message.find("nested deeper"), std::string::npos);
}

TEST(OpenAI, ResponseShapes) {
  ResponseMeta meta{"cmpl-1", 1700000000, "m"};
  Completion c;
  c.text = "hi \xff";  // a byte that is not UTF-8 must not break the JSON
  c.finish = Finish::eos;
  c.n_prompt = 3;
  c.n_generated = 2;
  json j = json::parse(completion_body(Endpoint::chat, meta, c));
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["total_tokens"], 5);
  std::string chunk = sse_text_chunk(Endpoint::completion, meta, "x", true);
  ASSERT_EQ(chunk.rfind("data: ", 0), 0u);
  ASSERT_EQ(chunk.substr(chunk.size() - 2), "\n\n");
  json k = json::parse(chunk.substr(6));
  EXPECT_EQ(k["choices"][0]["text"], "x");
  EXPECT_TRUE(k["usage"].is_null());
  json u = json::parse(sse_usage_chunk(Endpoint::chat, meta, 3, 2).substr(6));
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["completion_tokens"], 2);
  json err = json::parse(error_body(ApiError{400, "bad", "invalid_request_error", "", "c"}));
  EXPECT_TRUE(err["error"]["param"].is_null());
  EXPECT_EQ(err["error"]["code"], "c");
  EXPECT_EQ(openai_finish_reason(Finish::length), std::string("length"));
  EXPECT_EQ(openai_finish_reason(Finish::stop), std::string("stop"));
}

}  // namespace
}  // namespace slm::serve
