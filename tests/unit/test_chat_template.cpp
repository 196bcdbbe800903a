// Every shared chat template x every conversation in tests/data/conversations x
// add_generation_prompt on/off, rendered by slm and by @huggingface/jinja (node): the outputs
// must be byte-identical, or both renderers must fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "template/chat.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

constexpr int64_t k_now_seconds = 1721995200;  // 2024-07-26 12:00 UTC, for strftime_now

std::vector<std::string> list_files(const std::string& dir, const std::string& ext) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ext) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string template_dir() { return slm::test::shared_dir() + "/chat-templates"; }
std::string conversation_dir() { return slm::test::source_dir() + "/tests/data/conversations"; }

std::vector<std::string> template_names() {
  std::vector<std::string> names;
  for (const auto& p : list_files(template_dir(), ".jinja")) names.push_back(fs::path(p).stem().string());
  return names;
}

// bos/eos as the model families define them (the templates print them verbatim).
std::pair<std::string, std::string> special_tokens(const std::string& name) {
  if (name.find("Llama-3") != std::string::npos) return {"<|begin_of_text|>", "<|eot_id|>"};
  if (name.find("gemma") != std::string::npos) return {"<bos>", "<eos>"};
  if (name.find("Qwen") != std::string::npos || name.find("SmolLM3") != std::string::npos) {
    return {"", "<|im_end|>"};
  }
  if (name.find("DeepSeek") != std::string::npos) return {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"};
  if (name.find("granite") != std::string::npos) return {"<|end_of_text|>", "<|end_of_text|>"};
  return {"<s>", "</s>"};
}

struct Case {
  std::string tmpl, conversation;
  bool agp;
  ordered_json context;
  bool ref_ok = false;
  std::string ref_out;  // output bytes, or the error message
};

struct Corpus {
  std::map<std::string, std::string> sources;
  std::vector<Case> cases;
  std::string setup_error;
};

std::string base64_decode(const std::string& in) {
  static const std::string k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
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

// Builds every case and renders all of them with one node process.
const Corpus& corpus() {
  static Corpus c = [] {
    Corpus c;
    std::vector<std::pair<std::string, ordered_json>> convs;
    for (const auto& p : list_files(conversation_dir(), ".json")) {
      convs.emplace_back(fs::path(p).stem().string(), ordered_json::parse(slm::test::read_text(p)));
    }
    for (const auto& name : template_names()) {
      c.sources[name] = slm::test::read_text(template_dir() + "/" + name + ".jinja");
      auto [bos, eos] = special_tokens(name);
      for (const auto& [cname, conv] : convs) {
        for (bool agp : {false, true}) {
          slm::ChatOptions o;
          o.add_generation_prompt = agp;
          o.bos_token = bos;
          o.eos_token = eos;
          if (conv.contains("tools")) o.tools = conv["tools"];
          if (conv.contains("extra")) o.extra = conv["extra"];
          c.cases.push_back(Case{name, cname, agp, slm::chat_context(conv["messages"], o), false, {}});
        }
      }
    }
    ordered_json spec;
    spec["now_ms"] = k_now_seconds * 1000;
    spec["templates"] = ordered_json::object();
    for (const auto& [name, src] : c.sources) spec["templates"][name] = src;
    spec["cases"] = ordered_json::array();
    for (const auto& k : c.cases) spec["cases"].push_back({{"template", k.tmpl}, {"context", k.context}});
    slm::test::TempDir tmp;
    slm::test::write_text(tmp.file("cases.json"), spec.dump());
    auto r = slm::test::run("TZ=UTC " + slm::test::node_cmd() + " " +
                            slm::test::sh_quote(slm::test::source_dir() + "/tests/ref/jinja_render.mjs") +
                            " --batch " + slm::test::sh_quote(tmp.file("cases.json")));
    if (r.exit_code != 0) {
      c.setup_error = "node reference failed (exit " + std::to_string(r.exit_code) + "): " + r.err;
      return c;
    }
    auto results = nlohmann::json::parse(r.out, nullptr, false);
    if (!results.is_array() || results.size() != c.cases.size()) {
      c.setup_error = "node reference returned malformed results";
      return c;
    }
    for (size_t i = 0; i < c.cases.size(); ++i) {
      c.cases[i].ref_ok = results[i]["ok"].get<bool>();
      c.cases[i].ref_out = c.cases[i].ref_ok ? base64_decode(results[i]["out_b64"].get<std::string>())
                                             : results[i]["error"].get<std::string>();
    }
    return c;
  }();
  return c;
}

class ChatTemplateReference : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateReference, MatchesHuggingFaceJinja) {
  const Corpus& c = corpus();
  ASSERT_TRUE(c.setup_error.empty()) << c.setup_error;
  const std::string& name = GetParam();
  int total = 0, identical = 0, both_error = 0;
  for (const auto& k : c.cases) {
    if (k.tmpl != name) continue;
    ++total;
    slm::ChatOptions o;
    o.render.now_unix_seconds = k_now_seconds;
    o.render.utc = true;
    auto t = slm::jinja::Template::parse(c.sources.at(name));
    ASSERT_TRUE(t.ok()) << t.message();
    auto out = t->render(k.context, o.render);
    std::string what = k.conversation + (k.agp ? " +gen" : "");
    if (!k.ref_ok) {
      EXPECT_FALSE(out.ok()) << what << ": reference failed (" << k.ref_out << ") but slm rendered:\n"
                             << *out;
      if (!out.ok()) ++both_error;
      continue;
    }
    if (!out.ok()) {
      ADD_FAILURE() << what << ": slm failed: " << out.message();
      continue;
    }
    EXPECT_EQ(*out, k.ref_out) << what;
    if (*out == k.ref_out) ++identical;
  }
  EXPECT_GT(total, 0);
  std::printf("[ template ] %s: %d/%d identical outputs, %d both-error, %d cases\n", name.c_str(),
              identical, total - both_error, both_error, total);
  RecordProperty("identical", identical);
  RecordProperty("both_error", both_error);
  RecordProperty("cases", total);
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s;
  for (char ch : info.param) s += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(SharedTemplates, ChatTemplateReference, ::testing::ValuesIn(template_names()),
                         param_name);

TEST(ChatTemplateReference, TemplatesAndConversationsExist) {
  EXPECT_GE(template_names().size(), 10u) << "no templates in " << template_dir();
  EXPECT_GE(list_files(conversation_dir(), ".json").size(), 8u);
}

}  // namespace
