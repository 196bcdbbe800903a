// llama2.c tokenizer.bin (shared/models/tok512.bin): ids and decoded text against an
// independent Python implementation of run.c's encode/decode (tests/ref/llama2c_tok.py).
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

using nlohmann::json;

TEST(Llama2cTokenizer, MatchesPythonReference) {
  const std::string path = test::shared_dir() + "/models/tok512.bin";
  auto tok = Tokenizer::from_llama2c(path, 512);
  ASSERT_TRUE(tok.ok()) << tok.message();
  EXPECT_EQ((*tok)->vocab_size(), 512);
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);

  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "The little dog ran to the park and played with a ball. ";
  const std::vector<std::string> texts = {
      "Once upon a time",
      "Once upon a time, there was a little girl named Lily.",
      "Hello world",
      "",
      " ",
      "   leading and trailing spaces   ",
      "Tim said, \"Let's play!\" and they laughed.\nThe end.",
      "\ttabs\tand\nnewlines\n\n",
      "1234567890 3.14159",
      "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
      "ALL CAPS and MiXeD CaSe",
      long_text,
  };
  auto ref = test::run(test::python_exe() + " " +
                           test::sh_quote(test::source_dir() + "/tests/ref/llama2c_tok.py") + " " +
                           test::sh_quote(path) + " 512",
                       json(texts).dump());
  ASSERT_EQ(ref.exit_code, 0) << "python reference failed: " << ref.err;
  const json r = json::parse(ref.out);
  const auto want_ids = r.at("ids").get<std::vector<std::vector<int32_t>>>();
  const auto want_text = r.at("text").get<std::vector<std::string>>();
  ASSERT_EQ(want_ids.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ids = (*tok)->encode(texts[i], true, false);
    EXPECT_EQ(ids, want_ids[i]) << "'" << texts[i] << "'";
    EXPECT_EQ((*tok)->decode(ids), want_text[i]) << "'" << texts[i] << "'";
  }
}

TEST(Llama2cTokenizer, RejectsBadFiles) {
  test::TempDir dir;
  const std::string path = test::shared_dir() + "/models/tok512.bin";
  const std::string bytes = test::read_text(path);
  // Truncated in the middle of the token table.
  test::write_text(dir.file("trunc.bin"), bytes.substr(0, bytes.size() / 2));
  EXPECT_FALSE(Tokenizer::from_llama2c(dir.file("trunc.bin"), 512).ok());
  // More tokens than the file holds.
  EXPECT_FALSE(Tokenizer::from_llama2c(path, 513).ok());
  EXPECT_FALSE(Tokenizer::from_llama2c(path, 0).ok());
  EXPECT_FALSE(Tokenizer::from_llama2c(path, -5).ok());
  EXPECT_FALSE(Tokenizer::from_llama2c(dir.file("missing.bin"), 512).ok());
  // A negative token length.
  std::string bad = bytes;
  const int32_t neg = -7;
  std::memcpy(&bad[4 + 4], &neg, 4);
  test::write_text(dir.file("neg.bin"), bad);
  EXPECT_FALSE(Tokenizer::from_llama2c(dir.file("neg.bin"), 512).ok());
}

}  // namespace
}  // namespace slm
