// HTTP/1.1 for the server: a strict, bounded request parser (request line, headers, Content-Length
// bodies) that never trusts the peer, and helpers that format response heads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace slm::serve {

struct HttpLimits {
  int64_t max_request_line = 8192;   // bytes, without CRLF
  int64_t max_header_bytes = 32768;  // request line + all header lines
  int64_t max_headers = 64;
  int64_t max_body = 1 << 20;        // Content-Length above this: 413
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent, e.g. "/v1/models?x=1"
  std::string path;    // target without the query
  int version_minor = 1;  // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed
  std::string body;
  bool keep_alive = true;

  // The first header with this (lower-case) name, or nullptr.
  const std::string* header(std::string_view name) const;
};

enum class ParseState { incomplete, complete, error };

struct ParseResult {
  ParseState state = ParseState::incomplete;
  int64_t consumed = 0;  // bytes of the buffer that made up the request (complete only)
  int status = 0;        // HTTP status to answer with (error only): 400, 411, 413, 414, 431, 501, 505
  std::string message;   // why (error only)
};

// Parses one request from the start of buf. incomplete: more bytes are needed (and the limits
// allow them); complete: *out is filled and `consumed` bytes belong to it; error: answer
// `status` and close the connection. Chunked request bodies are refused with 411 (clients
// must send Content-Length); any other Transfer-Encoding gives 501.
ParseResult parse_http_request(std::string_view buf, const HttpLimits& limits, HttpRequest* out);

const char* http_reason(int status);

// "HTTP/1.1 <status> <reason>\r\n" + headers + (Content-Length when content_length >= 0) +
// "\r\n". Header values must not contain CR or LF (callers pass constants and numbers).
std::string http_response_head(int status,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               int64_t content_length);

// True when a and b are equal; the time taken depends only on the lengths' maximum, not on
// where the first difference is (API key checks).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace slm::serve
