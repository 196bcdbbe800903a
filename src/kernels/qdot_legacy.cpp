// Dot kernels of the legacy weight family (placeholder until the kernels land: no kernel, so
// matmul keeps its dequantize-and-dot path).
#include "kernels/qdot.h"

namespace slm {

const DotKernel* legacy_dot_kernel(DType, bool) { return nullptr; }
bool legacy_dequantize_fast(DType, const void*, float*, int64_t) { return false; }

}  // namespace slm
