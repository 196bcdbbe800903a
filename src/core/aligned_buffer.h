// A 64-byte-aligned buffer that only grows: the per-thread packing buffers of the GEMMs, which
// steady-state calls then reuse without allocating.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace slm {

template <class T>
class AlignedBuffer {
 public:
  // Room for n elements (the old contents are not kept when it grows); null if allocation
  // failed.
  T* get(size_t n) {
    if (n > cap_) {
      const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
      p_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
      cap_ = p_ ? n : 0;
    }
    return p_.get();
  }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> p_;
  size_t cap_ = 0;
};

}  // namespace slm
