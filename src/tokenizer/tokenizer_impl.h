// The one concrete Tokenizer: vocabulary tables plus the settings every loader fills in (GGUF,
// tokenizer.json, llama2.c). Encoding engines live in spm.cpp, bpe.cpp and wordpiece.cpp.
#pragma once

#include <array>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace slm::tok {

// How raw-text fragments are prepared before the model-specific merge step.
struct TextRules {
  // Prepend "▁" (SPM add_space_prefix / Metaspace prepend / Prepend normalizer) to each raw
  // fragment; prefix_first_only restricts it to the fragment at the very start of the text.
  bool prefix_space = false;
  bool prefix_first_only = false;
  // Replace ' ' by "▁" (SPM escaping, Metaspace, Replace normalizer).
  bool escape_spaces = false;
  // NFC / NFKC normalizer (tokenizer.json only).
  bool nfc = false, nfkc = false;
  // ByteLevel add_prefix_space: prepend ' ' when the fragment does not start with one.
  bool byte_prefix_space = false;
};

// WordPiece settings (BERT).
struct WordPieceRules {
  bool clean_text = true;
  bool handle_cjk = true;
  bool strip_accents = true;
  bool lowercase = true;
  // Token spellings: GGUF stores word-initial pieces as "▁x" and continuations bare; HF
  // tokenizer.json stores word-initial pieces bare and continuations as "##x".
  std::string initial_prefix;
  std::string continuation_prefix = "##";
  int64_t max_chars_per_word = 100;
};

class TokenizerImpl final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::string token_to_piece(int32_t id, bool render_special = false) const override;

  // Called by the loaders after filling the public-facing tables and settings: builds lookup
  // maps, byte-token tables, decoded pieces and the end-of-generation list; validates ids.
  Status finalize();

  // --- settings, filled by the loaders ---
  // SPM merges by score (llama.cpp llm_tokenizer_spm); otherwise BPE merges by rank.
  bool merge_by_score = false;
  bool byte_level = false;     // GPT-2 byte<->unicode mapping around the merges
  bool byte_fallback = false;  // unknown pieces become <0xXX> tokens
  bool ignore_merges = false;  // a pre-token that is itself a token is used whole
  // Which token types are split out of the text when parse_special is on; user_defined tokens
  // are always split out (as llama.cpp and Hugging Face added tokens do).
  TextRules text;
  WordPieceRules wpm;
  std::vector<SplitStep> pre_steps;
  std::vector<float> scores;
  std::unordered_map<std::string, int32_t> merge_rank;  // key: left + '\xff' + right
  int32_t unk_id = -1, pad_id = -1, sep_id = -1, cls_id = -1, mask_id = -1;

  void set_kind(TokenizerKind k) { kind_ = k; }
  void set_pre(std::string p) { pre_ = std::move(p); }
  std::vector<std::string>& tokens() { return tokens_; }
  std::vector<TokenType>& types() { return types_; }
  void set_special(int32_t bos, int32_t eos, int32_t eot) { bos_ = bos, eos_ = eos, eot_ = eot; }
  void set_add(bool bos, bool eos) { add_bos_ = bos, add_eos_ = eos; }
  void set_strip_leading_space(bool v) { strip_leading_space_ = v; }
  int32_t lookup(std::string_view text) const;

  static std::string merge_key(std::string_view a, std::string_view b) {
    std::string k;
    k.reserve(a.size() + b.size() + 1);
    k.append(a);
    k += '\xff';
    k.append(b);
    return k;
  }

  // Engines: append ids for one raw-text fragment (after TextRules).
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  void encode_wpm(std::string_view text, std::vector<int32_t>& out) const;
  void push_bytes(std::string_view bytes, std::vector<int32_t>& out) const;

 private:
  void encode_fragment(std::string_view text, bool first, std::vector<int32_t>& out) const;

  std::array<int32_t, 256> byte_ids_{};
  std::vector<std::string> pieces_;      // decoded bytes per id
  std::vector<int32_t> split_specials_;  // sorted by text length, longest first
};

}  // namespace slm::tok
