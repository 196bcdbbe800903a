// GGUF v2/v3 reader (memory-mapped, hardened) and writer.
// Metadata values of every type, arrays, general.alignment; tensors are views into the map.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mmap.h"
#include "core/status.h"

namespace slm {

enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars live in the matching member; arrays hold their elements in the
// vector of the element type's widest kind (ints in `ints`, floats in `floats`, strings in
// `strings`, bools in `ints`); nested arrays are kept as `array` children.
struct GgufValue {
  GgufType type = GgufType::UINT8;
  GgufType elem_type = GgufType::UINT8;  // for ARRAY
  int64_t i = 0;                         // signed and unsigned ints (UINT64 > INT64_MAX: see u)
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::vector<GgufValue> array;  // nested arrays only
  uint64_t array_len() const;
};
// Value builders. Integer scalars keep the same 64-bit pattern in both `i` and `u` (the writer
// emits `u` for unsigned types and `i` for signed ones); BOOL also sets i/u to 0 or 1.
GgufValue gguf_int(GgufType t, int64_t v);    // INT8..INT64 (and unsigned types by pattern)
GgufValue gguf_uint(GgufType t, uint64_t v);  // UINT8..UINT64
GgufValue gguf_float(GgufType t, double v);   // FLOAT32 / FLOAT64
GgufValue gguf_bool(bool v);
GgufValue gguf_string(std::string v);
// Arrays: element values go in ints (integer and bool types, UINT64 by bit pattern), floats,
// strings, or `children` for arrays of arrays.
GgufValue gguf_int_array(GgufType elem, std::vector<int64_t> v);
GgufValue gguf_float_array(GgufType elem, std::vector<double> v);
GgufValue gguf_string_array(std::vector<std::string> v);
GgufValue gguf_array_array(std::vector<GgufValue> children);
// A tensor as the header declares it (the writers' input).
struct GgufTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> ne;  // GGUF order, ne[0] innermost; 1..4 dims
};

// The header bytes (magic .. tensor infos, without the padding before the data) for this
// content; tensor offsets are the running sums of `sizes` (data bytes per tensor), each padded
// to `alignment`. The one encoder behind GgufWriter and GgufStreamWriter.
std::string gguf_header_bytes(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                              const std::vector<GgufTensorInfo>& tensors,
                              const std::vector<uint64_t>& sizes, uint32_t version,
                              uint64_t alignment);

class GgufFile {
 public:
  // Maps and parses; every field is validated (see gguf.cpp for the limits).
  static Expected<GgufFile> open(const std::string& path);
  // Parses an in-memory image (used by tests and fuzzers); data must outlive the result.
  static Expected<GgufFile> parse(const uint8_t* data, uint64_t size, std::string what);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::string& path() const { return path_; }
  // The whole file image (the mapping for open(), the caller's buffer for parse()); tensor
  // data pointers lie inside it.
  const uint8_t* file_data() const { return data_; }
  uint64_t file_size() const { return size_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters: error if missing or of an incompatible type. Integer getters accept any
  // integer type whose value fits; float getters accept FLOAT32/FLOAT64 (and ints).
  Expected<std::string> get_string(std::string_view key) const;
  Expected<int64_t> get_int(std::string_view key) const;
  Expected<double> get_float(std::string_view key) const;
  Expected<bool> get_bool(std::string_view key) const;
  Expected<std::vector<std::string>> get_string_array(std::string_view key) const;
  Expected<std::vector<int64_t>> get_int_array(std::string_view key) const;
  Expected<std::vector<double>> get_float_array(std::string_view key) const;
  // With a default when the key is absent (still an error if present with a bad type).
  Expected<int64_t> get_int_or(std::string_view key, int64_t dflt) const;
  Expected<double> get_float_or(std::string_view key, double dflt) const;
  Expected<bool> get_bool_or(std::string_view key, bool dflt) const;
  Expected<std::string> get_string_or(std::string_view key, std::string dflt) const;

  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* tensor(std::string_view name) const;

 private:
  std::shared_ptr<MappedFile> map_;  // keeps tensor views valid
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF file: add metadata and tensors (bytes already in the tensor's dtype), then
// write() atomically (temporary file, flush, rename).
class GgufWriter {
 public:
  // version 2 or 3 (the layouts are the same); other values are written as given so tests can
  // make bad files. alignment must be a power of two (else 32 is used); a non-default one is
  // recorded as general.alignment (u32).
  explicit GgufWriter(uint32_t version = 3, uint64_t alignment = 32);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // Any value (all types, nested arrays): used by tests to cover every metadata type. Setting
  // an existing key replaces its value in place (keys stay unique and in first-set order).
  void set_value(const std::string& key, const GgufValue& v);
  // ne in GGUF order (ne[0] innermost). bytes.size() must equal the dtype's size for ne.
  Status add_tensor(const std::string& name, DType dtype, std::vector<int64_t> ne,
                    std::string bytes);
  // The complete file image.
  std::string serialize() const;
  Status write(const std::string& path) const;

 private:
  uint32_t version_;
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> ne;
    std::string bytes;
  };
  std::vector<Tensor> tensors_;
};

}  // namespace slm
