// OpenAI request validation and response formatting. Every field is type- and range-checked
// before use; a wrong shape is a 400 naming the field, never an exception escaping.
#include "serve/openai.h"

#include "core/json_depth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "template/chat.h"
#include "tokenizer/tokenizer.h"

namespace slm::serve {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr int64_t k_max_json_depth = 64;

std::string dump(const ojson& j) {
  // Generated text may hold bytes that are not UTF-8 (a model can emit any byte token); they
  // become U+FFFD rather than an exception.
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

bool bad(ApiError* err, std::string param, std::string message, std::string code = "") {
  err->status = 400;
  err->type = "invalid_request_error";
  err->param = std::move(param);
  err->message = std::move(message);
  err->code = std::move(code);
  return false;
}

// Reads an optional number field in [lo, hi]; absent or null leaves *out unchanged.
bool get_number(const json& body, const char* name, double lo, double hi, float* out,
                ApiError* err) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_number()) return bad(err, name, std::string("'") + name + "' must be a number");
  double v = it->get<double>();
  if (!(v >= lo && v <= hi)) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "'%s' must be between %g and %g", name, lo, hi);
    return bad(err, name, buf);
  }
  *out = static_cast<float>(v);
  return true;
}

// Reads an optional integer field in [lo, hi].
bool get_int(const json& body, const char* name, int64_t lo, int64_t hi, int64_t* out,
             bool* present, ApiError* err) {
  auto it = body.find(name);
  if (present) *present = false;
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_number_integer()) return bad(err, name, std::string("'") + name + "' must be an integer");
  int64_t v = 0;
  if (it->is_number_unsigned()) {
    uint64_t u = it->get<uint64_t>();
    v = u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
            ? std::numeric_limits<int64_t>::max()
            : static_cast<int64_t>(u);
  } else {
    v = it->get<int64_t>();
  }
  if (v < lo || v > hi) {
    return bad(err, name, std::string("'") + name + "' must be between " + std::to_string(lo) +
                              " and " + std::to_string(hi));
  }
  *out = v;
  if (present) *present = true;
  return true;
}

bool get_bool(const json& body, const char* name, bool* out, ApiError* err) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_boolean()) return bad(err, name, std::string("'") + name + "' must be a boolean");
  *out = it->get<bool>();
  return true;
}

// Message content: a string, null, or an array of {"type": "text", "text": ...} parts.
bool message_text(const json& content, size_t index, std::string* out, ApiError* err) {
  std::string param = "messages[" + std::to_string(index) + "].content";
  if (content.is_null()) return true;
  if (content.is_string()) {
    *out = content.get<std::string>();
    return true;
  }
  if (!content.is_array()) return bad(err, param, "'" + param + "' must be a string or an array of parts");
  for (const json& part : content) {
    if (!part.is_object()) return bad(err, param, "each part of '" + param + "' must be an object");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) return bad(err, param, "a part of '" + param + "' has no 'type'");
    if (type->get<std::string>() != "text") {
      return bad(err, param, "content part type '" + type->get<std::string>() + "' is not supported (text only)");
    }
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) return bad(err, param, "a text part of '" + param + "' has no string 'text'");
    *out += text->get<std::string>();
  }
  return true;
}

bool chat_prompt(const json& body, const Model& model, const ApiLimits& limits,
                 std::vector<int32_t>* tokens, ApiError* err) {
  auto it = body.find("messages");
  if (it == body.end()) return bad(err, "messages", "'messages' is required");
  if (!it->is_array() || it->empty()) return bad(err, "messages", "'messages' must be a non-empty array");
  if (static_cast<int64_t>(it->size()) > limits.max_messages) {
    return bad(err, "messages", "more than " + std::to_string(limits.max_messages) + " messages");
  }
  ojson messages = ojson::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return bad(err, p, "'" + p + "' must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return bad(err, p + ".role", "'" + p + ".role' must be a string");
    auto content = m.find("content");
    std::string text;
    if (content != m.end() && !message_text(*content, i, &text, err)) return false;
    ojson msg = {{"role", role->get<std::string>()}, {"content", text}};
    auto name = m.find("name");
    if (name != m.end() && name->is_string()) msg["name"] = name->get<std::string>();
    messages.push_back(std::move(msg));
  }
  const std::string& tmpl = model.chat_template();
  if (tmpl.empty()) {
    return bad(err, "messages", "this model has no chat template; use /v1/completions", "no_chat_template");
  }
  const Tokenizer& tok = model.tokenizer();
  ChatOptions co;
  co.add_generation_prompt = true;
  if (tok.bos_id() >= 0) co.bos_token = tok.token_text(tok.bos_id());
  if (tok.eos_id() >= 0) co.eos_token = tok.token_text(tok.eos_id());
  auto text = render_chat(tmpl, messages, co);
  if (!text.ok()) return bad(err, "messages", "chat template: " + text.message());
  // The template writes the specials (BOS included when it wants one), so parse them.
  *tokens = tok.encode(*text, false, true);
  if (tok.add_bos() && tok.bos_id() >= 0 && (tokens->empty() || (*tokens)[0] != tok.bos_id())) {
    tokens->insert(tokens->begin(), tok.bos_id());
  }
  return true;
}

bool completion_prompt(const json& body, const Model& model, std::vector<int32_t>* tokens,
                       ApiError* err) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return bad(err, "prompt", "'prompt' is required");
  const json* p = &*it;
  // A batch of one prompt is the prompt.
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  const Tokenizer& tok = model.tokenizer();
  if (p->is_string()) {
    *tokens = tok.encode(p->get<std::string>(), true, false);
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    int64_t n_vocab = model.config().n_vocab;
    for (const json& t : *p) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab) {
        return bad(err, "prompt", "token ids in 'prompt' must be integers in [0, " + std::to_string(n_vocab) + ")");
      }
      tokens->push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
  } else if (p->is_array() && p->size() > 1) {
    return bad(err, "prompt", "only one prompt per request is supported");
  } else {
    return bad(err, "prompt", "'prompt' must be a string, an array of token ids, or an array of one string");
  }
  if (tokens->empty()) return bad(err, "prompt", "the prompt is empty");
  return true;
}

bool parse_stop(const json& body, const ApiLimits& limits, std::vector<std::string>* stop,
                ApiError* err) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return true;
  std::vector<const json*> items;
  if (it->is_string()) {
    items.push_back(&*it);
  } else if (it->is_array()) {
    if (static_cast<int64_t>(it->size()) > limits.max_stop) {
      return bad(err, "stop", "at most " + std::to_string(limits.max_stop) + " stop sequences");
    }
    for (const json& s : *it) items.push_back(&s);
  } else {
    return bad(err, "stop", "'stop' must be a string or an array of strings");
  }
  for (const json* s : items) {
    if (!s->is_string()) return bad(err, "stop", "'stop' must be a string or an array of strings");
    std::string v = s->get<std::string>();
    if (v.empty()) return bad(err, "stop", "stop sequences must not be empty");
    if (static_cast<int64_t>(v.size()) > limits.max_stop_bytes) {
      return bad(err, "stop", "stop sequences are limited to " + std::to_string(limits.max_stop_bytes) + " bytes");
    }
    stop->push_back(std::move(v));
  }
  return true;
}

bool parse_logit_bias(const json& body, const ApiLimits& limits, int64_t n_vocab,
                      SamplerParams* sp, ApiError* err) {
  auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_object()) return bad(err, "logit_bias", "'logit_bias' must be an object of token id -> bias");
  if (static_cast<int64_t>(it->size()) > limits.max_logit_bias) {
    return bad(err, "logit_bias", "at most " + std::to_string(limits.max_logit_bias) + " logit_bias entries");
  }
  for (auto kv = it->begin(); kv != it->end(); ++kv) {
    const std::string& key = kv.key();
    int64_t id = 0;
    bool ok = !key.empty() && key.size() <= 10;
    for (char c : key) {
      if (c < '0' || c > '9') ok = false;
    }
    if (ok) id = std::stoll(key);
    if (!ok || id >= n_vocab) {
      return bad(err, "logit_bias", "logit_bias key '" + key + "' is not a token id in [0, " + std::to_string(n_vocab) + ")");
    }
    if (!kv.value().is_number()) return bad(err, "logit_bias", "logit_bias values must be numbers");
    double b = kv.value().get<double>();
    if (!(b >= -100.0 && b <= 100.0)) return bad(err, "logit_bias", "logit_bias values must be between -100 and 100");
    sp->logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(b));
  }
  return true;
}

// Fields OpenAI defines that this server does not implement yet: refused, not ignored, so a
// client never silently gets something other than what it asked for.
bool refuse_unsupported(const json& body, Endpoint kind, ApiError* err) {
  if (auto it = body.find("n"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() != 1) return bad(err, "n", "only n = 1 is supported");
  }
  if (auto it = body.find("response_format"); it != body.end() && !it->is_null()) {
    if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) {
      return bad(err, "response_format", "'response_format' must be an object with a string 'type'");
    }
    std::string type = (*it)["type"].get<std::string>();
    if (type == "json_object" || type == "json_schema") {
      return bad(err, "response_format", "response_format '" + type + "' (JSON mode) is not supported yet");
    }
    if (type != "text") return bad(err, "response_format", "unknown response_format type '" + type + "'");
  }
  if (auto it = body.find("logprobs"); it != body.end() && !it->is_null()) {
    bool on = it->is_boolean() ? it->get<bool>() : !(it->is_number_integer() && it->get<int64_t>() == 0);
    if (on) return bad(err, "logprobs", "logprobs are not supported yet");
  }
  if (auto it = body.find("tools"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return bad(err, "tools", "'tools' must be an array");
    if (!it->empty()) return bad(err, "tools", "tools are not supported yet");
  }
  if (kind == Endpoint::completion) {
    if (auto it = body.find("echo"); it != body.end() && !it->is_null()) {
      if (!it->is_boolean()) return bad(err, "echo", "'echo' must be a boolean");
      if (it->get<bool>()) return bad(err, "echo", "echo is not supported yet");
    }
    if (auto it = body.find("best_of"); it != body.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() != 1) return bad(err, "best_of", "only best_of = 1 is supported");
    }
    if (auto it = body.find("suffix"); it != body.end() && !it->is_null()) {
      return bad(err, "suffix", "suffix is not supported");
    }
  }
  return true;
}

}  // namespace

std::string error_body(const ApiError& e) {
  ojson inner = {{"message", e.message}, {"type", e.type}};
  inner["param"] = e.param.empty() ? ojson(nullptr) : ojson(e.param);
  inner["code"] = e.code.empty() ? ojson(nullptr) : ojson(e.code);
  return dump(ojson{{"error", inner}});
}

bool parse_api_request(Endpoint kind, std::string_view body_text, const Model& model,
                       const ApiLimits& limits, ApiRequest* out, ApiError* err) {
  if (json_nesting_depth(body_text) > k_max_json_depth) {
    return bad(err, "", "JSON nested deeper than " + std::to_string(k_max_json_depth) + " levels");
  }
  json body = json::parse(body_text.begin(), body_text.end(), nullptr, false);
  if (body.is_discarded()) {
    // The parser rejects malformed JSON and invalid UTF-8 alike; say which.
    try {
      json again = json::parse(body_text.begin(), body_text.end());
    } catch (const json::exception& e) {
      return bad(err, "", std::string("invalid JSON body: ") + e.what());
    }
    return bad(err, "", "invalid JSON body");
  }
  if (!body.is_object()) return bad(err, "", "the request body must be a JSON object");

  ApiRequest r;
  r.kind = kind;
  if (auto it = body.find("model"); it != body.end() && !it->is_null() && !it->is_string()) {
    return bad(err, "model", "'model' must be a string");
  }
  if (!refuse_unsupported(body, kind, err)) return false;
  if (!get_bool(body, "stream", &r.stream, err)) return false;
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return bad(err, "stream_options", "'stream_options' must be an object");
    if (!get_bool(*it, "include_usage", &r.include_usage, err)) return false;
    if (!r.stream) return bad(err, "stream_options", "'stream_options' is only allowed with stream: true");
  }

  // OpenAI's sampling semantics: temperature 1 and top_p 1 unless given, no top-k or min-p
  // (top_k, min_p and repeat_penalty are accepted as extensions).
  SamplerParams& sp = r.req.sampling;
  sp.temperature = 1.0f;
  sp.top_p = 1.0f;
  sp.top_k = 0;
  sp.min_p = 0.0f;
  if (!get_number(body, "temperature", 0.0, 2.0, &sp.temperature, err)) return false;
  if (!get_number(body, "top_p", 0.0, 1.0, &sp.top_p, err)) return false;
  if (sp.top_p == 0.0f) {  // keep only the most likely token
    sp.top_p = 1.0f;
    sp.temperature = 0.0f;
  }
  if (!get_number(body, "presence_penalty", -2.0, 2.0, &sp.presence_penalty, err)) return false;
  if (!get_number(body, "frequency_penalty", -2.0, 2.0, &sp.frequency_penalty, err)) return false;
  if (!get_number(body, "min_p", 0.0, 1.0, &sp.min_p, err)) return false;
  if (!get_number(body, "repeat_penalty", 0.01, 10.0, &sp.repeat_penalty, err)) return false;
  int64_t top_k = 0;
  if (!get_int(body, "top_k", 0, 1 << 30, &top_k, nullptr, err)) return false;
  sp.top_k = static_cast<int32_t>(top_k);
  int64_t seed = 0;
  bool has_seed = false;
  if (!get_int(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
               &seed, &has_seed, err)) {
    return false;
  }
  if (has_seed) sp.seed = static_cast<uint64_t>(seed);
  if (!parse_logit_bias(body, limits, model.config().n_vocab, &sp, err)) return false;
  if (!parse_stop(body, limits, &r.req.stop, err)) return false;
  if (!get_bool(body, "ignore_eos", &r.req.ignore_eos, err)) return false;

  int64_t max_tokens = 0;
  bool has_max = false, has_max2 = false;
  int64_t max2 = 0;
  if (!get_int(body, "max_tokens", 1, std::numeric_limits<int64_t>::max(), &max_tokens, &has_max, err)) return false;
  if (!get_int(body, "max_completion_tokens", 1, std::numeric_limits<int64_t>::max(), &max2, &has_max2, err)) {
    return false;
  }
  if (has_max2) {
    max_tokens = max2;
    has_max = true;
  }

  if (kind == Endpoint::chat) {
    if (!chat_prompt(body, model, limits, &r.req.prompt, err)) return false;
    // A reply is a new text, decoded on its own as Hugging Face does: no leading SentencePiece
    // space. A completion continues the prompt, so it keeps it.
    r.req.strip_leading_space = true;
  } else if (!completion_prompt(body, model, &r.req.prompt, err)) {
    return false;
  }
  int64_t n_prompt = static_cast<int64_t>(r.req.prompt.size());
  if (n_prompt >= limits.n_ctx) {
    return bad(err, kind == Endpoint::chat ? "messages" : "prompt",
               "the prompt has " + std::to_string(n_prompt) + " tokens; the context is " +
                   std::to_string(limits.n_ctx) + " tokens (prompt plus at least one generated token must fit)",
               "context_length_exceeded");
  }
  int64_t room = limits.n_ctx - n_prompt;
  r.req.max_tokens = has_max ? std::min(max_tokens, room) : room;
  *out = std::move(r);
  return true;
}

const char* openai_finish_reason(Finish f) {
  switch (f) {
    case Finish::stop:
    case Finish::eos:
      return "stop";
    case Finish::length:
    case Finish::timeout:
      return "length";
    case Finish::cancelled:
      return "cancelled";
    case Finish::error:
      return "error";
  }
  return "stop";
}

namespace {

ojson usage_json(int64_t n_prompt, int64_t n_generated) {
  return ojson{{"prompt_tokens", n_prompt}, {"completion_tokens", n_generated},
               {"total_tokens", n_prompt + n_generated}};
}

ojson chunk_base(Endpoint kind, const ResponseMeta& meta) {
  return ojson{{"id", meta.id},
               {"object", kind == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
               {"created", meta.created},
               {"model", meta.model}};
}

std::string sse(const ojson& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace

std::string completion_body(Endpoint kind, const ResponseMeta& meta, const Completion& c) {
  ojson j = {{"id", meta.id},
             {"object", kind == Endpoint::chat ? "chat.completion" : "text_completion"},
             {"created", meta.created},
             {"model", meta.model}};
  ojson choice;
  if (kind == Endpoint::chat) {
    choice = {{"index", 0},
              {"message", {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}}},
              {"logprobs", nullptr},
              {"finish_reason", openai_finish_reason(c.finish)}};
  } else {
    choice = {{"text", c.text}, {"index", 0}, {"logprobs", nullptr},
              {"finish_reason", openai_finish_reason(c.finish)}};
  }
  j["choices"] = ojson::array({choice});
  j["usage"] = usage_json(c.n_prompt, c.n_generated);
  j["system_fingerprint"] = "slm-seed-" + std::to_string(c.seed);
  return dump(j);
}

std::string sse_role_chunk(const ResponseMeta& meta, bool include_usage) {
  ojson j = chunk_base(Endpoint::chat, meta);
  j["choices"] = ojson::array({ojson{{"index", 0},
                                     {"delta", {{"role", "assistant"}, {"content", ""}}},
                                     {"logprobs", nullptr},
                                     {"finish_reason", nullptr}}});
  if (include_usage) j["usage"] = nullptr;
  return sse(j);
}

std::string sse_text_chunk(Endpoint kind, const ResponseMeta& meta, std::string_view text,
                           bool include_usage) {
  ojson j = chunk_base(kind, meta);
  std::string t(text);
  if (kind == Endpoint::chat) {
    j["choices"] = ojson::array({ojson{{"index", 0}, {"delta", {{"content", t}}},
                                       {"logprobs", nullptr}, {"finish_reason", nullptr}}});
  } else {
    j["choices"] = ojson::array({ojson{{"text", t}, {"index", 0}, {"logprobs", nullptr},
                                       {"finish_reason", nullptr}}});
  }
  if (include_usage) j["usage"] = nullptr;
  return sse(j);
}

std::string sse_finish_chunk(Endpoint kind, const ResponseMeta& meta, Finish finish,
                             bool include_usage) {
  ojson j = chunk_base(kind, meta);
  if (kind == Endpoint::chat) {
    j["choices"] = ojson::array({ojson{{"index", 0}, {"delta", ojson::object()},
                                       {"logprobs", nullptr},
                                       {"finish_reason", openai_finish_reason(finish)}}});
  } else {
    j["choices"] = ojson::array({ojson{{"text", ""}, {"index", 0}, {"logprobs", nullptr},
                                       {"finish_reason", openai_finish_reason(finish)}}});
  }
  if (include_usage) j["usage"] = nullptr;
  return sse(j);
}

std::string sse_usage_chunk(Endpoint kind, const ResponseMeta& meta, int64_t n_prompt,
                            int64_t n_generated) {
  ojson j = chunk_base(kind, meta);
  j["choices"] = ojson::array();
  j["usage"] = usage_json(n_prompt, n_generated);
  return sse(j);
}

std::string sse_error(const ApiError& e) { return "data: " + error_body(e) + "\n\n"; }

std::string models_body(const std::string& model_id, int64_t created) {
  ojson m = {{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "slm"}};
  return dump(ojson{{"object", "list"}, {"data", ojson::array({m})}});
}

}  // namespace slm::serve
