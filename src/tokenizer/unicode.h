// Unicode helpers for the tokenizers: lenient UTF-8 decoding, GPT-2 byte<->unicode mapping,
// character classes (BERT whitespace/control/punctuation/CJK) and NFD accent stripping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace slm::tok {

constexpr uint32_t k_replacement_char = 0xFFFD;

// Length of the UTF-8 sequence that starts at s[i] if it is complete and valid, else 0.
size_t utf8_valid_len(std::string_view s, size_t i);
// Length to advance over the character at s[i]: the valid sequence length, or 1 for a byte
// that does not start a valid sequence (so invalid input is walked byte by byte).
size_t utf8_step(std::string_view s, size_t i);
// Decodes the character at s[i] (U+FFFD for an invalid byte) and advances i.
uint32_t utf8_next(std::string_view s, size_t& i);
void utf8_append(std::string& out, uint32_t cp);

// Replaces each maximal invalid subsequence (Unicode "maximal subpart" practice, as Python's
// errors="replace" and the WHATWG decoder do) with U+FFFD.
std::string utf8_sanitize(std::string_view s);
// Length of the longest prefix of s that cannot change meaning when more bytes follow: every
// complete or definitely-invalid sequence. The rest (at most 3 bytes) is an incomplete but still
// possible sequence.
size_t utf8_stable_prefix(std::string_view s);

// GPT-2 byte-level mapping: each byte to a printable code point (UTF-8 encoded), and back.
const std::string& byte_to_unicode(uint8_t b);
// Returns -1 if cp is not one of the 256 mapped code points.
int unicode_to_byte(uint32_t cp);

// BERT character classes, as the Hugging Face BertNormalizer / BertPreTokenizer define them.
bool is_bert_whitespace(uint32_t cp);
bool is_bert_control(uint32_t cp);
bool is_bert_punctuation(uint32_t cp);
bool is_cjk(uint32_t cp);

// NFD-decomposes cp and appends it without combining marks (category Mn).
void append_stripped_accents(std::vector<uint32_t>& out, uint32_t cp);
uint32_t to_lower(uint32_t cp);
// NFC / NFKC normalization of valid UTF-8 (invalid input is returned unchanged).
std::string normalize_nfc(std::string_view s);
std::string normalize_nfkc(std::string_view s);

}  // namespace slm::tok
