// Chat prompts from a model's Jinja chat template: builds the variables the way Hugging Face's
// apply_chat_template does (messages, add_generation_prompt, bos/eos, tools) and renders.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "template/jinja.h"

namespace slm {

struct ChatOptions {
  bool add_generation_prompt = false;
  std::string bos_token;
  std::string eos_token;
  // Tool definitions; given to the template only when set, as transformers does.
  std::optional<nlohmann::ordered_json> tools;
  // Further template variables (a JSON object), e.g. enable_thinking or date_string.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  jinja::Limits limits;
  jinja::RenderOptions render;
};

// messages is a JSON array of {role, content, ...}. Objects keep their key order (which
// |tojson shows) only when passed as ordered_json.
Expected<std::string> render_chat(const std::string& tmpl, const nlohmann::ordered_json& messages,
                                  const ChatOptions& o);
Expected<std::string> render_chat(const std::string& tmpl, const nlohmann::json& messages,
                                  const ChatOptions& o);

// The variables render_chat passes to the template.
nlohmann::ordered_json chat_context(const nlohmann::ordered_json& messages, const ChatOptions& o);

}  // namespace slm
