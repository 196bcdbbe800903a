// HTTP/1.1 request parsing (RFC 9112 syntax, strictly: CRLF line ends, no obs-fold, token
// names, one Content-Length) and response-head formatting for the server.
#include "serve/http.h"

#include <cstdio>

namespace slm::serve {
namespace {

// RFC 9110 tchar: the characters of methods and header names.
bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

ParseResult fail(int status, std::string message) {
  ParseResult r;
  r.state = ParseState::error;
  r.status = status;
  r.message = std::move(message);
  return r;
}

// Request line: METHOD SP origin-form SP HTTP/1.x
ParseResult parse_request_line(std::string_view line, HttpRequest* out) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return fail(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  for (unsigned char c : method) {
    if (!is_tchar(c)) return fail(400, "invalid character in the method");
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return fail(400, "malformed request line");
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) return fail(400, "invalid character in the request target");
  }
  bool asterisk = target == "*" && method == "OPTIONS";
  if (target.front() != '/' && !asterisk) {
    return fail(400, "the request target must be a path starting with '/'");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return fail(400, "malformed HTTP version");
  }
  if (version[5] != '1') return fail(505, "only HTTP/1.0 and HTTP/1.1 are supported");
  out->method.assign(method);
  out->target.assign(target);
  size_t q = target.find('?');
  out->path.assign(target.substr(0, q));
  out->version_minor = version[7] - '0';
  return ParseResult{};
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

ParseResult parse_http_request(std::string_view buf, const HttpLimits& limits, HttpRequest* out) {
  // RFC 9112 2.2: ignore empty lines before the request line (a few, from sloppy clients).
  int64_t start = 0;
  while (start + 1 < static_cast<int64_t>(buf.size()) && start < 8 && buf[start] == '\r' &&
         buf[start + 1] == '\n') {
    start += 2;
  }
  std::string_view rest = buf.substr(static_cast<size_t>(start));
  size_t head_end = rest.find("\r\n\r\n");
  size_t line_end = rest.find("\r\n");
  if (line_end == std::string_view::npos) {
    if (static_cast<int64_t>(rest.size()) > limits.max_request_line) {
      return fail(414, "request line longer than " + std::to_string(limits.max_request_line) + " bytes");
    }
  } else if (static_cast<int64_t>(line_end) > limits.max_request_line) {
    return fail(414, "request line longer than " + std::to_string(limits.max_request_line) + " bytes");
  }
  if (head_end == std::string_view::npos) {
    if (static_cast<int64_t>(rest.size()) > limits.max_header_bytes) {
      return fail(431, "request headers larger than " + std::to_string(limits.max_header_bytes) + " bytes");
    }
    // A bare LF where a line should end is malformed, not incomplete: a strict parser does
    // not guess where lines end.
    if (rest.find('\n') != std::string_view::npos && (line_end == std::string_view::npos ||
                                                      rest.find('\n') < line_end + 1)) {
      return fail(400, "lines must end with CRLF");
    }
    return ParseResult{};
  }
  if (static_cast<int64_t>(head_end) + 2 > limits.max_header_bytes) {
    return fail(431, "request headers larger than " + std::to_string(limits.max_header_bytes) + " bytes");
  }

  HttpRequest req;
  std::string_view head = rest.substr(0, head_end + 2);  // every line ends with CRLF
  size_t pos = head.find("\r\n");
  ParseResult rl = parse_request_line(head.substr(0, pos), &req);
  if (rl.state == ParseState::error) return rl;
  pos += 2;

  bool have_length = false;
  int64_t content_length = 0;
  bool have_te = false;
  std::string_view transfer_encoding;
  bool have_host = false;
  bool conn_close = false, conn_keep_alive = false;
  while (pos < head.size()) {
    size_t eol = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) return fail(400, "empty header line");
    if (line.front() == ' ' || line.front() == '\t') {
      return fail(400, "folded header lines are not allowed");
    }
    if (static_cast<int64_t>(req.headers.size()) >= limits.max_headers) {
      return fail(431, "more than " + std::to_string(limits.max_headers) + " headers");
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail(400, "malformed header line");
    std::string_view name = line.substr(0, colon);
    for (unsigned char c : name) {
      if (!is_tchar(c)) return fail(400, "invalid character in a header name");
    }
    std::string_view value = trim_ows(line.substr(colon + 1));
    for (unsigned char c : value) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return fail(400, "control character in header '" + std::string(name) + "'");
      }
    }
    std::string lname(name);
    for (char& c : lname) c = lower(c);

    if (lname == "content-length") {
      if (value.empty()) return fail(400, "empty Content-Length");
      int64_t v = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return fail(400, "Content-Length is not a decimal number");
        // Anything past max_body is refused anyway, so stop before int64 can overflow.
        if (v > limits.max_body) break;
        v = v * 10 + (c - '0');
      }
      if (have_length && v != content_length) return fail(400, "conflicting Content-Length headers");
      have_length = true;
      content_length = v;
    } else if (lname == "transfer-encoding") {
      if (have_te) return fail(400, "repeated Transfer-Encoding header");
      have_te = true;
      transfer_encoding = value;
    } else if (lname == "host") {
      if (have_host) return fail(400, "repeated Host header");
      have_host = true;
    } else if (lname == "connection") {
      // A comma-separated token list.
      std::string_view v = value;
      while (!v.empty()) {
        size_t comma = v.find(',');
        std::string_view tok = trim_ows(v.substr(0, comma));
        if (iequals(tok, "close")) conn_close = true;
        if (iequals(tok, "keep-alive")) conn_keep_alive = true;
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
      }
    }
    req.headers.emplace_back(std::move(lname), std::string(value));
  }
  if (req.version_minor >= 1 && !have_host) return fail(400, "HTTP/1.1 request without a Host header");
  if (have_te) {
    if (have_length) return fail(400, "both Transfer-Encoding and Content-Length given");
    std::string_view last = transfer_encoding;
    size_t comma = last.rfind(',');
    if (comma != std::string_view::npos) last = trim_ows(last.substr(comma + 1));
    if (iequals(last, "chunked")) {
      return fail(411, "chunked request bodies are not supported; send Content-Length");
    }
    return fail(501, "unsupported Transfer-Encoding");
  }
  if (content_length > limits.max_body) {
    return fail(413, "request body larger than " + std::to_string(limits.max_body) + " bytes");
  }
  int64_t body_start = start + static_cast<int64_t>(head_end) + 4;
  if (static_cast<int64_t>(buf.size()) - body_start < content_length) return ParseResult{};
  req.body.assign(buf.substr(static_cast<size_t>(body_start), static_cast<size_t>(content_length)));
  req.keep_alive = req.version_minor >= 1 ? !conn_close : (conn_keep_alive && !conn_close);
  *out = std::move(req);
  ParseResult r;
  r.state = ParseState::complete;
  r.consumed = body_start + content_length;
  return r;
}

const char* http_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string http_response_head(int status,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               int64_t content_length) {
  std::string s = "HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) + "\r\n";
  for (const auto& [k, v] : headers) {
    s += k;
    s += ": ";
    s += v;
    s += "\r\n";
  }
  if (content_length >= 0) s += "Content-Length: " + std::to_string(content_length) + "\r\n";
  s += "\r\n";
  return s;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  // Read both strings over the full common range (wrapping the shorter one), so timing does
  // not reveal a matching prefix.
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = a.empty() ? 0 : static_cast<unsigned char>(a[i % a.size()]);
    unsigned char y = b.empty() ? 0 : static_cast<unsigned char>(b[i % b.size()]);
    diff |= static_cast<unsigned>(x ^ y);
  }
  // Keep the compiler from short-circuiting the loop.
  volatile unsigned sink = diff;
  return sink == 0;
}

}  // namespace slm::serve
