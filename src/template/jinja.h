// A sandboxed interpreter for the Jinja subset chat templates use: statements (for/if/set/
// macro/call/filter blocks), expressions, filters, tests, string/list/dict methods, namespace,
// slicing, raise_exception. Bounded loop iterations, recursion depth and output size.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace slm::jinja {

struct Limits {
  int64_t max_loop_iterations = 1'000'000;  // summed over all loops of one render
  int max_recursion_depth = 64;              // macro calls and nested evaluation
  int64_t max_output_bytes = 16ll << 20;
  int64_t max_template_bytes = 1ll << 20;
};

// How render() reads the outside world; the defaults use the real clock in local time.
struct RenderOptions {
  // The time strftime_now() formats, in seconds since the Unix epoch; negative = now.
  int64_t now_unix_seconds = -1;
  bool utc = false;  // format strftime_now() in UTC rather than the local time zone
};

class Template {
 public:
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  // Parse errors name the line and column.
  static Expected<Template> parse(std::string_view source, const Limits& limits = {});
  // Renders with the given variables (a JSON object). Errors include raise_exception's message.
  // Objects keep their keys' order (as |tojson shows it) only through the ordered_json
  // overloads; nlohmann::json itself sorts keys.
  Expected<std::string> render(const nlohmann::json& context) const;
  Expected<std::string> render(const nlohmann::json& context, const RenderOptions& options) const;
  Expected<std::string> render(const nlohmann::ordered_json& context,
                               const RenderOptions& options = {}) const;

 private:
  Template();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm::jinja
