// The nesting depth of JSON text, measured before a recursive parser (nlohmann) sees it, so
// hostile input ("[[[[..." a million deep) is refused instead of exhausting the stack.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace slm {

// The deepest nesting of [ and { outside strings (escapes honoured). Not a validator.
int64_t json_nesting_depth(std::string_view text);

// Error "nesting deeper than N" when text nests deeper than max_depth.
Status check_json_depth(std::string_view text, int64_t max_depth = 64);

}  // namespace slm
