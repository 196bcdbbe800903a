// UTF-8 helpers: validation per Unicode Table 3-7, lenient decoding (an invalid byte is one
// U+FFFD), encoding, repair of invalid input, and the stable prefix for streaming output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace slm {

constexpr uint32_t k_utf8_replacement = 0xFFFD;  // U+FFFD

// Length of the UTF-8 sequence that starts at s[i] if it is complete and valid, else 0.
size_t utf8_valid_len(std::string_view s, size_t i);
// True if all of s is valid UTF-8 (ASCII runs checked eight bytes at a time).
bool utf8_is_valid(std::string_view s);
// Length to advance over the character at s[i]: the valid sequence length, or 1 for a byte
// that does not start a valid sequence (so invalid input is walked byte by byte).
size_t utf8_step(std::string_view s, size_t i);
// Decodes the character at s[i] (U+FFFD for an invalid byte) and advances i.
uint32_t utf8_next(std::string_view s, size_t& i);
// Encodes cp; surrogates and values past U+10FFFF become U+FFFD.
void utf8_append(std::string& out, uint32_t cp);

// Replaces each maximal invalid subsequence (Unicode "maximal subpart" practice, as Python's
// errors="replace" and the WHATWG decoder do) with U+FFFD.
std::string utf8_sanitize(std::string_view s);
// Length of the longest prefix of s that cannot change meaning when more bytes follow: every
// complete or definitely-invalid sequence. The rest (at most 3 bytes) is an incomplete but still
// possible sequence.
size_t utf8_stable_prefix(std::string_view s);

}  // namespace slm
