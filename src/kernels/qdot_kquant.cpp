// Dot kernels of the kquant weight family (placeholder until the kernels land: no kernel, so
// matmul keeps its dequantize-and-dot path).
#include "kernels/qdot.h"

namespace slm {

const DotKernel* kquant_dot_kernel(DType, bool) { return nullptr; }
bool kquant_dequantize_fast(DType, const void*, float*, int64_t) { return false; }

}  // namespace slm
