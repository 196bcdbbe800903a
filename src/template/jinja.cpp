// The public Jinja Template: parse once, render many times; turns the interpreter's internal
// errors (and allocation failures) into Status values at this boundary.
#include <new>

#include "template/jinja.h"
#include "template/jinja_internal.h"

namespace slm::jinja {

struct Template::Impl {
  Limits limits;
  std::vector<detail::NodePtr> program;
};

Template::Template() : impl_(std::make_unique<Impl>()) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

namespace {
// Parser nesting (blocks, brackets, operators) is bounded apart from macro recursion: chat
// templates nest a dozen levels, and the bound keeps the recursive descent's stack small.
constexpr int k_max_parse_depth = 200;
}  // namespace

Expected<Template> Template::parse(std::string_view source, const Limits& limits) {
  if (static_cast<int64_t>(source.size()) > limits.max_template_bytes) {
    return error("template: %zu bytes exceeds max_template_bytes (%lld)", source.size(),
                 static_cast<long long>(limits.max_template_bytes));
  }
  Template t;
  t.impl_->limits = limits;
  try {
    std::vector<detail::Token> tokens = detail::tokenize(source);
    t.impl_->program = detail::parse_tokens(tokens, k_max_parse_depth);
  } catch (const detail::JinjaError& e) {
    return error("template syntax: %s", e.msg.c_str());
  } catch (const std::bad_alloc&) {
    return error("template syntax: out of memory");
  }
  return t;
}

Expected<std::string> Template::render(const nlohmann::ordered_json& context,
                                       const RenderOptions& options) const {
  try {
    detail::Interp interp(impl_->limits, options);
    return interp.run(impl_->program, context);
  } catch (const detail::JinjaError& e) {
    return error("template render: %s", e.msg.c_str());
  } catch (const std::bad_alloc&) {
    return error("template render: out of memory");
  }
}

Expected<std::string> Template::render(const nlohmann::json& context) const {
  return render(nlohmann::ordered_json(context), RenderOptions{});
}

Expected<std::string> Template::render(const nlohmann::json& context,
                                       const RenderOptions& options) const {
  return render(nlohmann::ordered_json(context), options);
}

}  // namespace slm::jinja
