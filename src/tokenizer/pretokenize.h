// Pre-tokenization: regex splits (PCRE2, UTF + Unicode properties) applied in sequence, and the
// named presets of each byte-level BPE family (GGUF tokenizer.ggml.pre values).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace slm::tok {

// A compiled PCRE2 pattern. Subjects may be invalid UTF-8: invalid bytes never match and end up
// in the gaps between matches.
class Regex {
 public:
  static Expected<std::shared_ptr<const Regex>> compile(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  const std::string& pattern() const { return pattern_; }
  // All non-overlapping matches as [begin, end) byte offsets, scanning left to right.
  void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

// One split step. isolated: matches and the gaps between them both become pieces (Hugging Face
// Split behaviour "Isolated"); otherwise only the matches are kept (gaps dropped, "Removed" with
// invert=true).
struct SplitStep {
  std::shared_ptr<const Regex> re;
  bool keep_gaps = true;
  // Removed: gaps are kept and the matches dropped (splitting on a delimiter).
  bool drop_matches = false;
};

// Applies the steps in order; each step splits every piece produced by the previous one.
// Pieces are views into text, non-empty, in order.
std::vector<std::string_view> pre_tokenize(std::string_view text,
                                           const std::vector<SplitStep>& steps);

// The split steps for a GGUF tokenizer.ggml.pre value (byte-level BPE). Unknown names fall back
// to "default" and set *known to false so the caller can warn.
Expected<std::vector<SplitStep>> preset_steps(const std::string& pre, bool* known);

// The GPT-2 pattern Hugging Face's ByteLevel pre-tokenizer uses when use_regex is true.
extern const char* const k_gpt2_pattern;

}  // namespace slm::tok
