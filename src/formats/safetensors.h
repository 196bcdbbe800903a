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
  // The "__metadata__" string map of the (first) file.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  Status add_file(const uint8_t* data, uint64_t size, const std::string& what);
  std::vector<std::shared_ptr<MappedFile>> maps_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes a safetensors file. Supported dtypes: F32, F16, BF16 (tensor ne in GGUF order; the
// header stores the PyTorch order). Written atomically.
class SafetensorsWriter {
 public:
  Status add_tensor(const std::string& name, DType dtype, std::vector<int64_t> ne,
                    std::string bytes);
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
