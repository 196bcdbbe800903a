// Dot-kernel registry: routes each weight dtype to the family file that implements it.
#include "kernels/qdot.h"

#include <cstdlib>

#include "kernels/quant.h"

namespace slm {

int64_t act_block_size(ActType t) {
  switch (t) {
    case ActType::f32:
      return 1;
    case ActType::q8_0:
    case ActType::q8_1:
      return 32;
    case ActType::q8_k:
      return 256;
  }
  return 1;
}

size_t act_row_bytes(ActType t, int64_t n) {
  const size_t blocks = static_cast<size_t>(n / act_block_size(t));
  switch (t) {
    case ActType::f32:
      return static_cast<size_t>(n) * sizeof(float);
    case ActType::q8_0:
      return blocks * sizeof(ActBlockQ8_0);
    case ActType::q8_1:
      return blocks * sizeof(ActBlockQ8_1);
    case ActType::q8_k:
      return blocks * sizeof(ActBlockQ8_K);
  }
  return 0;
}

namespace {
bool is_kquant(DType t) {
  return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K ||
         t == DType::Q6_K;
}
}  // namespace

const DotKernel* dot_kernel(DType w, bool simd) {
  // SLM_SCALAR_KERNELS=1 selects the scalar references everywhere: a debugging aid that tells a
  // SIMD kernel bug from the arithmetic of the format.
  static const bool force_scalar = [] {
    const char* v = std::getenv("SLM_SCALAR_KERNELS");
    return v && *v && *v != '0';
  }();
  if (force_scalar) simd = false;
  return is_kquant(w) ? kquant_dot_kernel(w, simd) : legacy_dot_kernel(w, simd);
}

void dequantize_row_fast(DType t, const void* src, float* dst, int64_t n) {
  const bool done = is_kquant(t) ? kquant_dequantize_fast(t, src, dst, n)
                                 : legacy_dequantize_fast(t, src, dst, n);
  if (!done) dequantize_row(t, src, dst, n);
}

}  // namespace slm
