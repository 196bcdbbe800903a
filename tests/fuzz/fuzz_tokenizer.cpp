// Fuzzes the tokenizers: encode/decode/stream arbitrary bytes through small in-memory SPM
// (GGUF), byte-level BPE and WordPiece (tokenizer.json) vocabularies, and from_hf_json itself.
// First input byte: low 2 bits pick the target, bit 2 toggles parse_special.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

using slm::Tokenizer;

std::unique_ptr<Tokenizer> make_spm() {
  static std::string image;  // GgufFile::parse keeps views into it
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    tokens.push_back(buf), scores.push_back(0), types.push_back(6);
  }
  const char* pieces[] = {"\xe2\x96\x81", "a", "b", "c", "\xe2\x96\x81" "a", "ab", "abc",
                          "\xe2\x96\x81" "ab", "\xc3\xa9", "\xe2\x96\x81\xe2\x96\x81"};
  float score = -1;
  for (const char* p : pieces) tokens.push_back(p), scores.push_back(score--), types.push_back(1);
  slm::GgufWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  image = w.serialize();
  auto g = slm::GgufFile::parse(reinterpret_cast<const uint8_t*>(image.data()), image.size(),
                                "fuzz-spm");
  if (!g.ok()) return nullptr;
  auto t = Tokenizer::from_gguf(*g);
  return t.ok() ? std::move(*t) : nullptr;
}

std::unique_ptr<Tokenizer> make_bpe() {
  // All 256 byte-level characters, a few merges and a special token.
  std::string vocab = "{";
  int id = 0;
  uint32_t extra = 256;  // GPT-2 maps unprintable bytes to U+0100.. in byte order
  for (int b = 0; b < 256; ++b) {
    uint32_t cp = static_cast<uint32_t>(b);
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    if (!printable) cp = extra++;
    char u[16];
    if (cp == '"' || cp == '\\') {
      std::snprintf(u, sizeof(u), "\\%c", static_cast<char>(cp));
    } else {
      std::snprintf(u, sizeof(u), "\\u%04x", cp);
    }
    vocab += std::string(b ? "," : "") + "\"" + u + "\":" + std::to_string(id++);
  }
  vocab += ",\"\\u0120a\":256,\"ab\":257,\"\\u0120ab\":258}";
  id = 259;
  const std::string json =
      R"({"added_tokens":[{"id":)" + std::to_string(id) +
      R"(,"content":"<|end|>","special":true}],"normalizer":null,)"
      R"("pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\p{N}"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}]},)"
      R"("decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":)" +
      vocab + R"(,"merges":["\u0120 a","a b","\u0120a b"]}})";
  auto t = Tokenizer::from_hf_json(json, "");
  return t.ok() ? std::move(*t) : nullptr;
}

std::unique_ptr<Tokenizer> make_wpm() {
  const std::string json =
      R"({"normalizer":{"type":"BertNormalizer","lowercase":true},"pre_tokenizer":{"type":"BertPreTokenizer"},)"
      R"("added_tokens":[{"id":0,"content":"[UNK]","special":true},{"id":1,"content":"[CLS]","special":true},{"id":2,"content":"[SEP]","special":true}],)"
      R"("post_processor":{"type":"BertProcessing","sep":["[SEP]",2],"cls":["[CLS]",1]},)"
      R"("model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,)"
      R"("vocab":{"[UNK]":0,"[CLS]":1,"[SEP]":2,"a":3,"##b":4,"ab":5,"##a":6,".":7,"\u00e9":8,"\u4e00":9}}})";
  auto t = Tokenizer::from_hf_json(json, "");
  return t.ok() ? std::move(*t) : nullptr;
}

void check(const Tokenizer& tok, const std::string& text, bool parse_special, bool lossless) {
  const auto ids = tok.encode(text, true, parse_special);
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
  }
  const std::string decoded = tok.decode(ids);
  if (lossless && !parse_special && decoded != text) __builtin_trap();
  slm::StreamDecoder dec(tok);
  std::string streamed;
  for (int32_t id : ids) streamed += dec.push(id);
  streamed += dec.flush();
  (void)tok.decode(ids, true);
  // Arbitrary ids, including out-of-range ones, must decode without harm.
  std::vector<int32_t> raw;
  for (size_t i = 0; i + 1 < text.size() && raw.size() < 64; i += 2) {
    raw.push_back(static_cast<int32_t>(static_cast<uint8_t>(text[i]) |
                                       (static_cast<uint8_t>(text[i + 1]) << 8)) - 8);
  }
  (void)tok.decode(raw, true);
  slm::StreamDecoder dec2(tok);
  for (int32_t id : raw) (void)dec2.push(id);
  (void)dec2.flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto spm = make_spm();
  static const auto bpe = make_bpe();
  static const auto wpm = make_wpm();
  if (!spm || !bpe || !wpm) __builtin_trap();  // the fixed vocabularies must load
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool parse_special = (mode & 4) != 0;
  switch (mode & 3) {
    case 0:
      // SentencePiece cannot tell a literal "▁" from an escaped space, so only texts without
      // one must round-trip exactly.
      check(*spm, text, parse_special, text.find("\xe2\x96\x81") == std::string::npos);
      break;
    case 1: check(*bpe, text, parse_special, true); break;
    case 2: check(*wpm, text, parse_special, false); break;
    default: {
      auto t = Tokenizer::from_hf_json(text, "");
      if (t.ok()) check(**t, "fuzz \xc3\xa9 text 123 <|end|>", parse_special, false);
      break;
    }
  }
  return 0;
}
