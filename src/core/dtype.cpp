// Element type table and exact scalar half/bfloat conversions.
#include "core/dtype.h"

#include <cctype>
#include <cmath>

namespace slm {

namespace {

struct Entry {
  uint32_t id;
  DTypeTraits traits;
};

// Block geometry per the GGUF/ggml format definition.
constexpr Entry k_types[] = {
    {0, {"F32", 1, 4}},        {1, {"F16", 1, 2}},      {2, {"Q4_0", 32, 18}},
    {3, {"Q4_1", 32, 20}},     {6, {"Q5_0", 32, 22}},   {7, {"Q5_1", 32, 24}},
    {8, {"Q8_0", 32, 34}},     {9, {"Q8_1", 32, 36}},   {10, {"Q2_K", 256, 84}},
    {11, {"Q3_K", 256, 110}},  {12, {"Q4_K", 256, 144}}, {13, {"Q5_K", 256, 176}},
    {14, {"Q6_K", 256, 210}},  {15, {"Q8_K", 256, 292}}, {24, {"I8", 1, 1}},
    {25, {"I16", 1, 2}},       {26, {"I32", 1, 4}},     {27, {"I64", 1, 8}},
    {28, {"F64", 1, 8}},       {30, {"BF16", 1, 2}},
};

}  // namespace

const DTypeTraits* dtype_traits(uint32_t id) {
  for (const auto& e : k_types) {
    if (e.id == id) return &e.traits;
  }
  return nullptr;
}

const char* dtype_name(DType t) {
  const DTypeTraits* tr = dtype_traits(t);
  return tr ? tr->name : "unknown";
}

bool dtype_from_name(std::string_view name, DType* out) {
  for (const auto& e : k_types) {
    std::string_view n = e.traits.name;
    if (n.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < n.size() && eq; ++i) {
      eq = std::toupper(static_cast<unsigned char>(name[i])) == n[i];
    }
    if (eq) {
      *out = static_cast<DType>(e.id);
      return true;
    }
  }
  return false;
}

bool dtype_row_bytes(DType t, int64_t n, uint64_t* out) {
  const DTypeTraits* tr = dtype_traits(t);
  if (!tr || n < 0 || n % tr->block_size != 0) return false;
  return !__builtin_mul_overflow(static_cast<uint64_t>(n / tr->block_size),
                                 static_cast<uint64_t>(tr->type_size), out);
}

float fp16_to_fp32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return static_cast<uint16_t>(sign | 0x7e00);  // NaN
  if (abs >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
  if (abs < 0x38800000) {  // subnormal or zero in half
    // value = abs_float; half subnormal unit is 2^-24.
    float af;
    std::memcpy(&af, &abs, 4);
    float scaled = af * 16777216.0f;  // 2^24, exact
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));  // round-half-even (default mode)
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t e = ((abs >> 23) - 127 + 15);
  uint32_t mant = abs & 0x7fffff;
  uint32_t h = (e << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // may carry into exponent: correct
  return static_cast<uint16_t>(sign | h);
}

uint16_t fp32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < n_dims; ++i) {
    if (i) s += ", ";
    s += std::to_string(ne[i]);
  }
  return s + "]";
}

}  // namespace slm
