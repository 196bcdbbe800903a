// The C API (include/slm/slm.h) over Model, Session, Tokenizer, render_chat and generate.
// Every entry point catches every exception and turns it into a status plus a message.
#include "slm/slm.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "generate/generate.h"
#include "model/model.h"
#include "template/chat.h"
#include "tokenizer/tokenizer.h"

struct slm_model {
  std::unique_ptr<slm::Model> model;
};

struct slm_context {
  const slm_model* model = nullptr;
  std::unique_ptr<slm::Session> session;
};

namespace {

thread_local std::string t_last_error;

slm_status fail(slm_status code, std::string msg) {
  t_last_error = std::move(msg);
  return code;
}

// Runs body (returning slm_status) with the error slot cleared, converting any exception.
template <class F>
slm_status guarded(const char* fn, F&& body) noexcept {
  try {
    t_last_error.clear();
    return body();
  } catch (const std::bad_alloc&) {
    return fail(SLM_ERR_OUT_OF_MEMORY, std::string(fn) + ": out of memory");
  } catch (const std::exception& e) {
    return fail(SLM_ERR_INTERNAL, std::string(fn) + ": " + e.what());
  } catch (...) {
    return fail(SLM_ERR_INTERNAL, std::string(fn) + ": unknown exception");
  }
}

slm_status null_arg(const char* fn, const char* what) {
  return fail(SLM_ERR_INVALID_ARGUMENT, std::string(fn) + ": " + what + " is NULL");
}

// The text-out convention shared by detokenize and apply_chat_template.
slm_status write_text(const char* fn, const std::string& text, char* buf, size_t capacity,
                      size_t* len) {
  *len = text.size();
  if (buf == nullptr && capacity == 0) return SLM_OK;
  if (buf == nullptr) return null_arg(fn, "buf");
  if (capacity < text.size() + 1) {
    return fail(SLM_ERR_BUFFER_TOO_SMALL, std::string(fn) + ": the text needs " +
                                              std::to_string(text.size() + 1) +
                                              " bytes with its NUL, the buffer has " +
                                              std::to_string(capacity));
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  return SLM_OK;
}

// Wraps the real decoder to learn which token each generate() step decodes, so the C callback
// receives (token, the text that became final at it).
class ReportingDecoder final : public slm::TextDecoder {
 public:
  ReportingDecoder(const slm::Tokenizer& tok, slm_token_callback cb, void* user,
                   std::atomic<bool>* cancel)
      : inner_(tok, true), cb_(cb), user_(user), cancel_(cancel) {}

  void push(int32_t id, std::string& out) override {
    finish_pending();
    pending_ = id;
    has_pending_ = true;
    inner_.push(id, out);
  }
  void flush(std::string& out) override { inner_.flush(out); }
  bool is_eog(int32_t id) const override { return inner_.is_eog(id); }

  // generate()'s text callback: the text emitted right after the pending token's push belongs
  // to that token; anything later (released at the end) is reported with token -1.
  void on_text(std::string_view s) {
    if (has_pending_) {
      has_pending_ = false;
      report(pending_, s);
    } else {
      report(-1, s);
    }
  }
  void finish_pending() {
    if (has_pending_) {
      has_pending_ = false;
      report(pending_, std::string_view());
    }
  }

 private:
  void report(int32_t id, std::string_view s) {
    if (cb_ == nullptr || stopped_) return;
    if (cb_(id, s.data(), s.size(), user_) != 0) {
      stopped_ = true;
      cancel_->store(true);
    }
  }

  slm::TokenizerTextDecoder inner_;
  slm_token_callback cb_;
  void* user_;
  std::atomic<bool>* cancel_;
  int32_t pending_ = -1;
  bool has_pending_ = false;
  bool stopped_ = false;
};

slm_status check_sampling(const slm_generate_params& p) {
  const char* fn = "slm_generate";
  auto bad = [fn](const char* what) {
    return fail(SLM_ERR_INVALID_ARGUMENT, std::string(fn) + ": " + what);
  };
  // Written so that NaN fails every test.
  if (!(p.temperature >= 0.0f && p.temperature <= 100.0f)) return bad("temperature must be in [0, 100]");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return bad("top_p must be in (0, 1]");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return bad("min_p must be in [0, 1]");
  if (!(p.repeat_penalty > 0.0f && p.repeat_penalty <= 100.0f)) return bad("repeat_penalty must be in (0, 100]");
  if (p.n_stop > 0 && p.stop == nullptr) return bad("stop is NULL but n_stop > 0");
  for (size_t i = 0; i < p.n_stop; ++i) {
    if (p.stop[i] == nullptr) return bad(("stop[" + std::to_string(i) + "] is NULL").c_str());
  }
  return SLM_OK;
}

slm_finish_reason finish_reason(slm::FinishReason r) {
  switch (r) {
    case slm::FinishReason::stop: return SLM_FINISH_STOP;
    case slm::FinishReason::length: return SLM_FINISH_LENGTH;
    case slm::FinishReason::eos: return SLM_FINISH_EOS;
    case slm::FinishReason::cancelled: return SLM_FINISH_CANCELLED;
  }
  return SLM_FINISH_LENGTH;
}

}  // namespace

extern "C" {

int slm_api_version(void) { return SLM_API_VERSION; }

const char* slm_last_error(void) { return t_last_error.c_str(); }

const char* slm_status_name(int status) {
  switch (status) {
    case SLM_OK: return "ok";
    case SLM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case SLM_ERR_LOAD: return "load failed";
    case SLM_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case SLM_ERR_GENERATE: return "generation failed";
    case SLM_ERR_TEMPLATE: return "chat template failed";
    case SLM_ERR_OUT_OF_MEMORY: return "out of memory";
    case SLM_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

slm_model_params slm_model_default_params(void) {
  slm_model_params p;
  p.tokenizer_path = nullptr;
  return p;
}

slm_status slm_model_load(const char* path, const slm_model_params* params, slm_model** out) {
  if (out != nullptr) *out = nullptr;
  return guarded("slm_model_load", [&]() -> slm_status {
    if (out == nullptr) return null_arg("slm_model_load", "out");
    if (path == nullptr) return null_arg("slm_model_load", "path");
    slm::LoadOptions lo;
    if (params != nullptr && params->tokenizer_path != nullptr) {
      lo.tokenizer_path = params->tokenizer_path;
    }
    auto m = slm::Model::load(path, lo);
    if (!m.ok()) return fail(SLM_ERR_LOAD, m.message());
    if (!(*m)->has_tokenizer()) {
      if ((*m)->config().source_format == "llama2c") {
        return fail(SLM_ERR_LOAD, std::string(path) +
                                      ": llama2.c checkpoints keep their tokenizer in a separate "
                                      "file: set slm_model_params.tokenizer_path");
      }
      return fail(SLM_ERR_LOAD, std::string(path) + ": the model has no tokenizer");
    }
    auto h = std::make_unique<slm_model>();
    h->model = std::move(*m);
    *out = h.release();
    return SLM_OK;
  });
}

void slm_model_free(slm_model* model) { delete model; }

int32_t slm_model_n_vocab(const slm_model* model) {
  return model ? static_cast<int32_t>(model->model->config().n_vocab) : -1;
}
int64_t slm_model_n_ctx_train(const slm_model* model) {
  return model ? model->model->config().n_ctx_train : -1;
}
int32_t slm_model_bos(const slm_model* model) {
  return model ? model->model->tokenizer().bos_id() : -1;
}
int32_t slm_model_eos(const slm_model* model) {
  return model ? model->model->tokenizer().eos_id() : -1;
}

slm_status slm_tokenize(const slm_model* model, const char* text, size_t text_len,
                        int add_special, int parse_special, int32_t* ids, size_t capacity,
                        size_t* n_ids) {
  const char* fn = "slm_tokenize";
  return guarded(fn, [&]() -> slm_status {
    if (model == nullptr) return null_arg(fn, "model");
    if (n_ids == nullptr) return null_arg(fn, "n_ids");
    if (text == nullptr && text_len > 0) return null_arg(fn, "text");
    std::string_view sv(text ? text : "", text ? text_len : 0);
    std::vector<int32_t> v = model->model->tokenizer().encode(sv, add_special != 0, parse_special != 0);
    *n_ids = v.size();
    if (ids == nullptr && capacity == 0) return SLM_OK;
    if (ids == nullptr) return null_arg(fn, "ids");
    if (capacity < v.size()) {
      return fail(SLM_ERR_BUFFER_TOO_SMALL, std::string(fn) + ": " + std::to_string(v.size()) +
                                                " tokens, room for " + std::to_string(capacity));
    }
    std::copy(v.begin(), v.end(), ids);
    return SLM_OK;
  });
}

slm_status slm_detokenize(const slm_model* model, const int32_t* ids, size_t n_ids,
                          int render_special, char* buf, size_t capacity, size_t* len) {
  const char* fn = "slm_detokenize";
  return guarded(fn, [&]() -> slm_status {
    if (model == nullptr) return null_arg(fn, "model");
    if (len == nullptr) return null_arg(fn, "len");
    if (ids == nullptr && n_ids > 0) return null_arg(fn, "ids");
    const slm::Tokenizer& tok = model->model->tokenizer();
    for (size_t i = 0; i < n_ids; ++i) {
      if (ids[i] < 0 || ids[i] >= tok.vocab_size()) {
        return fail(SLM_ERR_INVALID_ARGUMENT,
                    std::string(fn) + ": ids[" + std::to_string(i) + "] = " +
                        std::to_string(ids[i]) + " is not in [0, " +
                        std::to_string(tok.vocab_size()) + ")");
      }
    }
    const std::string text = tok.decode(std::span<const int32_t>(ids, n_ids), render_special != 0);
    return write_text(fn, text, buf, capacity, len);
  });
}

slm_status slm_apply_chat_template(const slm_model* model, const slm_chat_message* messages,
                                   size_t n_messages, int add_generation_prompt, char* buf,
                                   size_t capacity, size_t* len) {
  const char* fn = "slm_apply_chat_template";
  return guarded(fn, [&]() -> slm_status {
    if (model == nullptr) return null_arg(fn, "model");
    if (len == nullptr) return null_arg(fn, "len");
    if (messages == nullptr && n_messages > 0) return null_arg(fn, "messages");
    const slm::Model& m = *model->model;
    if (m.chat_template().empty()) return fail(SLM_ERR_TEMPLATE, std::string(fn) + ": the model has no chat template");
    nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
    for (size_t i = 0; i < n_messages; ++i) {
      if (messages[i].role == nullptr || messages[i].content == nullptr) {
        return fail(SLM_ERR_INVALID_ARGUMENT, std::string(fn) + ": messages[" +
                                                  std::to_string(i) + "] has a NULL role or content");
      }
      msgs.push_back({{"role", messages[i].role}, {"content", messages[i].content}});
    }
    slm::ChatOptions co;
    co.add_generation_prompt = add_generation_prompt != 0;
    const slm::Tokenizer& tok = m.tokenizer();
    if (tok.bos_id() >= 0) co.bos_token = tok.token_text(tok.bos_id());
    if (tok.eos_id() >= 0) co.eos_token = tok.token_text(tok.eos_id());
    auto r = slm::render_chat(m.chat_template(), msgs, co);
    if (!r.ok()) return fail(SLM_ERR_TEMPLATE, std::string(fn) + ": " + r.message());
    return write_text(fn, *r, buf, capacity, len);
  });
}

slm_context_params slm_context_default_params(void) {
  slm_context_params p;
  p.n_ctx = 0;
  p.n_threads = 0;
  return p;
}

slm_status slm_context_create(const slm_model* model, const slm_context_params* params,
                              slm_context** out) {
  const char* fn = "slm_context_create";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, [&]() -> slm_status {
    if (out == nullptr) return null_arg(fn, "out");
    if (model == nullptr) return null_arg(fn, "model");
    const slm_context_params p = params ? *params : slm_context_default_params();
    // Bounds keep a typo from allocating a KV cache the size of the machine.
    if (p.n_ctx < 0 || p.n_ctx > (int64_t{1} << 20)) {
      return fail(SLM_ERR_INVALID_ARGUMENT, std::string(fn) + ": n_ctx must be in [0, 1048576]");
    }
    if (p.n_threads < 0 || p.n_threads > 1024) {
      return fail(SLM_ERR_INVALID_ARGUMENT, std::string(fn) + ": n_threads must be in [0, 1024]");
    }
    const int64_t train = model->model->config().n_ctx_train;
    const int64_t n_ctx = p.n_ctx > 0 ? p.n_ctx : (train > 0 ? std::min<int64_t>(train, 4096) : 2048);
    auto c = std::make_unique<slm_context>();
    c->model = model;
    slm::SessionOptions so;
    so.n_ctx = n_ctx;
    so.n_threads = p.n_threads;
    c->session = std::make_unique<slm::Session>(*model->model, so);
    *out = c.release();
    return SLM_OK;
  });
}

void slm_context_free(slm_context* ctx) { delete ctx; }

int64_t slm_context_n_ctx(const slm_context* ctx) { return ctx ? ctx->session->n_ctx() : -1; }

slm_generate_params slm_generate_default_params(void) {
  const slm::SamplerParams d;
  slm_generate_params p;
  p.max_tokens = 256;
  p.temperature = d.temperature;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.min_p = d.min_p;
  p.repeat_penalty = d.repeat_penalty;
  p.seed = SLM_SEED_RANDOM;
  p.stop = nullptr;
  p.n_stop = 0;
  p.add_special = 1;
  p.parse_special = 1;
  return p;
}

slm_status slm_generate(slm_context* ctx, const char* prompt, const slm_generate_params* params,
                        slm_token_callback callback, void* user_data,
                        slm_generate_result* result) {
  const char* fn = "slm_generate";
  return guarded(fn, [&]() -> slm_status {
    if (ctx == nullptr) return null_arg(fn, "ctx");
    if (prompt == nullptr) return null_arg(fn, "prompt");
    const slm_generate_params p = params ? *params : slm_generate_default_params();
    if (slm_status s = check_sampling(p); s != SLM_OK) return s;
    const slm::Model& model = *ctx->model->model;
    const slm::Tokenizer& tok = model.tokenizer();

    slm::GenerateOptions g;
    g.sampling.temperature = p.temperature;
    g.sampling.top_k = p.top_k;
    g.sampling.top_p = p.top_p;
    g.sampling.min_p = p.min_p;
    g.sampling.repeat_penalty = p.repeat_penalty;
    g.sampling.seed = p.seed;  // SLM_SEED_RANDOM == SamplerParams::k_random_seed
    g.max_tokens = p.max_tokens;
    for (size_t i = 0; i < p.n_stop; ++i) g.stop.emplace_back(p.stop[i]);
    g.extra_eos = model.extra_eos_ids();
    std::atomic<bool> cancel{false};
    g.cancel = &cancel;

    const std::vector<int32_t> ids = tok.encode(prompt, p.add_special != 0, p.parse_special != 0);
    if (ids.empty()) return fail(SLM_ERR_INVALID_ARGUMENT, std::string(fn) + ": the prompt has no tokens");
    ctx->session->truncate(0);
    slm::SessionLogits source(*ctx->session);
    ReportingDecoder decoder(tok, callback, user_data, &cancel);
    auto r = slm::generate(source, decoder, ids, g,
                           [&decoder](std::string_view s) { decoder.on_text(s); });
    if (!r.ok()) return fail(SLM_ERR_GENERATE, std::string(fn) + ": " + r.message());
    decoder.finish_pending();
    if (result != nullptr) {
      result->n_prompt = r->n_prompt;
      result->n_generated = r->n_generated;
      result->finish_reason = finish_reason(r->finish_reason);
      result->prompt_ms = r->prompt_ms;
      result->gen_ms = r->gen_ms;
      result->seed = r->seed;
    }
    return SLM_OK;
  });
}

}  // extern "C"
