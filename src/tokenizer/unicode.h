// Unicode helpers for the tokenizers: lenient UTF-8 decoding, GPT-2 byte<->unicode mapping,
// character classes (BERT whitespace/control/punctuation/CJK) and NFD accent stripping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/utf8.h"

namespace slm::tok {

constexpr uint32_t k_replacement_char = k_utf8_replacement;
using slm::utf8_append;
using slm::utf8_next;
using slm::utf8_sanitize;
using slm::utf8_stable_prefix;
using slm::utf8_step;
using slm::utf8_valid_len;

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
