// Plain text out of corpus files: HTML to text (scripts, styles and <head> dropped, block
// elements to line breaks, entities decoded), binary sniffing and UTF-8 repair.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace slm {

// Visible text of an HTML document. Whitespace runs collapse to one space (kept as written
// inside <pre>), block elements end lines (paragraph-level ones with a blank line), <br> is a
// line break, table cells are separated by a space. Named (common set) and numeric entities are
// decoded; code points that HTML forbids become U+FFFD, C1 controls map as windows-1252 does.
// Any input is accepted; the output is valid UTF-8 if the input text was.
std::string html_to_text(std::string_view html);

// Appends the character that the entity at s[i] == '&' stands for and advances i past it;
// returns false (nothing consumed) if it is not a recognised entity.
bool decode_html_entity(std::string_view s, size_t& i, std::string& out);

// Binary data: a NUL byte in the first `probe` bytes (text encodings other than UTF-16/32
// never contain one, and UTF-16/32 corpora are not supported).
bool looks_binary(std::string_view data, size_t probe = 1 << 16);

// Makes text valid UTF-8 (U+FFFD for invalid bytes) and drops a leading byte-order mark.
// Returns true if anything invalid was replaced.
bool repair_text(std::string& text);

}  // namespace slm
