// The OpenAI API surface: request bodies of /v1/chat/completions and /v1/completions validated
// and mapped onto engine Requests (template, tokens, sampling), and the response, stream-chunk
// and error JSON the official clients expect.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "serve/engine.h"

namespace slm {
class Model;
}

namespace slm::serve {

// An OpenAI-style error: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field, "" -> null
  std::string code;   // "" -> null
};
std::string error_body(const ApiError& e);

enum class Endpoint { chat, completion };

struct ApiRequest {
  Endpoint kind = Endpoint::chat;
  Request req;  // prompt tokens, sampling, max_tokens (capped to the context), stop
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Limits a request is checked against.
struct ApiLimits {
  int64_t n_ctx = 2048;           // context per slot: prompt + max_tokens must fit
  int64_t max_messages = 1024;
  int64_t max_stop = 4;           // stop sequences, as OpenAI
  int64_t max_stop_bytes = 256;
  int64_t max_logit_bias = 1024;  // entries
};

// Parses and validates a request body and builds the prompt (chat: the model's template with
// add_generation_prompt; completion: the prompt text with the tokenizer's specials, or token
// ids). Returns false with *err filled (status 400, param naming the field) on any problem:
// invalid JSON or UTF-8, wrong types, out-of-range values, n != 1, response_format JSON mode,
// a prompt that does not fit the context.
bool parse_api_request(Endpoint kind, std::string_view body, const Model& model,
                       const ApiLimits& limits, ApiRequest* out, ApiError* err);

// "stop" (EOS or a stop string), "length" (max_tokens, context, timeout) or "cancelled".
const char* openai_finish_reason(Finish f);

struct ResponseMeta {
  std::string id;       // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// The non-streaming response body.
std::string completion_body(Endpoint kind, const ResponseMeta& meta, const Completion& c);

// Server-sent events, each "data: <json>\n\n". Chat streams start with the role chunk; with
// include_usage every chunk carries "usage": null and a last chunk (no choices) the usage.
std::string sse_role_chunk(const ResponseMeta& meta, bool include_usage);
std::string sse_text_chunk(Endpoint kind, const ResponseMeta& meta, std::string_view text,
                           bool include_usage);
std::string sse_finish_chunk(Endpoint kind, const ResponseMeta& meta, Finish finish,
                             bool include_usage);
std::string sse_usage_chunk(Endpoint kind, const ResponseMeta& meta, int64_t n_prompt,
                            int64_t n_generated);
std::string sse_error(const ApiError& e);
inline const char* sse_done() { return "data: [DONE]\n\n"; }

// GET /v1/models.
std::string models_body(const std::string& model_id, int64_t created);

}  // namespace slm::serve
