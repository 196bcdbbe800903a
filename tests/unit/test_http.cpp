// HTTP/1.1 request parser: well-formed requests from RFC 9112's grammar, every prefix of them
// incomplete, and a table of malformed requests, each with the status RFC 9110/9112 calls for.
#include <gtest/gtest.h>

#include <string>

#include "serve/http.h"

namespace slm::serve {
namespace {

ParseResult parse(const std::string& s, HttpRequest* req, HttpLimits lim = {}) {
  return parse_http_request(s, lim, req);
}

TEST(Http, SimpleGet) {
  HttpRequest r;
  std::string s = "GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent:  t  \r\n\r\n";
  ParseResult p = parse(s, &r);
  ASSERT_EQ(p.state, ParseState::complete) << p.message;
  EXPECT_EQ(p.consumed, static_cast<int64_t>(s.size()));
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/v1/models?x=1");
  EXPECT_EQ(r.path, "/v1/models");
  ASSERT_NE(r.header("user-agent"), nullptr);
  EXPECT_EQ(*r.header("user-agent"), "t");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_TRUE(r.body.empty());
}

TEST(Http, PostBodyAndPipelining) {
  std::string one = "POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  std::string two = "GET / HTTP/1.0\r\n\r\n";
  std::string both = one + two;
  HttpRequest r;
  ParseResult p = parse(both, &r);
  ASSERT_EQ(p.state, ParseState::complete);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(p.consumed, static_cast<int64_t>(one.size()));
  p = parse(both.substr(static_cast<size_t>(p.consumed)), &r);
  ASSERT_EQ(p.state, ParseState::complete) << p.message;
  EXPECT_EQ(r.version_minor, 0);
  EXPECT_FALSE(r.keep_alive);  // HTTP/1.0 closes unless asked
}

TEST(Http, ConnectionHeader) {
  HttpRequest r;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", &r).state,
            ParseState::complete);
  EXPECT_FALSE(r.keep_alive);
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r).state, ParseState::complete);
  EXPECT_TRUE(r.keep_alive);
}

TEST(Http, EveryPrefixIsIncomplete) {
  std::string s = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"a\": true}";
  for (size_t n = 0; n < s.size(); ++n) {
    HttpRequest r;
    ParseResult p = parse(s.substr(0, n), &r);
    EXPECT_EQ(p.state, ParseState::incomplete) << "prefix " << n << ": " << p.message;
  }
  HttpRequest r;
  EXPECT_EQ(parse(s, &r).state, ParseState::complete);
}

struct Bad {
  const char* name;
  std::string request;
  int status;
};

TEST(Http, MalformedRequestsTable) {
  HttpLimits lim;
  lim.max_request_line = 64;
  lim.max_header_bytes = 256;
  lim.max_headers = 4;
  lim.max_body = 100;
  const std::string h = "Host: a\r\n";
  const Bad table[] = {
      {"no version", "GET /\r\n\r\n", 400},
      {"lowercase proto", "GET / http/1.1\r\n" + h + "\r\n", 400},
      {"http2", "GET / HTTP/2.0\r\n" + h + "\r\n", 505},
      {"http0.9 style", "GET / HTTP/0.9\r\n\r\n", 505},
      {"absolute form", "GET http://x/ HTTP/1.1\r\n" + h + "\r\n", 400},
      {"double space", "GET  / HTTP/1.1\r\n" + h + "\r\n", 400},
      {"space in target", "GET /a b HTTP/1.1\r\n" + h + "\r\n", 400},
      {"control in target", std::string("GET /a\x01 HTTP/1.1\r\n") + h + "\r\n", 400},
      {"bad method char", "G(T / HTTP/1.1\r\n" + h + "\r\n", 400},
      {"missing host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"no colon", "GET / HTTP/1.1\r\n" + h + "Oops\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\n" + h + "X: a\r\n b\r\n\r\n", 400},
      {"NUL in value", std::string("GET / HTTP/1.1\r\n") + h + std::string("X: a\0b\r\n\r\n", 10), 400},
      {"CL not a number", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1x\r\n\r\n", 400},
      {"CL negative", "POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", 400},
      {"CL empty", "POST / HTTP/1.1\r\n" + h + "Content-Length: \r\n\r\n", 400},
      {"CL conflict", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
      {"CL overflow", "POST / HTTP/1.1\r\n" + h + "Content-Length: 99999999999999999999999999\r\n\r\n", 413},
      {"body too large", "POST / HTTP/1.1\r\n" + h + "Content-Length: 101\r\n\r\n", 413},
      {"chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411},
      {"gzip TE", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n", 501},
      {"TE and CL", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
      {"long line", "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n" + h + "\r\n", 414},
      {"long line unterminated", "GET /" + std::string(100, 'a'), 414},
      {"too many headers", "GET / HTTP/1.1\r\n" + h + "A: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n", 431},
      {"headers too big", "GET / HTTP/1.1\r\n" + h + "A: " + std::string(300, 'x') + "\r\n\r\n", 431},
      {"headers too big unterminated", "GET / HTTP/1.1\r\n" + h + "A: " + std::string(300, 'x'), 431},
  };
  for (const Bad& b : table) {
    HttpRequest r;
    ParseResult p = parse_http_request(b.request, lim, &r);
    EXPECT_EQ(p.state, ParseState::error) << b.name;
    EXPECT_EQ(p.status, b.status) << b.name << ": " << p.message;
    EXPECT_FALSE(p.message.empty()) << b.name;
  }
}

TEST(Http, ResponseHead) {
  std::string s = http_response_head(404, {{"Content-Type", "application/json"}}, 2);
  EXPECT_EQ(s, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(http_response_head(200, {}, -1), "HTTP/1.1 200 OK\r\n\r\n");
}

TEST(Http, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("secret", "secret"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(constant_time_equal("secret", "secret2"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_FALSE(constant_time_equal("x", ""));
  EXPECT_FALSE(constant_time_equal("ab", "abab"));  // wrapping must not make prefixes equal
}

}  // namespace
}  // namespace slm::serve
