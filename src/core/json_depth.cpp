// JSON nesting depth scan: one pass over the bytes, tracking string and escape state.
#include "core/json_depth.h"

#include <algorithm>

namespace slm {

int64_t json_nesting_depth(std::string_view text) {
  int64_t depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

Status check_json_depth(std::string_view text, int64_t max_depth) {
  if (json_nesting_depth(text) > max_depth) {
    return error("nesting deeper than %lld", static_cast<long long>(max_depth));
  }
  return Status();
}

}  // namespace slm
