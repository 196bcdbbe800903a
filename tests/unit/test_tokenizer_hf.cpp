// tokenizer.json loading: a tokenizer.json is built from each shared GGUF vocabulary by the
// reference script (SentencePiece BPE with byte_fallback, byte-level BPE, WordPiece), checked
// with Hugging Face's tokenizers.js against the published ids, and
// then slm's from_hf_json must produce the same ids.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

using nlohmann::json;

struct Cases {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> ids;
};

Cases load_cases(const std::string& family) {
  const std::string base = test::shared_dir() + "/tokenizer/ggml-vocab-" + family + ".gguf";
  const std::string inp = test::read_text(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  Cases c;
  size_t pos = 0;
  for (size_t hit; (hit = inp.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    c.texts.push_back(inp.substr(pos, hit - pos));
  }
  std::istringstream lines(test::read_text(base + ".out"));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ids(line);
    std::vector<int32_t> v;
    int32_t id = 0;
    while (ids >> id) v.push_back(id);
    c.ids.push_back(v);
  }
  return c;
}

class HfJsonTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfJsonTest, ReferenceAndSlmAgree) {
  const std::string family = GetParam();
  const Cases cases = load_cases(family);
  ASSERT_EQ(cases.texts.size(), 46u);
  ASSERT_EQ(cases.ids.size(), cases.texts.size());

  test::TempDir dir;
  const std::string script = test::source_dir() + "/tests/ref/tokenizers_ref.mjs";
  const std::string gguf = test::shared_dir() + "/tokenizer/ggml-vocab-" + family + ".gguf";
  const std::string json_path = dir.file("tokenizer.json");
  auto built = test::run(test::node_cmd() + " " + test::sh_quote(script) + " build " +
                         test::sh_quote(gguf) + " " + family + " " + test::sh_quote(json_path));
  ASSERT_EQ(built.exit_code, 0) << "reference build failed (node + @huggingface/gguf needed): "
                                << built.err;

  // 1. The reference library on that json reproduces the published ids.
  auto ref = test::run(test::node_cmd() + " " + test::sh_quote(script) + " encode " +
                           test::sh_quote(json_path),
                       json(cases.texts).dump());
  ASSERT_EQ(ref.exit_code, 0) << "tokenizers.js failed: " << ref.err;
  const json ref_ids = json::parse(ref.out);
  const auto plain = ref_ids.at("plain").get<std::vector<std::vector<int32_t>>>();
  const auto special = ref_ids.at("special").get<std::vector<std::vector<int32_t>>>();
  ASSERT_EQ(plain.size(), cases.texts.size());
  size_t ref_ok = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    if (plain[i] == cases.ids[i]) ++ref_ok;
  }
  EXPECT_EQ(ref_ok, cases.texts.size()) << "tokenizers.js disagrees with the published ids";

  // 2. slm loads the same json and gives the same ids, with and without special tokens.
  auto tok = Tokenizer::from_hf_json(test::read_text(json_path), "");
  ASSERT_TRUE(tok.ok()) << tok.message();
  size_t ok = 0;
  for (size_t i = 0; i < cases.texts.size(); ++i) {
    const auto got = (*tok)->encode(cases.texts[i], false, false);
    EXPECT_EQ(got, cases.ids[i]) << family << ": '" << cases.texts[i] << "'";
    EXPECT_EQ((*tok)->encode(cases.texts[i], true, false), special[i])
        << family << " with special tokens: '" << cases.texts[i] << "'";
    if (got == cases.ids[i]) ++ok;
  }
  std::printf("%s tokenizer.json: tokenizers.js %zu/%zu, slm %zu/%zu\n", family.c_str(), ref_ok,
              cases.texts.size(), ok, cases.texts.size());
}

INSTANTIATE_TEST_SUITE_P(Families, HfJsonTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "starcoder",
                                           "bert-bge"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace slm
