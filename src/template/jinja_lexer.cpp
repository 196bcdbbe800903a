// Jinja lexer: the reference's preprocessing (trim_blocks, lstrip_blocks, generation tags) and
// tokenizer, step for step, so that whitespace and error behaviour come out the same.
#include "template/jinja_internal.h"

namespace slm::jinja::detail {

namespace {

bool starts(std::string_view s, size_t pos, std::string_view what) {
  return pos <= s.size() && s.substr(pos, what.size()) == what;
}

bool is_line_terminator_at(std::string_view s, size_t i, size_t* len) {
  if (s[i] == '\n' || s[i] == '\r') {
    *len = 1;
    return true;
  }
  if (starts(s, i, "\xE2\x80\xA8") || starts(s, i, "\xE2\x80\xA9")) {  // U+2028, U+2029
    *len = 3;
    return true;
  }
  return false;
}

// /^[ \t]*({[#%-])/gm -> "$1": at every line start, drop blanks before {# {% {-.
std::string lstrip_blocks(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  bool line_start = true;
  while (i < s.size()) {
    if (line_start) {
      line_start = false;
      size_t j = i;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
      if (j + 1 < s.size() && s[j] == '{' && (s[j + 1] == '#' || s[j + 1] == '%' || s[j + 1] == '-')) {
        i = j;
      }
    }
    size_t len = 0;
    if (is_line_terminator_at(s, i, &len)) {
      out.append(s.substr(i, len));
      i += len;
      line_start = true;
      continue;
    }
    out += s[i++];
  }
  return out;
}

// /([#%-]})\n/g -> "$1": drop the newline right after a tag.
std::string trim_blocks(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (i + 2 < s.size() && (s[i] == '#' || s[i] == '%' || s[i] == '-') && s[i + 1] == '}' &&
        s[i + 2] == '\n') {
      out += s[i];
      out += '}';
      i += 3;
      continue;
    }
    out += s[i++];
  }
  return out;
}

size_t skip_spaces(std::string_view s, size_t i) {
  while (size_t k = js_space_len_at(s, i)) i += k;
  return i;
}

// Start of the run of whitespace that ends at `end`, not going before `floor`.
size_t space_run_start(std::string_view s, size_t end, size_t floor) {
  size_t b = end;
  while (b > floor) {
    size_t start = b - 1;
    while (start > floor && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (js_space_len_at(s, start) != b - start) break;
    b = start;
  }
  return b;
}

// /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs: transformers' generation tags vanish,
// and their whitespace goes too when a "-" asks for it.
std::string strip_generation_tags(std::string_view s) {
  std::string out;
  size_t last = 0, p = 0;
  while ((p = s.find("{%", p)) != std::string_view::npos) {
    size_t q = p + 2;
    bool lstrip = q < s.size() && s[q] == '-';
    if (lstrip) ++q;
    q = skip_spaces(s, q);
    if (starts(s, q, "end")) q += 3;
    if (!starts(s, q, "generation")) {
      p += 2;
      continue;
    }
    q = skip_spaces(s, q + 10);
    bool rstrip = q < s.size() && s[q] == '-';
    if (rstrip) ++q;
    if (!starts(s, q, "%}")) {
      p += 2;
      continue;
    }
    q += 2;
    size_t after_end = skip_spaces(s, q);
    size_t before_start = space_run_start(s, p, last);
    out.append(s.substr(last, before_start - last));
    if (!lstrip) out.append(s.substr(before_start, p - before_start));
    if (!rstrip) out.append(s.substr(q, after_end - q));
    last = p = after_end;
  }
  out.append(s.substr(last));
  return out;
}

std::string preprocess(std::string_view src) {
  if (!src.empty() && src.back() == '\n') src.remove_suffix(1);
  return strip_generation_tags(trim_blocks(lstrip_blocks(src)));
}

bool is_digit_char(char c) { return c >= '0' && c <= '9'; }
bool is_word_char(char c) {
  return is_digit_char(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : s_(std::move(src)) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) step();
    return std::move(tokens_);
  }

 private:
  enum class Pred { Space, Digit, Word, NotQuote };

  bool test(Pred p, char quote) const {
    if (pos_ >= s_.size()) return p == Pred::Word || p == Pred::NotQuote;  // pred(undefined)
    char c = s_[pos_];
    switch (p) {
      case Pred::Space: return js_space_len_at(s_, pos_) > 0;
      case Pred::Digit: return is_digit_char(c);
      case Pred::Word: return is_word_char(c);
      case Pred::NotQuote: return c != quote;
    }
    return false;
  }

  std::string consume_while(Pred p, char quote = 0) {
    std::string str;
    while (test(p, quote)) {
      if (pos_ >= s_.size()) fail("Unexpected end of input");
      if (s_[pos_] == '\\') {
        ++pos_;
        if (pos_ >= s_.size()) fail("Unexpected end of input");
        char e = s_[pos_++];
        if (e == 'x' || e == 'u') {
          uint32_t unit = read_hex(e == 'x' ? 2 : 4, e);
          if (unit >= 0xD800 && unit <= 0xDBFF && starts(s_, pos_, "\\u")) {
            size_t save = pos_;
            pos_ += 2;
            uint32_t low = read_hex_soft(4);
            if (low >= 0xDC00 && low <= 0xDFFF) {
              unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            } else {
              pos_ = save;
            }
          }
          utf8_append(str, unit);
          continue;
        }
        switch (e) {
          case 'n': str += '\n'; break;
          case 't': str += '\t'; break;
          case 'r': str += '\r'; break;
          case 'b': str += '\b'; break;
          case 'f': str += '\f'; break;
          case 'v': str += '\v'; break;
          case '\'': str += '\''; break;
          case '"': str += '"'; break;
          case '\\': str += '\\'; break;
          default: fail(std::string("Unexpected escaped character: ") + e);
        }
        continue;
      }
      size_t start = pos_;
      next_code_point(s_, pos_);
      str.append(s_, start, pos_ - start);
      if (pos_ >= s_.size()) fail("Unexpected end of input");
    }
    return str;
  }

  uint32_t read_hex(int len, char kind) {
    if (pos_ + static_cast<size_t>(len) > s_.size()) fail(std::string("Invalid hexadecimal escape sequence: \\") + kind);
    uint32_t v = 0;
    for (int i = 0; i < len; ++i) {
      int h = hex_value(s_[pos_ + static_cast<size_t>(i)]);
      if (h < 0) fail(std::string("Invalid hexadecimal escape sequence: \\") + kind);
      v = v * 16 + static_cast<uint32_t>(h);
    }
    pos_ += static_cast<size_t>(len);
    return v;
  }
  // For the low half of a surrogate pair: no error, the second escape is lexed on its own.
  uint32_t read_hex_soft(int len) {
    if (pos_ + static_cast<size_t>(len) > s_.size()) return 0;
    uint32_t v = 0;
    for (int i = 0; i < len; ++i) {
      int h = hex_value(s_[pos_ + static_cast<size_t>(i)]);
      if (h < 0) return 0;
      v = v * 16 + static_cast<uint32_t>(h);
    }
    pos_ += static_cast<size_t>(len);
    return v;
  }

  Tok last_type() const { return tokens_.empty() ? Tok::Eof : tokens_.back().type; }
  void push(Tok t, std::string v) { tokens_.push_back(Token{t, std::move(v)}); }

  void strip_trailing_whitespace() {
    if (tokens_.empty() || tokens_.back().type != Tok::Text) return;
    std::string& v = tokens_.back().value;
    v = std::string(js_trim(v, false, true));
    if (v.empty()) tokens_.pop_back();
  }
  void skip_leading_whitespace() { pos_ = skip_spaces(s_, pos_); }

  bool at_tag_open(size_t i) const {
    return s_[i] == '{' && i + 1 < s_.size() && (s_[i + 1] == '%' || s_[i + 1] == '{' || s_[i + 1] == '#');
  }

  void step() {
    Tok lt = last_type();
    if (lt == Tok::Eof || lt == Tok::CloseStatement || lt == Tok::CloseExpression || lt == Tok::Comment) {
      size_t start = pos_;
      while (pos_ < s_.size() && !at_tag_open(pos_)) ++pos_;
      if (pos_ > start) {
        push(Tok::Text, s_.substr(start, pos_ - start));
        return;
      }
    }
    if (starts(s_, pos_, "{#")) {
      pos_ += 2;
      bool strip_before = pos_ < s_.size() && s_[pos_] == '-';
      if (strip_before) ++pos_;
      std::string comment;
      while (!(pos_ + 1 < s_.size() && s_[pos_] == '#' && s_[pos_ + 1] == '}')) {
        if (pos_ + 2 >= s_.size()) fail("Missing end of comment tag");
        comment += s_[pos_++];
      }
      bool strip_after = !comment.empty() && comment.back() == '-';
      if (strip_after) comment.pop_back();
      if (strip_before) strip_trailing_whitespace();
      push(Tok::Comment, std::move(comment));
      pos_ += 2;
      if (strip_after) skip_leading_whitespace();
      return;
    }
    if (starts(s_, pos_, "{%-")) {
      strip_trailing_whitespace();
      push(Tok::OpenStatement, "{%");
      pos_ += 3;
      return;
    }
    if (starts(s_, pos_, "{{-")) {
      strip_trailing_whitespace();
      push(Tok::OpenExpression, "{{");
      curly_ = 0;
      pos_ += 3;
      return;
    }
    consume_while(Pred::Space);
    if (starts(s_, pos_, "-%}")) {
      push(Tok::CloseStatement, "%}");
      pos_ += 3;
      skip_leading_whitespace();
      return;
    }
    if (starts(s_, pos_, "-}}")) {
      push(Tok::CloseExpression, "}}");
      pos_ += 3;
      skip_leading_whitespace();
      return;
    }
    char c = s_[pos_];
    if (c == '-' || c == '+') {
      Tok t = last_type();
      if (t == Tok::Text || t == Tok::Eof) fail(std::string("Unexpected character: ") + c);
      if (t != Tok::Ident && t != Tok::Number && t != Tok::String && t != Tok::CloseParen &&
          t != Tok::CloseSquare) {
        ++pos_;
        std::string num = consume_while(Pred::Digit);
        if (!num.empty() && pos_ + 1 < s_.size() && s_[pos_] == '.' && is_digit_char(s_[pos_ + 1])) {
          ++pos_;
          num += "." + consume_while(Pred::Digit);
        }
        bool is_num = !num.empty();
        push(is_num ? Tok::Number : Tok::Unary, std::string(1, c) + num);
        return;
      }
    }
    static const std::pair<const char*, Tok> k_table[] = {
        {"{%", Tok::OpenStatement}, {"%}", Tok::CloseStatement}, {"{{", Tok::OpenExpression},
        {"}}", Tok::CloseExpression}, {"(", Tok::OpenParen}, {")", Tok::CloseParen},
        {"{", Tok::OpenCurly}, {"}", Tok::CloseCurly}, {"[", Tok::OpenSquare},
        {"]", Tok::CloseSquare}, {",", Tok::Comma}, {".", Tok::Dot}, {":", Tok::Colon},
        {"|", Tok::Pipe}, {"<=", Tok::Comparison}, {">=", Tok::Comparison},
        {"==", Tok::Comparison}, {"!=", Tok::Comparison}, {"<", Tok::Comparison},
        {">", Tok::Comparison}, {"+", Tok::Additive}, {"-", Tok::Additive}, {"~", Tok::Additive},
        {"**", Tok::Power}, {"*", Tok::Multiplicative}, {"//", Tok::Multiplicative},
        {"/", Tok::Multiplicative}, {"%", Tok::Multiplicative}, {"=", Tok::Equals}};
    for (const auto& [seq, type] : k_table) {
      std::string_view sv(seq);
      if (sv == "}}" && curly_ > 0) continue;
      if (!starts(s_, pos_, sv)) continue;
      push(type, std::string(sv));
      if (type == Tok::OpenExpression) {
        curly_ = 0;
      } else if (type == Tok::OpenCurly) {
        ++curly_;
      } else if (type == Tok::CloseCurly) {
        --curly_;
      }
      pos_ += sv.size();
      return;
    }
    if (c == '\'' || c == '"') {
      ++pos_;
      std::string str = consume_while(Pred::NotQuote, c);
      push(Tok::String, std::move(str));
      ++pos_;
      return;
    }
    if (is_digit_char(c)) {
      std::string num = consume_while(Pred::Digit);
      if (last_type() != Tok::Dot && pos_ + 1 < s_.size() && s_[pos_] == '.' &&
          is_digit_char(s_[pos_ + 1])) {
        ++pos_;
        num += "." + consume_while(Pred::Digit);
      }
      push(Tok::Number, std::move(num));
      return;
    }
    if (is_word_char(c)) {
      push(Tok::Ident, consume_while(Pred::Word));
      return;
    }
    size_t i = pos_;
    next_code_point(s_, i);
    fail("Unexpected character: " + s_.substr(pos_, i - pos_));
  }

  std::string s_;
  size_t pos_ = 0;
  int64_t curly_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  return Lexer(preprocess(utf8_sanitize(source))).run();
}

}  // namespace slm::jinja::detail
