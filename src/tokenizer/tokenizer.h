// Tokenizer: SentencePiece-style BPE with byte fallback, byte-level BPE with per-family
// pre-tokenizers, and WordPiece. Loaded from GGUF metadata, tokenizer.json or llama2.c
// tokenizer.bin; ids match the reference tokenizers exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace slm {

class GgufFile;

enum class TokenizerKind { spm, bpe, wpm };
// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  static Expected<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& gguf);
  // tokenizer.json text, plus tokenizer_config.json text (may be empty) for add_bos/eos and
  // special token names.
  static Expected<std::unique_ptr<Tokenizer>> from_hf_json(std::string_view tokenizer_json,
                                                           std::string_view tokenizer_config_json);
  // llama2.c tokenizer.bin; vocab_size from the checkpoint header.
  static Expected<std::unique_ptr<Tokenizer>> from_llama2c(const std::string& path,
                                                           int64_t vocab_size);

  // Tokenizes the exact bytes of text. add_special: prepend BOS / append EOS per the model's
  // rules (and [CLS]/[SEP] for WordPiece). parse_special: recognise special/control token
  // strings in text; otherwise they are ordinary text.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // Raw bytes of one token as it appears in output (byte tokens become their byte, SPM "▁"
  // becomes a space, byte-level BPE characters map back to bytes). Control tokens give "" unless
  // render_special.
  virtual std::string token_to_piece(int32_t id, bool render_special = false) const = 0;
  // Whole-sequence decode (handles SPM leading-space rules); may contain invalid UTF-8 only if
  // the ids do.
  virtual std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  TokenizerKind kind() const { return kind_; }
  std::string_view kind_name() const;
  const std::string& pre_type() const { return pre_; }  // tokenizer.ggml.pre or equivalent
  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()); }
  const std::string& token_text(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  TokenType token_type(int32_t id) const { return types_.at(static_cast<size_t>(id)); }
  // -1 when absent.
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t eot_id() const { return eot_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // End of generation: EOS, EOT and any other end-of-turn token.
  bool is_eog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const { return eog_; }
  // Finds a token by its exact text; -1 if absent.
  int32_t find_token(std::string_view text) const;
  // decode() drops one leading space from the first text it produces (SPM with
  // add_space_prefix, WordPiece); StreamDecoder applies the same rule.
  bool strips_leading_space() const { return strip_leading_space_; }

 protected:
  TokenizerKind kind_ = TokenizerKind::bpe;
  std::string pre_;
  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  int32_t bos_ = -1, eos_ = -1, eot_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::vector<int32_t> eog_;
  std::unordered_map<std::string, int32_t> token_to_id_;  // text -> id (last duplicate wins)
  bool strip_leading_space_ = false;
};

// Streaming detokenizer: feed ids one by one, get text that never ends in half a UTF-8
// character (held back until complete; invalid sequences are flushed as U+FFFD).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);
  std::string flush();  // whatever is held back at the end

 private:
  const Tokenizer& tok_;
  std::string pending_;
  bool first_ = true;
};

}  // namespace slm
