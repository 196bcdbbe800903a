// HTML-to-text conversion (a small tolerant tag scanner, not a DOM: corpora need the readable
// text, in order, without markup, scripts or styles), entity decoding and text repair.
#include "data/text_extract.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/utf8.h"

namespace slm {
namespace {

struct Entity {
  const char* name;
  uint32_t cp;
};
// The entities that occur in real pages often enough to matter; others stay literal.
constexpr Entity k_entities[] = {
    {"amp", '&'},       {"lt", '<'},          {"gt", '>'},         {"quot", '"'},
    {"apos", '\''},     {"nbsp", 0xA0},       {"copy", 0xA9},      {"reg", 0xAE},
    {"trade", 0x2122},  {"mdash", 0x2014},    {"ndash", 0x2013},   {"hellip", 0x2026},
    {"laquo", 0xAB},    {"raquo", 0xBB},      {"lsquo", 0x2018},   {"rsquo", 0x2019},
    {"sbquo", 0x201A},  {"ldquo", 0x201C},    {"rdquo", 0x201D},   {"bdquo", 0x201E},
    {"bull", 0x2022},   {"middot", 0xB7},     {"deg", 0xB0},       {"plusmn", 0xB1},
    {"times", 0xD7},    {"divide", 0xF7},     {"micro", 0xB5},     {"para", 0xB6},
    {"sect", 0xA7},     {"cent", 0xA2},       {"pound", 0xA3},     {"yen", 0xA5},
    {"euro", 0x20AC},   {"curren", 0xA4},     {"iexcl", 0xA1},     {"iquest", 0xBF},
    {"frac12", 0xBD},   {"frac14", 0xBC},     {"frac34", 0xBE},    {"sup1", 0xB9},
    {"sup2", 0xB2},     {"sup3", 0xB3},       {"ordf", 0xAA},      {"ordm", 0xBA},
    {"shy", 0xAD},      {"macr", 0xAF},       {"acute", 0xB4},     {"cedil", 0xB8},
    {"uml", 0xA8},      {"not", 0xAC},        {"brvbar", 0xA6},    {"dagger", 0x2020},
    {"Dagger", 0x2021}, {"permil", 0x2030},   {"prime", 0x2032},   {"Prime", 0x2033},
    {"larr", 0x2190},   {"rarr", 0x2192},     {"uarr", 0x2191},    {"darr", 0x2193},
    {"harr", 0x2194},   {"rArr", 0x21D2},     {"lArr", 0x21D0},    {"hArr", 0x21D4},
    {"le", 0x2264},     {"ge", 0x2265},       {"ne", 0x2260},      {"asymp", 0x2248},
    {"equiv", 0x2261},  {"infin", 0x221E},    {"minus", 0x2212},   {"sum", 0x2211},
    {"prod", 0x220F},   {"radic", 0x221A},    {"part", 0x2202},    {"nabla", 0x2207},
    {"isin", 0x2208},   {"forall", 0x2200},   {"exist", 0x2203},   {"empty", 0x2205},
    {"alpha", 0x3B1},   {"beta", 0x3B2},      {"gamma", 0x3B3},    {"delta", 0x3B4},
    {"epsilon", 0x3B5}, {"lambda", 0x3BB},    {"mu", 0x3BC},       {"pi", 0x3C0},
    {"sigma", 0x3C3},   {"theta", 0x3B8},     {"omega", 0x3C9},    {"Omega", 0x3A9},
    {"Delta", 0x394},   {"Sigma", 0x3A3},     {"ensp", 0x2002},    {"emsp", 0x2003},
    {"thinsp", 0x2009}, {"zwnj", 0x200C},     {"zwj", 0x200D},     {"lrm", 0x200E},
    {"rlm", 0x200F},    {"Agrave", 0xC0},     {"Aacute", 0xC1},    {"Auml", 0xC4},
    {"Ccedil", 0xC7},   {"Eacute", 0xC9},     {"Ntilde", 0xD1},    {"Ouml", 0xD6},
    {"Uuml", 0xDC},     {"szlig", 0xDF},      {"agrave", 0xE0},    {"aacute", 0xE1},
    {"acirc", 0xE2},    {"auml", 0xE4},       {"aring", 0xE5},     {"aelig", 0xE6},
    {"ccedil", 0xE7},   {"egrave", 0xE8},     {"eacute", 0xE9},    {"ecirc", 0xEA},
    {"euml", 0xEB},     {"iacute", 0xED},     {"iuml", 0xEF},      {"ntilde", 0xF1},
    {"oacute", 0xF3},   {"ocirc", 0xF4},      {"ouml", 0xF6},      {"oslash", 0xF8},
    {"uacute", 0xFA},   {"uuml", 0xFC},       {"yuml", 0xFF},
};
// Entities browsers also accept without the ';'.
constexpr const char* k_legacy_no_semicolon[] = {"amp", "lt", "gt", "quot", "nbsp", "copy", "reg"};

// HTML's remapping of numeric references in 0x80..0x9F (windows-1252); 0 = keep U+FFFD.
constexpr uint32_t k_c1_map[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

// Elements whose whole content is dropped (text inside is never shown as page text).
bool is_dropped(std::string_view n) {
  return n == "script" || n == "style" || n == "noscript" || n == "template" || n == "svg" ||
         n == "math" || n == "iframe" || n == "object";
}
// Elements that end a line (1) or a paragraph (2).
int break_level(std::string_view n) {
  static constexpr const char* k_line[] = {"br", "li", "tr", "dt", "dd", "option", "caption",
                                           "figcaption", "summary", "label"};
  static constexpr const char* k_para[] = {
      "p",       "div",    "h1",     "h2",      "h3",    "h4",     "h5",   "h6",
      "ul",      "ol",     "dl",     "table",   "pre",   "blockquote", "section", "article",
      "header",  "footer", "nav",    "aside",   "main",  "hr",     "form", "figure",
      "address", "details", "fieldset", "body", "html",  "title",  "center", "tbody", "thead"};
  for (const char* s : k_line) {
    if (n == s) return 1;
  }
  for (const char* s : k_para) {
    if (n == s) return 2;
  }
  return 0;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// Builds the output: collapses whitespace and turns pending breaks into at most one blank line.
class TextOut {
 public:
  void space() { space_ = true; }
  void line_break(int level) { breaks_ = std::max(breaks_, level); }
  void text(std::string_view s) {
    if (!out_.empty()) {
      if (breaks_ > 0) {
        out_.append(static_cast<size_t>(breaks_), '\n');
      } else if (space_) {
        out_ += ' ';
      }
    }
    breaks_ = 0, space_ = false;
    out_.append(s);
  }
  // Preformatted text: written as is, after any pending break.
  void raw(char c) {
    if (c == '\r') return;
    if (!out_.empty() && breaks_ > 0) out_.append(static_cast<size_t>(breaks_), '\n');
    breaks_ = 0, space_ = false;
    out_ += c;
  }
  std::string finish() {
    while (!out_.empty() && is_space(out_.back())) out_.pop_back();
    return std::move(out_);
  }

 private:
  std::string out_;
  bool space_ = false;
  int breaks_ = 0;
};

bool starts_with_ci(std::string_view s, size_t i, std::string_view what) {
  if (s.size() - i < what.size()) return false;
  for (size_t k = 0; k < what.size(); ++k) {
    if (std::tolower(static_cast<unsigned char>(s[i + k])) != what[k]) return false;
  }
  return true;
}

// Position of the first case-insensitive "</name" at or after i, or npos.
size_t find_close_tag(std::string_view s, size_t i, std::string_view name) {
  for (size_t p = s.find("</", i); p != std::string_view::npos; p = s.find("</", p + 2)) {
    if (starts_with_ci(s, p + 2, name)) return p;
  }
  return std::string_view::npos;
}

}  // namespace

bool decode_html_entity(std::string_view s, size_t& i, std::string& out) {
  size_t j = i + 1;
  if (j < s.size() && s[j] == '#') {
    ++j;
    const bool hex = j < s.size() && (s[j] == 'x' || s[j] == 'X');
    if (hex) ++j;
    uint32_t cp = 0;
    bool big = false;
    const size_t digits_start = j;
    while (j < s.size() && (hex ? std::isxdigit(static_cast<unsigned char>(s[j]))
                                : std::isdigit(static_cast<unsigned char>(s[j])))) {
      const int d = std::isdigit(static_cast<unsigned char>(s[j]))
                        ? s[j] - '0'
                        : std::tolower(static_cast<unsigned char>(s[j])) - 'a' + 10;
      if (!big) cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
      if (cp > 0x10FFFF) big = true;
      ++j;
    }
    if (j == digits_start) return false;
    if (j < s.size() && s[j] == ';') ++j;
    if (big || cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) {
      cp = k_utf8_replacement;
    } else if (cp >= 0x80 && cp <= 0x9F) {
      cp = k_c1_map[cp - 0x80] ? k_c1_map[cp - 0x80] : k_utf8_replacement;
    }
    utf8_append(out, cp);
    i = j;
    return true;
  }
  while (j < s.size() && j - i <= 32 && std::isalnum(static_cast<unsigned char>(s[j]))) ++j;
  const std::string_view name = s.substr(i + 1, j - i - 1);
  if (name.empty()) return false;
  const bool semi = j < s.size() && s[j] == ';';
  for (const Entity& e : k_entities) {
    if (name != e.name) continue;
    if (!semi && std::none_of(std::begin(k_legacy_no_semicolon), std::end(k_legacy_no_semicolon),
                              [&](const char* n) { return name == n; })) {
      return false;
    }
    utf8_append(out, e.cp);
    i = j + (semi ? 1 : 0);
    return true;
  }
  return false;
}

std::string html_to_text(std::string_view h) {
  TextOut out;
  int pre_depth = 0;
  std::string piece;
  size_t i = 0;
  while (i < h.size()) {
    const char c = h[i];
    if (c == '<') {
      if (h.compare(i, 4, "<!--") == 0) {
        const size_t e = h.find("-->", i + 4);
        i = e == std::string_view::npos ? h.size() : e + 3;
        continue;
      }
      if (i + 1 < h.size() && (h[i + 1] == '!' || h[i + 1] == '?')) {  // doctype, PI
        const size_t e = h.find('>', i);
        i = e == std::string_view::npos ? h.size() : e + 1;
        continue;
      }
      size_t j = i + 1;
      const bool closing = j < h.size() && h[j] == '/';
      if (closing) ++j;
      std::string name;
      while (j < h.size() && name.size() < 32 &&
             (std::isalnum(static_cast<unsigned char>(h[j])) || h[j] == '-' || h[j] == ':')) {
        name += static_cast<char>(std::tolower(static_cast<unsigned char>(h[j])));
        ++j;
      }
      if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0]))) {
        out.text("<");  // a lone '<' in text
        ++i;
        continue;
      }
      // Skip attributes up to the closing '>', honouring quoted values.
      char quote = 0;
      while (j < h.size()) {
        if (quote) {
          if (h[j] == quote) quote = 0;
        } else if (h[j] == '"' || h[j] == '\'') {
          quote = h[j];
        } else if (h[j] == '>') {
          break;
        }
        ++j;
      }
      i = j < h.size() ? j + 1 : h.size();
      if (!closing && is_dropped(name)) {
        const size_t e = find_close_tag(h, i, name);
        if (e == std::string_view::npos) break;  // unclosed: the rest is its content
        const size_t gt = h.find('>', e);
        i = gt == std::string_view::npos ? h.size() : gt + 1;
        out.space();
        continue;
      }
      if (!closing && name == "head") {
        // <head> holds metadata only; pages that never close it still start <body> somewhere.
        size_t e = find_close_tag(h, i, "head");
        if (e == std::string_view::npos) {
          for (size_t p = h.find('<', i); p != std::string_view::npos; p = h.find('<', p + 1)) {
            if (starts_with_ci(h, p + 1, "body")) {
              e = p;
              break;
            }
          }
        }
        if (e != std::string_view::npos) i = e;
        continue;
      }
      if (name == "pre") pre_depth = closing ? std::max(0, pre_depth - 1) : pre_depth + 1;
      if (name == "td" || name == "th") out.space();
      if (const int level = break_level(name); level > 0) out.line_break(level);
      continue;
    }
    if (c == '&') {
      piece.clear();
      if (decode_html_entity(h, i, piece)) {
        if (piece == "\xc2\xa0" && pre_depth == 0) {
          out.space();  // &nbsp; lays out text; in a corpus it is a space
        } else {
          out.text(piece);
        }
        continue;
      }
      out.text("&");
      ++i;
      continue;
    }
    if (is_space(c)) {
      if (pre_depth > 0) {
        out.raw(c);
      } else {
        out.space();
      }
      ++i;
      continue;
    }
    // A run of ordinary text up to the next markup or whitespace.
    size_t j = i + 1;
    while (j < h.size() && h[j] != '<' && h[j] != '&' && !is_space(h[j])) ++j;
    out.text(h.substr(i, j - i));
    i = j;
  }
  return out.finish();
}

bool looks_binary(std::string_view data, size_t probe) {
  return std::memchr(data.data(), 0, std::min(data.size(), probe)) != nullptr;
}

bool repair_text(std::string& text) {
  bool repaired = false;
  if (!utf8_is_valid(text)) {
    text = utf8_sanitize(text);
    repaired = true;
  }
  if (text.compare(0, 3, "\xef\xbb\xbf") == 0) text.erase(0, 3);
  return repaired;
}

}  // namespace slm
