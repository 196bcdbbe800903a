// StreamDecoder and edge cases: characters split across tokens, invalid UTF-8 (checked against
// Python's decoder with errors="replace"), special-token parsing, empty/huge/invalid inputs,
// and malformed tokenizer.json.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

using nlohmann::json;

std::unique_ptr<Tokenizer> load_vocab(const std::string& family) {
  auto gguf = GgufFile::open(test::shared_dir() + "/tokenizer/ggml-vocab-" + family + ".gguf");
  EXPECT_TRUE(gguf.ok()) << gguf.message();
  if (!gguf.ok()) return nullptr;
  auto tok = Tokenizer::from_gguf(*gguf);
  EXPECT_TRUE(tok.ok()) << tok.message();
  return tok.ok() ? std::move(*tok) : nullptr;
}

std::unique_ptr<Tokenizer> load_tok512() {
  auto tok = Tokenizer::from_llama2c(test::shared_dir() + "/models/tok512.bin", 512);
  EXPECT_TRUE(tok.ok()) << tok.message();
  return tok.ok() ? std::move(*tok) : nullptr;
}

// Independent UTF-8 check (RFC 3629 well-formedness).
bool well_formed(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) { n = 1; cp = c; }
    else if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; }
    else return false;
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

std::string stream_all(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  StreamDecoder dec(tok);
  std::string out;
  for (int32_t id : ids) {
    const std::string part = dec.push(id);
    EXPECT_TRUE(well_formed(part)) << "chunk is not well-formed UTF-8";
    out += part;
  }
  const std::string tail = dec.flush();
  EXPECT_TRUE(well_formed(tail));
  return out + tail;
}

TEST(StreamDecoder, ByteFallbackCharactersAcrossTokens) {
  auto tok = load_tok512();
  ASSERT_TRUE(tok);
  const std::string text = "Hi \xf0\x9f\x98\x80 caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\xb6!";
  const auto ids = tok->encode(text, true, false);
  // The emoji is not in the 512-token vocabulary: it must have gone through byte tokens.
  int byte_tokens = 0;
  for (int32_t id : ids) byte_tokens += (id >= 3 && id < 259) ? 1 : 0;
  EXPECT_GE(byte_tokens, 8);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(stream_all(*tok, ids), text);
}

TEST(StreamDecoder, ByteLevelBpeCharactersAcrossTokens) {
  for (const char* family : {"gpt-2", "starcoder"}) {
    auto tok = load_vocab(family);
    ASSERT_TRUE(tok);
    const std::string text =
        "emoji \xf0\x9f\x98\x80\xf0\x9f\xa6\x99 and CJK \xe5\x9c\xa8\xe4\xb8\x8a and \xc3\xa9";
    const auto ids = tok->encode(text, false, false);
    EXPECT_EQ(tok->decode(ids), text);
    EXPECT_EQ(stream_all(*tok, ids), text) << family;
  }
}

TEST(StreamDecoder, SpmLeadingSpaceRuleMatchesDecode) {
  auto tok = load_vocab("llama-spm");
  ASSERT_TRUE(tok);
  for (const std::string text : {"Hello world", "  two leading spaces", "\xf0\x9f\xa6\x99 x"}) {
    for (bool bos : {false, true}) {
      const auto ids = tok->encode(text, bos, false);
      EXPECT_EQ(tok->decode(ids), text);
      EXPECT_EQ(stream_all(*tok, ids), tok->decode(ids));
    }
  }
}

// Byte tokens carrying invalid UTF-8: the stream output must equal Python's
// bytes.decode("utf-8", errors="replace") of the same bytes.
TEST(StreamDecoder, InvalidSequencesMatchPythonReplace) {
  auto tok = load_tok512();
  ASSERT_TRUE(tok);
  const std::vector<std::vector<int>> cases = {
      {0xE2, 0x82, 0x41},       {0xFF, 0x41, 0xFE},       {0x41, 0xF0, 0x9F, 0x98},
      {0xC0, 0xAF, 0x42},       {0xED, 0xA0, 0x80, 0x43}, {0xF4, 0x90, 0x80, 0x80},
      {0x80, 0x80, 0xE6, 0x97}, {0xE6, 0x97, 0xA5, 0x9C},  {0xF0, 0x9F, 0x98, 0x80, 0x98}};
  json bytes_json = json::array();
  for (const auto& c : cases) bytes_json.push_back(c);
  auto ref = test::run(test::python_exe() +
                           " -c 'import json,sys; print(json.dumps([bytes(c).decode(\"utf-8\", "
                           "\"replace\") for c in json.load(sys.stdin)]))'",
                       bytes_json.dump());
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  const auto want = json::parse(ref.out).get<std::vector<std::string>>();
  ASSERT_EQ(want.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<int32_t> ids;
    std::string raw;
    for (int b : cases[i]) {
      ids.push_back(b + 3);  // tok512: byte token <0xXX> is id XX + 3
      raw += static_cast<char>(b);
    }
    EXPECT_EQ(tok->decode(ids), raw);  // decode keeps the bytes as they are
    EXPECT_EQ(stream_all(*tok, ids), want[i]) << "case " << i;
  }
}

TEST(TokenizerEdge, EmptyAndSpaces) {
  auto spm = load_vocab("llama-spm");
  auto bpe = load_vocab("gpt-2");
  auto wpm = load_vocab("bert-bge");
  ASSERT_TRUE(spm && bpe && wpm);
  EXPECT_TRUE(spm->encode("", false, false).empty());
  EXPECT_EQ(spm->encode("", true, false), std::vector<int32_t>{spm->bos_id()});
  EXPECT_TRUE(bpe->encode("", true, true).empty());  // gpt-2 adds no BOS
  EXPECT_EQ(wpm->encode("", true, false), (std::vector<int32_t>{101, 102}));  // [CLS] [SEP]
  EXPECT_TRUE(wpm->encode("   ", false, false).empty());
  for (const std::string s : {" ", "    ", "\n\n \t "}) {
    EXPECT_EQ(bpe->decode(bpe->encode(s, false, false)), s);
  }
}

TEST(TokenizerEdge, InvalidUtf8IsLossless) {
  const std::string raw = "ok \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 end\x80";
  auto bpe = load_vocab("gpt-2");
  auto spm = load_vocab("llama-spm");
  auto wpm = load_vocab("bert-bge");
  ASSERT_TRUE(bpe && spm && wpm);
  EXPECT_EQ(bpe->decode(bpe->encode(raw, false, false)), raw);  // byte-level: exact bytes
  EXPECT_EQ(spm->decode(spm->encode(raw, false, false)), raw);  // SPM: byte fallback
  const auto ids = wpm->encode(raw, true, true);                // WordPiece: drops them
  EXPECT_EQ(ids.front(), 101);
  EXPECT_EQ(ids.back(), 102);
}

TEST(TokenizerEdge, SpecialTokensOnlyWhenParsed) {
  auto phi3 = load_vocab("phi-3");
  ASSERT_TRUE(phi3);
  const int32_t user = phi3->find_token("<|user|>"), end = phi3->find_token("<|end|>");
  ASSERT_EQ(user, 32010);
  ASSERT_EQ(end, 32007);
  const std::string text = "<|user|>\nHi<|end|>";
  auto parsed = phi3->encode(text, true, true);
  EXPECT_EQ(parsed.front(), phi3->bos_id());
  EXPECT_NE(std::find(parsed.begin(), parsed.end(), user), parsed.end());
  EXPECT_NE(std::find(parsed.begin(), parsed.end(), end), parsed.end());
  auto plain = phi3->encode(text, false, false);
  EXPECT_EQ(std::find(plain.begin(), plain.end(), user), plain.end());
  EXPECT_EQ(phi3->decode(plain), text);
  EXPECT_EQ(phi3->decode(parsed), "\nHi");
  // Each raw fragment after a special token gets the dummy "▁" prefix (llama.cpp, and the
  // Hugging Face Prepend normalizer applied per split), so a space follows <|user|>.
  EXPECT_EQ(phi3->decode(parsed, true), "<s><|user|> \nHi<|end|>");
  EXPECT_TRUE(phi3->is_eog(end));
  EXPECT_TRUE(phi3->is_eog(phi3->eos_id()));

  auto gpt2 = load_vocab("gpt-2");
  ASSERT_TRUE(gpt2);
  EXPECT_EQ(gpt2->encode("a<|endoftext|>b", false, true),
            (std::vector<int32_t>{64, 50256, 65}));  // "a", <|endoftext|>, "b" in GPT-2's vocab
  EXPECT_GT(gpt2->encode("a<|endoftext|>b", false, false).size(), 3u);
  EXPECT_TRUE(gpt2->is_eog(50256));
}

TEST(TokenizerEdge, LongInputsRunInReasonableTime) {
  std::string prose;
  while (prose.size() < 100000) prose += "The quick brown fox, 1234 jumps over \xc3\xa9t\xc3\xa9! ";
  const std::string one_word(100000, 'a');
  for (const char* family : {"llama-spm", "gpt-2", "starcoder", "bert-bge"}) {
    auto tok = load_vocab(family);
    ASSERT_TRUE(tok);
    for (const std::string* text : std::vector<const std::string*>{&prose, &one_word}) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto ids = tok->encode(*text, false, false);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_FALSE(ids.empty());
      EXPECT_LT(s, 10.0) << family << " took " << s << " s for 100 KB";
      if (std::string(family) == "gpt-2") {
        EXPECT_EQ(tok->decode(ids), *text);
      }
    }
  }
}

TEST(TokenizerEdge, MalformedTokenizerJsonIsAnError) {
  const std::vector<std::string> bad = {
      "",
      "not json",
      "[]",
      "{}",
      R"({"model": {"type": "Unigram", "vocab": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [5]}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Lowercase"}})",
      std::string(200, '[') + std::string(200, ']'),
  };
  for (const auto& j : bad) {
    auto tok = Tokenizer::from_hf_json(j, "");
    EXPECT_FALSE(tok.ok()) << j;
  }
  // A minimal valid one still works.
  auto ok = Tokenizer::from_hf_json(
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}})",
      "");
  ASSERT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ((*ok)->encode("abab", false, false), (std::vector<int32_t>{2, 2}));
}

}  // namespace
}  // namespace slm
