// Jinja language features against the reference (@huggingface/jinja via node): every snippet in
// tests/data/jinja/features.json renders byte-identically or fails in both; plus the render
// limits, clock injection and hostile-input behaviour, which need no reference.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "template/chat.h"
#include "template/jinja.h"
#include "test_util.h"

namespace {

using nlohmann::ordered_json;
using slm::jinja::Limits;
using slm::jinja::RenderOptions;
using slm::jinja::Template;

constexpr int64_t k_now_seconds = 1721995200;  // 2024-07-26 12:00 UTC

std::string base64_decode(const std::string& in) {
  static const std::string k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    size_t v = k.find(c);
    if (v == std::string::npos) continue;
    buf = (buf << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xFF);
    }
  }
  return out;
}

struct RefResult {
  bool ok;
  std::string out;  // rendering, or error message
};

// Renders each (template, context) with the reference in one node process.
std::vector<RefResult> reference_render(const std::vector<std::string>& templates, const ordered_json& context,
                                        std::string* err) {
  ordered_json spec;
  spec["now_ms"] = k_now_seconds * 1000;
  spec["templates"] = ordered_json::object();
  spec["cases"] = ordered_json::array();
  for (size_t i = 0; i < templates.size(); ++i) {
    spec["templates"][std::to_string(i)] = templates[i];
    spec["cases"].push_back({{"template", std::to_string(i)}, {"context", context}});
  }
  slm::test::TempDir tmp;
  slm::test::write_text(tmp.file("cases.json"), spec.dump());
  auto r = slm::test::run("TZ=UTC " + slm::test::node_cmd() + " " +
                          slm::test::sh_quote(slm::test::source_dir() + "/tests/ref/jinja_render.mjs") +
                          " --batch " + slm::test::sh_quote(tmp.file("cases.json")));
  std::vector<RefResult> out;
  if (r.exit_code != 0) {
    *err = "node reference failed: " + r.err;
    return out;
  }
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (!j.is_array() || j.size() != templates.size()) {
    *err = "node reference returned malformed output";
    return out;
  }
  for (const auto& e : j) {
    bool ok = e["ok"].get<bool>();
    out.push_back({ok, ok ? base64_decode(e["out_b64"].get<std::string>()) : e["error"].get<std::string>()});
  }
  return out;
}

TEST(JinjaReference, FeatureSnippetsMatch) {
  auto spec = ordered_json::parse(slm::test::read_text(slm::test::source_dir() + "/tests/data/jinja/features.json"));
  std::vector<std::string> snippets;
  for (const auto& s : spec["snippets"]) snippets.push_back(s.get<std::string>());
  std::string err;
  auto ref = reference_render(snippets, spec["context"], &err);
  ASSERT_TRUE(err.empty()) << err;
  RenderOptions ro;
  ro.now_unix_seconds = k_now_seconds;
  ro.utc = true;
  int identical = 0, both_error = 0;
  for (size_t i = 0; i < snippets.size(); ++i) {
    auto t = Template::parse(snippets[i]);
    slm::Expected<std::string> out = t.ok() ? t->render(spec["context"], ro) : slm::Expected<std::string>(t.status());
    if (!ref[i].ok) {
      EXPECT_FALSE(out.ok()) << "snippet " << i << ": " << snippets[i] << "\nreference error: " << ref[i].out
                             << "\nslm rendered: " << *out;
      both_error += !out.ok();
      continue;
    }
    ASSERT_TRUE(out.ok()) << "snippet " << i << ": " << snippets[i] << "\nslm error: " << out.message();
    EXPECT_EQ(*out, ref[i].out) << "snippet " << i << ": " << snippets[i];
    identical += *out == ref[i].out;
  }
  std::printf("[ jinja ] %d identical, %d both-error, of %zu snippets\n", identical, both_error, snippets.size());
}

slm::Expected<std::string> render(const std::string& src, const ordered_json& ctx = ordered_json::object(),
                                  const Limits& limits = {}) {
  auto t = Template::parse(src, limits);
  if (!t.ok()) return t.status();
  return t->render(ctx);
}

TEST(JinjaLimits, HugeRangeIsAnError) {
  auto r = render("{% for i in range(100000000) %}x{% endfor %}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("max_loop_iterations"), std::string::npos) << r.message();
}

TEST(JinjaLimits, NestedLoopsCountTogether) {
  Limits l;
  l.max_loop_iterations = 1000;
  auto r = render("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", {}, l);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("max_loop_iterations"), std::string::npos) << r.message();
  EXPECT_TRUE(render("{% for i in range(10) %}{% for j in range(10) %}{% endfor %}{% endfor %}", {}, l).ok());
}

TEST(JinjaLimits, DeepMacroRecursionIsAnError) {
  auto r = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("recursion"), std::string::npos) << r.message();
}

TEST(JinjaLimits, StringMultiplicationIsRejected) {
  // The reference has no string repetition; either way there is no gigabyte string.
  EXPECT_FALSE(render("{{ 'a' * 10**9 }}").ok());
}

TEST(JinjaLimits, DoublingStringsHitOutputLimit) {
  Limits l;
  l.max_output_bytes = 1 << 20;
  auto r = render("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}", {}, l);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("max_output_bytes"), std::string::npos) << r.message();
}

TEST(JinjaLimits, OutputLimit) {
  Limits l;
  l.max_output_bytes = 1000;
  EXPECT_FALSE(render("{% for i in range(2000) %}x{% endfor %}", {}, l).ok());
  EXPECT_TRUE(render("{% for i in range(500) %}x{% endfor %}", {}, l).ok());
}

TEST(JinjaLimits, TemplateSizeLimit) {
  Limits l;
  l.max_template_bytes = 10;
  EXPECT_FALSE(Template::parse("hello world, longer than ten", l).ok());
}

TEST(JinjaLimits, DeepNestingIsAnErrorNotACrash) {
  EXPECT_FALSE(render("{{ " + std::string(100000, '(')).ok());
  EXPECT_FALSE(render("{{ " + std::string(5000, '[') + std::string(5000, ']') + " }}").ok());
  EXPECT_FALSE(render("{{ " + std::string(10000, '-') + "1 }}").ok());
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if true %}";
  EXPECT_FALSE(render(ifs).ok());
  // Deeply nested values built at run time.
  EXPECT_FALSE(render("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|tojson }}").ok());
  // A namespace that contains itself.
  EXPECT_FALSE(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}").ok());
  ordered_json deep = 1;
  for (int i = 0; i < 600; ++i) deep = ordered_json::array({deep});
  EXPECT_FALSE(render("{{ x }}", {{"x", deep}}).ok());
}

TEST(JinjaLimits, QuadraticWorkIsBounded) {
  Limits l;
  l.max_loop_iterations = 200000;
  // 2e5 x 2e5 membership tests would take minutes; the work budget stops it.
  auto r = render("{% set xs = range(100000)|list %}{% for i in xs %}{% if i in xs %}{% endif %}{% endfor %}", {}, l);
  EXPECT_FALSE(r.ok());
}

TEST(Jinja, RaiseExceptionMessageIsReported) {
  auto r = render("{{ raise_exception('Conversation roles must alternate') }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("Conversation roles must alternate"), std::string::npos);
}

TEST(Jinja, ParseErrorsAreStatuses) {
  for (const char* bad : {"{{", "{% for %}", "{{ 1 + }}", "{% if x %}", "{# open", "{{ 'a }}", "{{ \\ }}",
                          "{% endfor %}", "{{ x|f(1).y }}", "{% macro m(a, a) %}{% endmacro %}"}) {
    auto t = Template::parse(bad);
    if (t.ok()) {
      EXPECT_FALSE(t->render(ordered_json::object()).ok()) << bad;
    }
  }
}

TEST(Jinja, StrftimeNowIsInjectable) {
  auto t = Template::parse("{{ strftime_now('%d %b %Y') }}");
  ASSERT_TRUE(t.ok());
  RenderOptions ro;
  ro.now_unix_seconds = 0;
  ro.utc = true;
  auto r = t->render(ordered_json::object(), ro);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "01 Jan 1970");
}

TEST(Jinja, InvalidUtf8DoesNotCrash) {
  std::string bad = "caf\xC3 \xFF\xFE {{ x }} \xE2\x82";
  auto t = Template::parse(bad);
  ASSERT_TRUE(t.ok()) << t.message();
  nlohmann::json ctx;
  ctx["x"] = std::string("\xF0\x9F\x98");  // truncated emoji
  auto r = t->render(ctx);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_NE(r->find("\xEF\xBF\xBD"), std::string::npos);  // U+FFFD replaces the bad bytes
}

TEST(Jinja, ContextMayNotRedefineGlobals) {
  EXPECT_FALSE(render("{{ 1 }}", {{"range", 1}}).ok());
  EXPECT_FALSE(render("{{ 1 }}", {{"namespace", 1}}).ok());
}

TEST(Jinja, OrderedContextKeepsKeyOrder) {
  ordered_json ctx = ordered_json::parse(R"({"tools": {"zeta": 1, "alpha": 2}})");
  auto r = render("{{ tools|tojson }}", ctx);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "{\"zeta\": 1, \"alpha\": 2}");
}

TEST(ChatHelper, BuildsTransformersContext) {
  slm::ChatOptions o;
  o.add_generation_prompt = true;
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  o.extra = {{"enable_thinking", false}, {"bos_token", "ignored"}};
  auto msgs = ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  auto r = slm::render_chat(
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}"
      "{% if add_generation_prompt %}[assistant]{% endif %}{{ enable_thinking }}{{ tools is defined }}",
      msgs, o);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "<s>[user]hi</s>[assistant]falsefalse");
  o.tools = ordered_json::array();
  auto r2 = slm::render_chat("{{ tools is defined }}", msgs, o);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2, "true");
  EXPECT_FALSE(slm::render_chat("{{ x }}", ordered_json::object(), o).ok());
}

}  // namespace
