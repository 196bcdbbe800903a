// The one bounded reader used by every file parser: tracks bytes remaining, checks every size
// for overflow before it is used, and caps strings and counts. Never reads past the buffer.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/status.h"

namespace slm {

// Overflow-checked arithmetic on 64-bit sizes. Return false on overflow.
inline bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

class ByteReader {
 public:
  // `what` names the source in error messages (a file name, "header", ...).
  ByteReader(const void* data, uint64_t size, std::string what = "input")
      : p_(static_cast<const uint8_t*>(data)), size_(size), what_(std::move(what)) {}

  uint64_t offset() const { return off_; }
  uint64_t size() const { return size_; }
  uint64_t remaining() const { return size_ - off_; }
  const uint8_t* data() const { return p_; }
  const uint8_t* cursor() const { return p_ + off_; }
  const std::string& what() const { return what_; }

  // Reads a little-endian trivially-copyable value. `field` names it in the error.
  template <class T>
  Status read(T* out, const char* field) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return truncated(field, sizeof(T));
    std::memcpy(out, p_ + off_, sizeof(T));
    off_ += sizeof(T);
    return Status();
  }

  // Reads `n` raw bytes as a view into the buffer.
  Status read_bytes(uint64_t n, const uint8_t** out, const char* field) {
    if (remaining() < n) return truncated(field, n);
    *out = p_ + off_;
    off_ += n;
    return Status();
  }

  // Reads a string of `len` bytes; rejects len > max_len.
  Status read_string(uint64_t len, uint64_t max_len, std::string* out, const char* field) {
    if (len > max_len) {
      return error("%s: %s: string length %llu exceeds limit %llu at offset %llu", what_.c_str(),
                   field, (unsigned long long)len, (unsigned long long)max_len,
                   (unsigned long long)off_);
    }
    const uint8_t* b = nullptr;
    SLM_TRY(read_bytes(len, &b, field));
    out->assign(reinterpret_cast<const char*>(b), len);
    return Status();
  }

  Status skip(uint64_t n, const char* field) {
    if (remaining() < n) return truncated(field, n);
    off_ += n;
    return Status();
  }

  // Moves to an absolute offset (<= size).
  Status seek(uint64_t off, const char* field) {
    if (off > size_) {
      return error("%s: %s: offset %llu is past the end (%llu bytes)", what_.c_str(), field,
                   (unsigned long long)off, (unsigned long long)size_);
    }
    off_ = off;
    return Status();
  }

  // Checks that `count` elements of `elem_size` bytes each could still follow; use this before
  // allocating anything sized by a count read from the file.
  Status check_count(uint64_t count, uint64_t elem_size, const char* field) const {
    uint64_t total = 0;
    if (!checked_mul(count, elem_size, &total) || total > remaining()) {
      return error("%s: %s: count %llu does not fit in the %llu bytes remaining at offset %llu",
                   what_.c_str(), field, (unsigned long long)count,
                   (unsigned long long)remaining(), (unsigned long long)off_);
    }
    return Status();
  }

 private:
  Status truncated(const char* field, uint64_t need) const {
    return error("%s: %s: truncated at offset %llu (need %llu bytes, %llu remain)",
                 what_.c_str(), field, (unsigned long long)off_, (unsigned long long)need,
                 (unsigned long long)remaining());
  }

  const uint8_t* p_;
  uint64_t size_;
  uint64_t off_ = 0;
  std::string what_;
};

}  // namespace slm
