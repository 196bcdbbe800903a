// libFuzzer target for the llama2.c checkpoint parser: any input must parse or fail with a
// Status, never crash or read out of bounds; parsed views must lie inside the input.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "formats/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> buf(data, data + size);  // exact size: ASan sees overreads
  auto ck = slm::Llama2cCheckpoint::parse(buf.data(), buf.size(), "fuzz");
  if (!ck.ok()) return 0;
  const uint8_t* lo = buf.data();
  const uint8_t* hi = buf.data() + buf.size();
  for (const auto& t : ck->tensors()) {
    const uint8_t* p = static_cast<const uint8_t*>(t.data);
    if (p < lo || t.nbytes > static_cast<uint64_t>(hi - p)) std::abort();
    if (static_cast<uint64_t>(t.nelements()) * 4 != t.nbytes) std::abort();
    if (t.nbytes && (p[0] | p[t.nbytes - 1]) == 0x1ff) std::abort();  // touch both ends
  }
  return 0;
}
