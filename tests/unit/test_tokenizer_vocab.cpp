// Tokenizer ids against the published reference tokenizations of real vocabularies
// (shared/tokenizer/ggml-vocab-*.gguf with .inp/.out produced by the Hugging Face tokenizers).
#include <gtest/gtest.h>

#include <sstream>

#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

// .inp: strings each followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per string.
std::vector<VocabCase> load_cases(const std::string& family) {
  const std::string base = test::shared_dir() + "/tokenizer/ggml-vocab-" + family + ".gguf";
  const std::string inp = test::read_text(base + ".inp");
  const std::string out = test::read_text(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<VocabCase> cases;
  size_t pos = 0;
  for (size_t hit; (hit = inp.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    cases.push_back({inp.substr(pos, hit - pos), {}});
  }
  EXPECT_EQ(pos, inp.size()) << "trailing text after the last separator";
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line)) {
    if (i >= cases.size()) {
      ADD_FAILURE() << "more .out lines than .inp cases";
      break;
    }
    std::istringstream ids(line);
    int32_t id = 0;
    while (ids >> id) cases[i].ids.push_back(id);
    ++i;
  }
  EXPECT_EQ(i, cases.size()) << ".out lines vs .inp cases";
  return cases;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    s += ' ';
    s += std::to_string(id);
  }
  return s;
}

class VocabTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabTest, MatchesReferenceIds) {
  const std::string family = GetParam();
  auto gguf = GgufFile::open(test::shared_dir() + "/tokenizer/ggml-vocab-" + family + ".gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.message();
  auto tok = Tokenizer::from_gguf(*gguf);
  ASSERT_TRUE(tok.ok()) << tok.message();
  const auto cases = load_cases(family);
  ASSERT_EQ(cases.size(), 46u);
  size_t passed = 0;
  for (const auto& c : cases) {
    const auto got = (*tok)->encode(c.text, false, false);
    if (got == c.ids) {
      ++passed;
    } else {
      ADD_FAILURE() << family << ": text '" << c.text << "'\n  want" << show(c.ids)
                    << "\n  got " << show(got);
    }
  }
  std::printf("%s: %zu/%zu reference cases match\n", family.c_str(), passed, cases.size());
  EXPECT_EQ(passed, cases.size());
}

// Decoding the encoding gives the text back: always for byte-level BPE; for SentencePiece up
// to the dummy prefix (decode drops it) when the text has no characters outside the vocab.
// (WordPiece is lossy: it lowercases and drops accents, so bert-bge is not in this suite.)
class RoundTripTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTripTest, DecodeEncodeIsIdentity) {
  const std::string family = GetParam();
  auto gguf = GgufFile::open(test::shared_dir() + "/tokenizer/ggml-vocab-" + family + ".gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.message();
  auto tok = Tokenizer::from_gguf(*gguf);
  ASSERT_TRUE(tok.ok()) << tok.message();
  for (const auto& c : load_cases(family)) {
    const auto ids = (*tok)->encode(c.text, false, false);
    EXPECT_EQ((*tok)->decode(ids), c.text) << family;
  }
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& ch : n) {
    if (ch == '-') ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(Families, VocabTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "starcoder", "bert-bge"),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Lossless, RoundTripTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "starcoder"), param_name);

}  // namespace
}  // namespace slm
