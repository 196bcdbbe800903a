// Streaming GGUF writer: metadata and tensor infos are declared up front, then each tensor's
// bytes are appended in order, so a multi-GB file never has to sit in memory.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "formats/gguf.h"

namespace slm {

// Writes OUT through OUT.tmp.<pid> in the same directory: open() writes the header, append()
// adds tensor data (any number of chunks per tensor, tensors in declaration order), finish()
// checks every tensor is complete, fsyncs and renames over OUT. Until finish() succeeds OUT is
// untouched; on any error or if the object dies unfinished the temporary file is removed.
// The layout equals GgufWriter::serialize() for the same content (tensor data padded to the
// alignment, the last tensor included).
class GgufStreamWriter {
 public:
  GgufStreamWriter() = default;
  ~GgufStreamWriter();
  GgufStreamWriter(const GgufStreamWriter&) = delete;
  GgufStreamWriter& operator=(const GgufStreamWriter&) = delete;

  // Validates names (unique, non-empty), shapes and dtypes, and writes the header.
  // alignment: a power of two; a non-default one must also be given as general.alignment in
  // metadata (as llama.cpp reads it), which is checked.
  Status open(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
              const std::vector<GgufTensorInfo>& tensors, uint32_t version = 3,
              uint64_t alignment = 32);
  // Appends bytes of the current tensor; a chunk may not run past the tensor's end.
  Status append(const void* data, uint64_t size);
  Status finish();
  // Removes the temporary file (also done by the destructor when unfinished).
  void abort();

  uint64_t bytes_written() const { return written_; }
  uint64_t tensor_bytes(size_t i) const { return sizes_[i]; }
  size_t current_tensor() const { return cur_; }

 private:
  Status write_raw(const void* data, uint64_t size);
  Status pad_to_alignment();

  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t alignment_ = 32;
  std::vector<uint64_t> sizes_;  // data bytes per tensor
  std::vector<std::string> names_;
  size_t cur_ = 0;        // tensor being appended
  uint64_t cur_done_ = 0;  // its bytes so far
  uint64_t written_ = 0;   // file bytes so far
};

}  // namespace slm
