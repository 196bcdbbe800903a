// Chat prompt rendering: the context transformers' apply_chat_template builds, then Jinja.
#include "template/chat.h"

namespace slm {

nlohmann::ordered_json chat_context(const nlohmann::ordered_json& messages, const ChatOptions& o) {
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  if (o.tools) ctx["tools"] = *o.tools;
  ctx["add_generation_prompt"] = o.add_generation_prompt;
  ctx["bos_token"] = o.bos_token;
  ctx["eos_token"] = o.eos_token;
  if (o.extra.is_object()) {
    // Explicit options win over extra variables of the same name.
    for (const auto& [k, v] : o.extra.items()) {
      if (!ctx.contains(k)) ctx[k] = v;
    }
  }
  return ctx;
}

Expected<std::string> render_chat(const std::string& tmpl, const nlohmann::ordered_json& messages,
                                  const ChatOptions& o) {
  if (!messages.is_array()) return error("chat: messages must be a JSON array");
  if (!o.extra.is_null() && !o.extra.is_object()) return error("chat: extra variables must be a JSON object");
  SLM_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::parse(tmpl, o.limits));
  return t.render(chat_context(messages, o), o.render);
}

Expected<std::string> render_chat(const std::string& tmpl, const nlohmann::json& messages,
                                  const ChatOptions& o) {
  return render_chat(tmpl, nlohmann::ordered_json(messages), o);
}

}  // namespace slm
