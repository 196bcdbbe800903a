// UTF-8 walking, encoding and repair shared by the tokenizers, the templates and the
// streaming decoder: invalid input is handled byte by byte, never trusted.
#include "core/utf8.h"

#include <cstdint>
#include <cstring>

namespace slm {

namespace {

// Number of leading bytes of s[i..] that form a prefix of some valid UTF-8 sequence, and the
// full length the lead byte announces (0 when the lead byte is invalid).
struct Prefix {
  size_t valid = 0;  // bytes that are a valid (possibly incomplete) prefix
  size_t need = 0;   // full sequence length, 0 for an invalid lead byte
};

Prefix utf8_prefix(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  Prefix p;
  if (b0 < 0x80) return {1, 1};
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    p.need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    p.need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    p.need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {0, 0};
  }
  p.valid = 1;
  for (size_t k = 1; k < p.need && i + k < s.size(); ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) break;
    p.valid = k + 1;
  }
  return p;
}

}  // namespace

size_t utf8_valid_len(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  const Prefix p = utf8_prefix(s, i);
  return (p.need != 0 && p.valid == p.need) ? p.need : 0;
}

size_t utf8_step(std::string_view s, size_t i) {
  const size_t n = utf8_valid_len(s, i);
  return n == 0 ? 1 : n;
}

uint32_t utf8_next(std::string_view s, size_t& i) {
  const size_t n = utf8_valid_len(s, i);
  if (n == 0) {
    ++i;
    return k_utf8_replacement;
  }
  const auto* b = reinterpret_cast<const uint8_t*>(s.data() + i);
  uint32_t cp = 0;
  switch (n) {
    case 1: cp = b[0]; break;
    case 2: cp = ((b[0] & 0x1Fu) << 6) | (b[1] & 0x3Fu); break;
    case 3: cp = ((b[0] & 0x0Fu) << 12) | ((b[1] & 0x3Fu) << 6) | (b[2] & 0x3Fu); break;
    default:
      cp = ((b[0] & 0x07u) << 18) | ((b[1] & 0x3Fu) << 12) | ((b[2] & 0x3Fu) << 6) |
           (b[3] & 0x3Fu);
  }
  i += n;
  return cp;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = k_utf8_replacement;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const Prefix p = utf8_prefix(s, i);
    if (p.need != 0 && p.valid == p.need) {
      out.append(s.substr(i, p.need));
      i += p.need;
    } else {
      utf8_append(out, k_utf8_replacement);
      i += p.valid == 0 ? 1 : p.valid;
    }
  }
  return out;
}

size_t utf8_stable_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const Prefix p = utf8_prefix(s, i);
    if (p.need != 0 && p.valid == p.need) {
      i += p.need;
    } else if (p.need != 0 && i + p.valid == s.size()) {
      return i;  // a valid prefix cut by the end: more bytes may complete it
    } else {
      i += p.valid == 0 ? 1 : p.valid;
    }
  }
  return i;
}

bool utf8_is_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // Eight ASCII bytes at a time: the common case in every corpus.
    if (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_valid_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace slm
