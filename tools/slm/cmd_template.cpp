// `slm template`: prints the exact prompt a model's chat template makes of a conversation.
#include <memory>
#include <nlohmann/json.hpp>

#include "app/model_files.h"
#include "commands.h"
#include "core/mmap.h"
#include "template/chat.h"

namespace slm::cli {

namespace {

struct TemplateOptions {
  std::string source;  // model path or .jinja file
  std::string tokenizer;
  std::string messages_path;
  bool add_generation_prompt = false;
  std::string bos, eos;
  bool bos_set = false, eos_set = false;
};

// A conversation file is a JSON array of messages, or an object with "messages" (and
// optionally "tools" and other template variables).
Status parse_conversation(const std::string& path, nlohmann::ordered_json* messages,
                          nlohmann::ordered_json* extra) {
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(path, 64ull << 20));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (j.is_discarded()) return error("%s: not valid JSON", path.c_str());
  if (j.is_array()) {
    *messages = std::move(j);
    *extra = nlohmann::ordered_json::object();
  } else if (j.is_object() && j.contains("messages") && j["messages"].is_array()) {
    *messages = j["messages"];
    j.erase("messages");
    *extra = std::move(j);
  } else {
    return error("%s: expected a JSON array of messages or an object with \"messages\"", path.c_str());
  }
  for (const auto& m : *messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return error("%s: every message needs a string \"role\"", path.c_str());
    }
  }
  return Status();
}

int run_template(const TemplateOptions& o) {
  std::string tmpl, bos, eos;
  auto fmt = detect_model_format(o.source);
  if (!fmt.ok()) return fail(fmt.status());
  if (*fmt == ModelFormat::llama2c && o.tokenizer.empty()) {
    // Not a model: a template file.
    auto text = read_file(o.source, 1ull << 20);
    if (!text.ok()) return fail(text.status());
    tmpl = *text;
  } else {
    auto meta = load_model_meta(o.source, o.tokenizer);
    if (!meta.ok()) return fail(meta.status());
    if (meta->chat_template.empty()) {
      return fail(error("%s: the model has no chat template", o.source.c_str()));
    }
    tmpl = meta->chat_template;
    bos = meta->bos_token;
    eos = meta->eos_token;
  }
  if (o.bos_set) bos = o.bos;
  if (o.eos_set) eos = o.eos;

  nlohmann::ordered_json messages, extra;
  if (Status s = parse_conversation(o.messages_path, &messages, &extra); !s.ok()) return fail(s);
  ChatOptions co;
  co.add_generation_prompt = o.add_generation_prompt;
  co.bos_token = bos;
  co.eos_token = eos;
  if (extra.contains("tools")) {
    co.tools = extra["tools"];
    extra.erase("tools");
  }
  co.extra = extra;
  auto out = render_chat(tmpl, messages, co);
  if (!out.ok()) return fail(out.status());
  return std::fwrite(out->data(), 1, out->size(), stdout) == out->size() ? 0 : 1;
}

}  // namespace

void add_template(CLI::App& app) {
  auto o = std::make_shared<TemplateOptions>();
  CLI::App* sub = app.add_subcommand(
      "template", "Print the exact prompt the model's chat template makes of a conversation");
  sub->add_option("MODEL_OR_JINJA_FILE", o->source, "a model, or a Jinja template file")->required();
  sub->add_option("--messages", o->messages_path,
                  "JSON file: an array of {role, content} or {\"messages\": [...], \"tools\": [...]}")
      ->required();
  sub->add_flag("--add-generation-prompt", o->add_generation_prompt,
                "end with the header of an assistant turn");
  sub->add_option("--bos-token", o->bos, "bos_token value (default: the model's)")
      ->each([o](const std::string&) { o->bos_set = true; });
  sub->add_option("--eos-token", o->eos, "eos_token value (default: the model's)")
      ->each([o](const std::string&) { o->eos_set = true; });
  sub->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin");
  sub->callback([o] { exit_code() = run_template(*o); });
}
SLM_REGISTER_COMMAND(add_template, 50);

}  // namespace slm::cli
