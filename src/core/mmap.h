// Read-only memory-mapped files (weights are viewed in place, never copied) and small helpers
// for whole-file reads and atomic writes (temporary file, flush, rename).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace slm {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }
  MappedFile& operator=(MappedFile&& o) noexcept;

  // Maps the whole file read-only. An empty file maps to size 0 with a non-null data().
  static Expected<std::shared_ptr<MappedFile>> open(const std::string& path);

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  std::string path_;
};

// Read / write exactly n bytes on fd, retrying after EINTR. false on an error (errno says
// which) or, for reads, the end of the file first (errno 0).
bool read_full(int fd, void* p, size_t n);
bool write_full(int fd, const void* p, size_t n);

// Reads a whole (small) file; refuses files larger than max_bytes.
Expected<std::string> read_file(const std::string& path, uint64_t max_bytes = 1ull << 30);

// Writes `data` to path via path.tmp.<pid>: write, fsync, rename. The old file stays whole on
// any failure.
Status write_file_atomic(const std::string& path, std::string_view data);

}  // namespace slm
