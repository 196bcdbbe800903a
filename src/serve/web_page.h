// The chat page served at GET /: one self-contained HTML document (no external scripts or
// styles) that streams replies from /v1/chat/completions and shows tokens per second.
#pragma once

#include <string_view>

namespace slm::serve {

std::string_view chat_page_html();

}  // namespace slm::serve
