// libFuzzer target for the GGUF parser: any input must parse or fail cleanly; on success every
// tensor's first and last byte, every getter and a first row's dequantization are exercised.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "formats/gguf.h"
#include "kernels/quant.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = slm::GgufFile::parse(data, size, "fuzz.gguf");
  if (!f.ok()) return 0;
  volatile uint8_t sink = 0;
  for (const auto& t : f->tensors()) {
    const uint8_t* p = static_cast<const uint8_t*>(t.data);
    sink = sink ^ p[0] ^ p[t.nbytes - 1];
    // Dequantize the first row when it is small (the dequantizers trust validated views).
    if (slm::can_dequantize(t.dtype) && t.ne[0] <= 4096) {
      std::vector<float> row(static_cast<size_t>(t.ne[0]));
      slm::dequantize_row(t.dtype, t.data, row.data(), t.ne[0]);
      sink = sink ^ static_cast<uint8_t>(row[0] == row[0]);
    }
    if (f->tensor(t.name) != &t) __builtin_trap();
  }
  for (const auto& [key, v] : f->metadata()) {
    (void)f->get_string(key);
    (void)f->get_int(key);
    (void)f->get_float(key);
    (void)f->get_bool(key);
    (void)f->get_string_array(key);
    (void)f->get_int_array(key);
    (void)f->get_float_array(key);
    (void)f->get_int_or(key, 0);
    (void)f->get_float_or(key, 0);
    (void)f->get_bool_or(key, false);
    (void)f->get_string_or(key, "");
    sink = sink ^ static_cast<uint8_t>(v.array_len());
  }
  (void)sink;
  return 0;
}
