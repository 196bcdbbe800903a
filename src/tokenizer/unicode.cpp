// Unicode helpers for the tokenizers: lenient UTF-8 walking, GPT-2 byte mapping, BERT character
// classes and normalization through utf8proc.
#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <array>
#include <cstdlib>

namespace slm::tok {
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
    return k_replacement_char;
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
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = k_replacement_char;
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
      utf8_append(out, k_replacement_char);
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

namespace {

struct ByteMap {
  std::array<std::string, 256> to_uni;
  std::array<int, 324> from_uni;  // mapped code points are all below 324
  ByteMap() {
    from_uni.fill(-1);
    uint32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : extra++;
      utf8_append(to_uni[b], cp);
      from_uni[cp] = b;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return byte_map().to_uni[b]; }

int unicode_to_byte(uint32_t cp) {
  return cp < byte_map().from_uni.size() ? byte_map().from_uni[cp] : -1;
}

bool is_bert_whitespace(uint32_t cp) {
  // Rust's char::is_whitespace (Unicode White_Space) plus \t \n \r.
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_bert_control(uint32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    default:
      return false;
  }
}

bool is_bert_punctuation(uint32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126)) {
    return true;
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_cjk(uint32_t cp) {
  // The CJK Unified Ideographs blocks BERT pads with spaces.
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void append_stripped_accents(std::vector<uint32_t>& out, uint32_t cp) {
  utf8proc_int32_t buf[32];
  int last_boundclass = 0;
  const utf8proc_ssize_t n = utf8proc_decompose_char(
      static_cast<utf8proc_int32_t>(cp), buf, 32, UTF8PROC_DECOMPOSE, &last_boundclass);
  if (n < 0 || n > 32) {
    out.push_back(cp);
    return;
  }
  for (utf8proc_ssize_t k = 0; k < n; ++k) {
    if (utf8proc_category(buf[k]) == UTF8PROC_CATEGORY_MN) continue;
    out.push_back(static_cast<uint32_t>(buf[k]));
  }
}

uint32_t to_lower(uint32_t cp) {
  return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}

namespace {

std::string utf8proc_normalize(std::string_view s, int options) {
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                   static_cast<utf8proc_ssize_t>(s.size()), &dst,
                   static_cast<utf8proc_option_t>(options));
  if (n < 0) return std::string(s);
  std::string out(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
  return out;
}

}  // namespace

std::string normalize_nfc(std::string_view s) {
  return utf8proc_normalize(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
}

std::string normalize_nfkc(std::string_view s) {
  return utf8proc_normalize(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
}

}  // namespace slm::tok
