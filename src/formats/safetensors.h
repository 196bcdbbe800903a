// safetensors reader (single file or sharded via model.safetensors.index.json) and writer.
// Tensors are views into memory-mapped files; shapes are converted to GGUF order (ne[0]
// innermost), so a PyTorch (out, in) weight has ne = {in, out}.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mmap.h"
#include "core/status.h"

namespace slm {

// Limits applied to every file (see safetensors.cpp for why each is what it is).
inline constexpr uint64_t k_safetensors_max_header = 100ull << 20;  // as the reference reader
inline constexpr int k_safetensors_max_dims = 8;

// The safetensors dtype string for a DType ("F32", "BF16", ...), or nullptr if safetensors
// cannot store it (quantized block types).
const char* safetensors_dtype_name(DType t);

// Every file is validated as the format specification requires: header length within the file
// and under 100 MB, a JSON object header starting with '{', no duplicate keys, every tensor's
// dtype/shape/data_offsets consistent, and the tensors' byte ranges covering the data buffer
// exactly (no overlap, no hole, no trailing bytes). Views may be unaligned when the writer did
// not pad the header to 8 bytes: read elements with memcpy or check the pointer's alignment.
class SafetensorsSet {
 public:
  // One .safetensors file.
  static Expected<SafetensorsSet> open_file(const std::string& path);
  // A model directory: model.safetensors, or model.safetensors.index.json with its shards.
  static Expected<SafetensorsSet> open_dir(const std::string& dir);
  // Parses an in-memory image (tests, fuzzers); data must outlive the result.
  static Expected<SafetensorsSet> parse(const uint8_t* data, uint64_t size, std::string what);

  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* tensor(std::string_view name) const;
  // Like tensor(), but an error that says why the tensor is absent (not in the files, or
  // present with a dtype/rank slm cannot view).
  Expected<const TensorView*> get(std::string_view name) const;
  // The "__metadata__" string map of the (first) file.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Tensors that are valid safetensors but cannot be TensorViews (dtypes such as U8, BOOL,
  // F8_E4M3, or more than 4 dimensions): name -> reason. They are validated (their byte
  // ranges count for coverage) but are not in tensors().
  const std::map<std::string, std::string, std::less<>>& unsupported() const {
    return unsupported_;
  }
  // The mapped files the views point into (empty after parse()). Keep these alive for as long
  // as any copied TensorView is used.
  const std::vector<std::shared_ptr<MappedFile>>& mappings() const { return maps_; }

 private:
  // Validates one file image and appends its tensors; names_out (optional) receives the
  // names of every tensor the file holds, supported or not.
  Status add_file(const uint8_t* data, uint64_t size, const std::string& what,
                  std::vector<std::string>* names_out);
  std::vector<std::shared_ptr<MappedFile>> maps_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, std::string, std::less<>> unsupported_;
  bool have_metadata_ = false;
};

// Writes a safetensors file. Supported dtypes: F32, F16, BF16 (and the plain integer/F64
// types the reader views); tensor ne in GGUF order, the header stores the PyTorch order.
// Tensors are laid out in the order added; the header is padded with spaces so the data
// starts 8-byte aligned. Written atomically.
class SafetensorsWriter {
 public:
  Status add_tensor(const std::string& name, DType dtype, std::vector<int64_t> ne,
                    std::string bytes);
  // Metadata strings that are not valid UTF-8 are written with U+FFFD replacements.
  void set_metadata(const std::string& key, const std::string& value);
  std::string serialize() const;
  Status write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> ne;
    std::string bytes;
  };
  std::vector<Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace slm
