// libFuzzer target: parse and render arbitrary Jinja source with a fixed chat-like context and
// small limits; any input must end in output or an error Status, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "template/jinja.h"

namespace {

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "sys"},
      {"role": "user", "content": "héllo 😀\n"},
      {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
      {"role": "tool", "content": "{\"x\": [1, 2.5, null]}"}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "n": 3, "f": -0.5
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  slm::jinja::Limits limits;
  limits.max_loop_iterations = 5000;
  limits.max_recursion_depth = 16;
  limits.max_output_bytes = 64 << 10;
  limits.max_template_bytes = 64 << 10;
  auto t = slm::jinja::Template::parse(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!t.ok()) return 0;
  slm::jinja::RenderOptions ro;
  ro.now_unix_seconds = 0;
  ro.utc = true;
  (void)t->render(context(), ro);
  return 0;
}
