// Text helpers for the Jinja interpreter: UTF-8 repair and decoding, and the JavaScript string
// and number semantics (UTF-16 lengths, \s, case mapping, Number::toString, parseInt) it mirrors.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <utf8proc.h>

#include "core/utf8.h"
#include "template/jinja_internal.h"

namespace slm::jinja::detail {

void fail(std::string msg) { throw JinjaError{std::move(msg)}; }

uint32_t next_code_point(std::string_view s, size_t& i) {
  auto c = static_cast<unsigned char>(s[i]);
  int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if (i + static_cast<size_t>(len) > s.size()) {  // cannot happen on sanitized text
    ++i;
    return 0xFFFD;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += static_cast<size_t>(len);
  return cp;
}

bool is_js_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

size_t js_space_len_at(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  size_t j = i;
  uint32_t cp = next_code_point(s, j);
  return is_js_space(cp) ? j - i : 0;
}

std::string_view js_trim(std::string_view s, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) {
    while (size_t k = js_space_len_at(s, b)) b += k;
  }
  if (right) {
    while (e > b) {
      size_t start = e - 1;
      while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      if (js_space_len_at(s, start) != e - start) break;
      e = start;
    }
  }
  return s.substr(b, e - b);
}

int64_t utf16_length(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) n += c >= 0xF0 ? 2 : 1;
  }
  return n;
}

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    next_code_point(s, i);
    out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

static bool is_letter(uint32_t cp) {
  auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

static std::string map_case(std::string_view s, bool upper) {
  bool prev_letter = false;
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = next_code_point(s, i);
    if (upper && cp == 0xDF) {  // the one full (1 -> 2) mapping templates plausibly meet
      out += "SS";
      continue;
    }
    if (!upper && cp == 0x3A3) {  // final sigma: after a letter and not before one
      size_t j = i;
      bool before = prev_letter, after = j < s.size() && is_letter(next_code_point(s, j));
      prev_letter = true;
      utf8_append(out, before && !after ? 0x3C2 : 0x3C3);
      continue;
    }
    prev_letter = is_letter(cp);
    auto m = upper ? utf8proc_toupper(static_cast<utf8proc_int32_t>(cp))
                   : utf8proc_tolower(static_cast<utf8proc_int32_t>(cp));
    utf8_append(out, static_cast<uint32_t>(m));
  }
  return out;
}
std::string js_to_upper(std::string_view s) { return map_case(s, true); }
std::string js_to_lower(std::string_view s) { return map_case(s, false); }

static void to_utf16(std::string_view s, std::u16string& out) {
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = next_code_point(s, i);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out += static_cast<char16_t>(0xD800 + (cp >> 10));
      out += static_cast<char16_t>(0xDC00 + (cp & 0x3FF));
    } else {
      out += static_cast<char16_t>(cp);
    }
  }
}

int compare_utf16(std::string_view a, std::string_view b) {
  std::u16string ua, ub;
  to_utf16(a, ua);
  to_utf16(b, ub);
  return ua < ub ? -1 : ua > ub ? 1 : 0;
}

std::string js_number_to_string(double v) {
  if (std::isnan(v)) return "NaN";
  if (v == 0) return "0";
  if (std::isinf(v)) return v < 0 ? "-Infinity" : "Infinity";
  if (v < 0) {
    std::string neg(1, '-');
    neg += js_number_to_string(-v);
    return neg;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // shortest round-trip digits: d[.ddd]e[+-]xx
  size_t epos = sci.find('e');
  std::string digits = sci.substr(0, 1) + (epos > 2 ? sci.substr(2, epos - 2) : "");
  int e = std::atoi(sci.c_str() + epos + 1);
  int k = static_cast<int>(digits.size());
  int n = e + 1;  // position of the decimal point relative to the digits
  if (k <= n && n <= 21) return digits + std::string(static_cast<size_t>(n - k), '0');
  if (0 < n && n <= 21) return digits.substr(0, static_cast<size_t>(n)) + "." + digits.substr(static_cast<size_t>(n));
  if (-6 < n && n <= 0) {
    std::string small("0.");
    small.append(static_cast<size_t>(-n), '0');
    small += digits;
    return small;
  }
  std::string exp(1, n - 1 >= 0 ? '+' : '-');
  exp += std::to_string(std::abs(n - 1));
  if (k == 1) return digits + "e" + exp;
  return digits.substr(0, 1) + "." + digits.substr(1) + "e" + exp;
}

static size_t skip_js_space(std::string_view s, size_t i) {
  while (size_t k = js_space_len_at(s, i)) i += k;
  return i;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

double js_parse_int(std::string_view s) {
  size_t i = skip_js_space(s, 0);
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  size_t start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == start) return std::nan("");
  std::string digits(s.substr(start, i - start));
  double v = std::strtod(digits.c_str(), nullptr);
  return neg ? -v : v;
}

// Length of the longest StrDecimalLiteral prefix of s at i (0 if none).
static size_t decimal_literal_len(std::string_view s, size_t i) {
  size_t j = i;
  if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
  if (s.substr(j, 8) == "Infinity") return j + 8 - i;
  size_t int_start = j;
  while (j < s.size() && is_digit(s[j])) ++j;
  bool have = j > int_start;
  if (j < s.size() && s[j] == '.') {
    size_t f = j + 1;
    while (f < s.size() && is_digit(s[f])) ++f;
    if (f > j + 1 || have) {
      have = true;
      j = f;
    }
  }
  if (!have) return 0;
  if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
    size_t k = j + 1;
    if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
    size_t d = k;
    while (k < s.size() && is_digit(s[k])) ++k;
    if (k > d) j = k;
  }
  return j - i;
}

static double parse_decimal(std::string_view lit) {
  bool neg = !lit.empty() && lit[0] == '-';
  std::string_view body = lit;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) body.remove_prefix(1);
  double v = body == "Infinity" ? HUGE_VAL : std::strtod(std::string(body).c_str(), nullptr);
  return neg ? -v : v;
}

double js_parse_float(std::string_view s) {
  size_t i = skip_js_space(s, 0);
  size_t len = decimal_literal_len(s, i);
  if (len == 0) return std::nan("");
  return parse_decimal(s.substr(i, len));
}

double js_string_to_number(std::string_view s) {
  std::string_view t = js_trim(s, true, true);
  if (t.empty()) return 0;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X' || t[1] == 'o' || t[1] == 'O' ||
                                      t[1] == 'b' || t[1] == 'B')) {
    int base = (t[1] == 'x' || t[1] == 'X') ? 16 : (t[1] == 'o' || t[1] == 'O') ? 8 : 2;
    double v = 0;
    for (size_t i = 2; i < t.size(); ++i) {
      char c = t[i];
      int d = is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                      : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : 99;
      if (d >= base) return std::nan("");
      v = v * base + d;
    }
    return v;
  }
  size_t len = decimal_literal_len(t, 0);
  if (len != t.size()) return std::nan("");
  return parse_decimal(t);
}

}  // namespace slm::jinja::detail
