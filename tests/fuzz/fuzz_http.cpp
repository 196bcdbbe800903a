// libFuzzer target for the HTTP request parser: any bytes, parsed request after request as a
// connection would, must give complete/incomplete/error with in-range offsets, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "serve/http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  slm::serve::HttpLimits lim;
  lim.max_body = 4096;
  lim.max_header_bytes = 2048;
  lim.max_request_line = 512;
  // Parse as a server would: request after request from the same buffer.
  while (!buf.empty()) {
    slm::serve::HttpRequest req;
    slm::serve::ParseResult r = slm::serve::parse_http_request(buf, lim, &req);
    if (r.state != slm::serve::ParseState::complete) {
      if (r.state == slm::serve::ParseState::error && (r.status < 400 || r.status > 599)) std::abort();
      break;
    }
    if (r.consumed <= 0 || r.consumed > static_cast<int64_t>(buf.size())) std::abort();
    if (static_cast<int64_t>(req.body.size()) > lim.max_body) std::abort();
    buf.remove_prefix(static_cast<size_t>(r.consumed));
  }
  return 0;
}
