// libFuzzer target for the safetensors parser: any input must parse or fail with a Status,
// never crash, leak or read out of bounds; parsed views must lie inside the input.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy so ASan catches any read past the end.
  std::vector<uint8_t> buf(data, data + size);
  auto set = slm::SafetensorsSet::parse(buf.data(), buf.size(), "fuzz");
  if (!set.ok()) return 0;
  const uint8_t* lo = buf.data();
  const uint8_t* hi = buf.data() + buf.size();
  for (const auto& t : set->tensors()) {
    const uint8_t* p = static_cast<const uint8_t*>(t.data);
    if (p < lo || t.nbytes > static_cast<uint64_t>(hi - p)) std::abort();
    if (t.nelements() < 0) std::abort();
    uint64_t sum = 0;  // touch every byte of the view
    for (uint64_t i = 0; i < t.nbytes; ++i) sum += p[i];
    if (sum == 0xffffffffffffffffull) std::abort();
    if (set->tensor(t.name) != &t) std::abort();
  }
  return 0;
}
