// K-family quantizers: fit sub-block scales (and mins) by a candidate search plus least
// squares, quantize those scales to their 4/6/8-bit codes, then pack the ggml block layouts.
//
// Shapes: a super-block is 256 elements = n_sub sub-blocks of `sub` elements (16 or 32).
// Affine types (Q2_K, Q4_K, Q5_K): x ~ (d*sc_j) * q - (dmin*m_j), q in [0, qmax].
// Symmetric types (Q3_K, Q6_K):     x ~ (d*sc_j) * q, q in [-half, half - 1].
// The layouts are the ones dequantize_row in quant.cpp reads; see the comments there.
#include "kernels/quantize_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace slm {

namespace {

constexpr int k_qk = 256;

struct KSpec {
  int sub;        // elements per sub-block
  bool affine;    // has per-sub-block mins
  int qmax;       // affine: q in [0, qmax]
  int half;       // symmetric: q in [-half, half - 1]
  int code_max;   // affine: scale/min codes in [0, code_max]
  int code_half;  // symmetric: scale codes in [-code_half, code_half - 1]
};

bool k_spec(DType t, KSpec* s) {
  switch (t) {
    case DType::Q2_K:
      *s = {16, true, 3, 0, 15, 0};
      return true;
    case DType::Q3_K:
      *s = {16, false, 0, 4, 0, 32};
      return true;
    case DType::Q4_K:
      *s = {32, true, 15, 0, 63, 0};
      return true;
    case DType::Q5_K:
      *s = {32, true, 31, 0, 63, 0};
      return true;
    case DType::Q6_K:
      *s = {16, false, 0, 32, 0, 128};
      return true;
    default:
      return false;
  }
}

inline int round_clamp(float v, int lo, int hi) {
  // Clamp in float first so the int conversion is always defined (v may be huge or inf when a
  // scale is tiny; NaN cannot occur, inputs are finite). Comparisons rather than fmin/fmax so
  // this inlines; v - lo >= 0 makes the truncation a branch-free round-half-up.
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  v = v < flo ? flo : (v > fhi ? fhi : v);
  return static_cast<int>(v - flo + 0.5f) + lo;
}

void put_half(uint8_t* p, float f) {
  uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, 2);
}
inline float fp16_round(float f) { return fp16_to_fp32(fp32_to_fp16(f)); }
// The smallest fp16 value >= f (f >= 0). Super-block scales round up so that the largest
// sub-block scale still fits its code range instead of clipping (this matters when the scale
// is an fp16 subnormal, whose relative spacing is coarse).
inline float fp16_ceil(float f) {
  uint16_t h = fp32_to_fp16(f);
  if (fp16_to_fp32(h) < f && h < 0x7c00) ++h;
  return fp16_to_fp32(h);
}

// ---- sub-block fits ---------------------------------------------------------------------------

// Affine fit of x[0..n): finds s >= 0 and b <= 0 (b = -min) minimizing sum (s*q + b - x)^2 with
// q = clamp(round((x - b) / s), 0, qmax). Candidate inverse scales (qmax + t) / (hi - lo) for t
// in [-1, 1] give the q; for each, (s, b) is the least-squares solution (b clamped to <= 0).
// The best is refined twice (re-round q with the fitted s, b; re-solve).
void fit_affine(const float* x, int n, int qmax, bool naive, float* s_out, float* m_out) {
  float lo = 0, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::fmin(lo, x[i]);
    hi = std::fmax(hi, x[i]);
  }
  if (!(hi > lo)) {  // all equal and <= 0: the min alone represents them
    *s_out = 0;
    *m_out = -lo;
    return;
  }
  if (naive || !std::isfinite(hi - lo)) {  // an infinite range makes the caller report overflow
    *s_out = (hi - lo) / static_cast<float>(qmax);
    *m_out = -lo;
    return;
  }
  double sx = 0, sxx = 0;
  for (int i = 0; i < n; ++i) {
    sx += x[i];
    sxx += static_cast<double>(x[i]) * x[i];
  }
  // Quantizes with inverse scale `is` and offset `off`, solves the least-squares (s, b) for
  // those q and returns its squared error, all from one pass of sums.
  auto try_q = [&](float is, float off, float* s, float* b) {
    float sq = 0, sqq = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      const float q = static_cast<float>(round_clamp((x[i] - off) * is, 0, qmax));
      sq += q;
      sqq += q * q;
      sqx += q * x[i];
    }
    const double det = n * static_cast<double>(sqq) - static_cast<double>(sq) * sq;
    double ss = 0, bb = 0;
    if (det > 0) {
      ss = (n * static_cast<double>(sqx) - sq * sx) / det;
      bb = (sqq * sx - static_cast<double>(sq) * sqx) / det;
    }
    if (det <= 0 || bb > 0) {  // min must be <= 0: refit the scale alone with b = 0
      bb = 0;
      ss = sqq > 0 ? sqx / static_cast<double>(sqq) : 0;
    }
    ss = std::max(ss, 0.0);
    *s = static_cast<float>(ss);
    *b = static_cast<float>(bb);
    // sum (s q + b - x)^2 expanded in the sums.
    return sxx + ss * ss * sqq + n * bb * bb - 2 * ss * sqx - 2 * bb * sx + 2 * ss * bb * sq;
  };
  float best_s = 0, best_b = 0;
  double best_e = INFINITY;
  for (int k = -10; k <= 10; k += 2) {
    const float iscale = (static_cast<float>(qmax) + 0.1f * static_cast<float>(k)) / (hi - lo);
    float s, b;
    const double e = try_q(iscale, lo, &s, &b);
    if (e < best_e) {
      best_e = e;
      best_s = s;
      best_b = b;
    }
  }
  for (int it = 0; it < 2 && best_s > 0; ++it) {
    float s, b;
    const double e = try_q(1.0f / best_s, best_b, &s, &b);
    if (!(e < best_e)) break;
    best_e = e;
    best_s = s;
    best_b = b;
  }
  *s_out = best_s;
  *m_out = -best_b;
}

// Symmetric fit: s (either sign) minimizing sum (s*q - x)^2, q = clamp(round(x / s), -half,
// half - 1). The asymmetric range means the element of largest magnitude should land on -half,
// so candidates are -(half + t) / xmax (and (half - 1 + t) / xmax); s is then sum(qx)/sum(qq).
void fit_symmetric(const float* x, int n, int half, bool naive, float* s_out) {
  float xmax = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(xmax)) xmax = x[i];
  }
  if (xmax == 0) {
    *s_out = 0;
    return;
  }
  if (naive) {
    *s_out = std::fabs(xmax) / static_cast<float>(half - 1);
    return;
  }
  // Returns sum(qx)^2 / sum(qq) (the error reduction; larger is better) and the scale.
  auto score = [&](float iscale, float* s) {
    float sqx = 0, sqq = 0;
    for (int i = 0; i < n; ++i) {
      const float q = static_cast<float>(round_clamp(x[i] * iscale, -half, half - 1));
      sqx += q * x[i];
      sqq += q * q;
    }
    if (sqq <= 0) {
      *s = 0;
      return 0.0;
    }
    *s = sqx / sqq;
    return static_cast<double>(sqx) * sqx / sqq;
  };
  float best_s = 0;
  double best = -1;
  for (int k = -10; k <= 10; k += 2) {
    const float t = 0.1f * static_cast<float>(k);
    float s;
    double v = score(-(static_cast<float>(half) + t) / xmax, &s);
    if (v > best) {
      best = v;
      best_s = s;
    }
    v = score((static_cast<float>(half - 1) + t) / xmax, &s);
    if (v > best) {
      best = v;
      best_s = s;
    }
  }
  for (int it = 0; it < 2 && best_s != 0; ++it) {
    float s;
    double v = score(1.0f / best_s, &s);
    if (!(v > best)) break;
    best = v;
    best_s = s;
  }
  *s_out = best_s;
}

// ---- super-block assembly ---------------------------------------------------------------------

struct SuperFit {
  float d = 0, dmin = 0;  // fp16-representable
  int sc[16] = {};        // scale codes (signed for symmetric types)
  int mc[16] = {};        // min codes (affine types)
  int q[k_qk] = {};       // quants in the type's signed/unsigned domain
};

// Effective sub-block scale and min, computed exactly as the dequantizer does.
inline float eff_scale(const SuperFit& f, int j) { return f.d * static_cast<float>(f.sc[j]); }
inline float eff_min(const SuperFit& f, int j) { return f.dmin * static_cast<float>(f.mc[j]); }

// q for every element given the codes, d and dmin; returns the squared error.
double requantize(const KSpec& k, const float* x, SuperFit* f) {
  double e = 0;
  for (int j = 0; j < k_qk / k.sub; ++j) {
    const float dl = eff_scale(*f, j), ml = k.affine ? eff_min(*f, j) : 0.0f;
    for (int i = j * k.sub; i < (j + 1) * k.sub; ++i) {
      int q = 0;  // a zero scale leaves only the min
      if (dl != 0) {
        q = k.affine ? round_clamp((x[i] + ml) / dl, 0, k.qmax)
                     : round_clamp(x[i] / dl, -k.half, k.half - 1);
      }
      f->q[i] = q;
      const double v = static_cast<double>(dl * static_cast<float>(q) - ml) - x[i];
      e += v * v;
    }
  }
  return e;
}

// Least-squares refit of the super-block scale(s) with codes and q fixed:
// affine: x_i ~ d * (sc_j q_i) - dmin * m_j;  symmetric: x_i ~ d * (sc_j q_i).
void refit_super(const KSpec& k, const float* x, SuperFit* f) {
  double aa = 0, ab = 0, bb = 0, ax = 0, bx = 0;
  for (int i = 0; i < k_qk; ++i) {
    const int j = i / k.sub;
    const double a = static_cast<double>(f->sc[j]) * f->q[i];
    const double b = k.affine ? -static_cast<double>(f->mc[j]) : 0.0;
    aa += a * a;
    ab += a * b;
    bb += b * b;
    ax += a * x[i];
    bx += b * x[i];
  }
  if (!k.affine || bb == 0) {
    if (aa > 0) f->d = fp16_round(static_cast<float>(ax / aa));
    return;
  }
  const double det = aa * bb - ab * ab;
  if (!(det > 0)) return;
  f->d = fp16_round(static_cast<float>((ax * bb - bx * ab) / det));
  f->dmin = fp16_round(static_cast<float>((aa * bx - ab * ax) / det));
}

// Fits one super-block. Returns false if the fp16 super-block scale would overflow.
bool fit_super(const KSpec& k, const float* x, bool naive, SuperFit* out) {
  const int n_sub = k_qk / k.sub;
  float s[16], m[16];
  for (int j = 0; j < n_sub; ++j) {
    if (k.affine) {
      fit_affine(x + j * k.sub, k.sub, k.qmax, naive, &s[j], &m[j]);
    } else {
      fit_symmetric(x + j * k.sub, k.sub, k.half, naive, &s[j]);
      m[j] = 0;
    }
  }
  SuperFit f;
  if (k.affine) {
    float smax = 0, mmax = 0;
    for (int j = 0; j < n_sub; ++j) {
      smax = std::fmax(smax, s[j]);
      mmax = std::fmax(mmax, m[j]);
    }
    f.d = fp16_ceil(smax / static_cast<float>(k.code_max));
    f.dmin = fp16_ceil(mmax / static_cast<float>(k.code_max));
    if (!std::isfinite(f.d) || !std::isfinite(f.dmin)) return false;
    for (int j = 0; j < n_sub; ++j) {
      f.sc[j] = f.d > 0 ? round_clamp(s[j] / f.d, 0, k.code_max) : 0;
      f.mc[j] = f.dmin > 0 ? round_clamp(m[j] / f.dmin, 0, k.code_max) : 0;
    }
  } else {
    float amax = 0;
    for (int j = 0; j < n_sub; ++j) amax = std::fmax(amax, std::fabs(s[j]));
    f.d = fp16_ceil(amax / static_cast<float>(k.code_half - 1));
    if (!std::isfinite(f.d)) return false;
    for (int j = 0; j < n_sub; ++j) {
      f.sc[j] = f.d > 0 ? round_clamp(s[j] / f.d, -k.code_half, k.code_half - 1) : 0;
    }
  }
  double best_e = requantize(k, x, &f);
  *out = f;
  if (naive) return true;
  // With codes fixed, refit d (and dmin) to the rounded q and re-round q; keep what helps.
  for (int it = 0; it < 2; ++it) {
    SuperFit g = *out;
    refit_super(k, x, &g);
    if (!std::isfinite(g.d) || !std::isfinite(g.dmin)) break;
    const double e = requantize(k, x, &g);
    if (!(e < best_e)) break;
    best_e = e;
    *out = g;
  }
  return true;
}

// ---- packing ----------------------------------------------------------------------------------

// 6-bit scale and min codes of 8 sub-blocks into 12 bytes (the inverse of scale_min_k4).
void pack_scale_min_k4(const int* sc, const int* mc, uint8_t* p) {
  for (int j = 0; j < 4; ++j) {
    p[j] = static_cast<uint8_t>(sc[j] & 63);
    p[j + 4] = static_cast<uint8_t>(mc[j] & 63);
  }
  for (int j = 4; j < 8; ++j) {
    p[j + 4] = static_cast<uint8_t>((sc[j] & 15) | ((mc[j] & 15) << 4));
    p[j - 4] = static_cast<uint8_t>(p[j - 4] | ((sc[j] >> 4) << 6));
    p[j] = static_cast<uint8_t>(p[j] | ((mc[j] >> 4) << 6));
  }
}

// Element e of a 256-block in the Q2_K/Q3_K quant layout: byte 32*h + 16*part + l of qs,
// bits 2s..2s+1, with e = 128h + 32s + 16part + l.
inline void q2_slot(int e, int* byte, int* s, int* h) {
  *h = e / 128;
  const int r = e % 128;
  *s = r / 32;
  *byte = 32 * *h + (r % 32);
}

void pack_q2_k(const SuperFit& f, uint8_t* b) {
  std::memset(b, 0, 84);
  for (int j = 0; j < 16; ++j) b[j] = static_cast<uint8_t>(f.sc[j] | (f.mc[j] << 4));
  uint8_t* qs = b + 16;
  for (int e = 0; e < k_qk; ++e) {
    int byte, s, h;
    q2_slot(e, &byte, &s, &h);
    qs[byte] = static_cast<uint8_t>(qs[byte] | (f.q[e] << (2 * s)));
  }
  put_half(b + 80, f.d);
  put_half(b + 82, f.dmin);
}

void pack_q3_k(const SuperFit& f, uint8_t* b) {
  std::memset(b, 0, 110);
  uint8_t* hmask = b;
  uint8_t* qs = b + 32;
  for (int e = 0; e < k_qk; ++e) {
    int byte, s, h;
    q2_slot(e, &byte, &s, &h);
    const int u = f.q[e] + 4;  // 0..7: low 2 bits in qs, bit 2 in hmask (clear = subtract 4)
    qs[byte] = static_cast<uint8_t>(qs[byte] | ((u & 3) << (2 * s)));
    if (u & 4) hmask[byte - 32 * h] = static_cast<uint8_t>(hmask[byte - 32 * h] | (1 << (4 * h + s)));
  }
  uint8_t* p = b + 96;
  for (int k = 0; k < 16; ++k) {
    const int c = f.sc[k] + 32;  // 0..63
    if (k < 8) {
      p[k] = static_cast<uint8_t>(p[k] | (c & 15));
    } else {
      p[k - 8] = static_cast<uint8_t>(p[k - 8] | ((c & 15) << 4));
    }
    p[8 + k % 4] = static_cast<uint8_t>(p[8 + k % 4] | ((c >> 4) << (2 * (k / 4))));
  }
  put_half(b + 108, f.d);
}

void pack_q4_k(const SuperFit& f, uint8_t* b) {
  put_half(b, f.d);
  put_half(b + 2, f.dmin);
  pack_scale_min_k4(f.sc, f.mc, b + 4);
  uint8_t* qs = b + 16;
  for (int k = 0; k < 4; ++k) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * k + l] = static_cast<uint8_t>(f.q[64 * k + l] | (f.q[64 * k + 32 + l] << 4));
    }
  }
}

void pack_q5_k(const SuperFit& f, uint8_t* b) {
  put_half(b, f.d);
  put_half(b + 2, f.dmin);
  pack_scale_min_k4(f.sc, f.mc, b + 4);
  uint8_t* qh = b + 16;
  uint8_t* qs = b + 48;
  std::memset(qh, 0, 32);
  for (int k = 0; k < 4; ++k) {
    for (int l = 0; l < 32; ++l) {
      const int q0 = f.q[64 * k + l], q1 = f.q[64 * k + 32 + l];
      qs[32 * k + l] = static_cast<uint8_t>((q0 & 15) | ((q1 & 15) << 4));
      qh[l] = static_cast<uint8_t>(qh[l] | (((q0 >> 4) & 1) << (2 * k)) |
                                   (((q1 >> 4) & 1) << (2 * k + 1)));
    }
  }
}

void pack_q6_k(const SuperFit& f, uint8_t* b) {
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  for (int h = 0; h < 2; ++h) {
    const int* u0 = f.q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int a = u0[l] + 32, c = u0[l + 32] + 32, e = u0[l + 64] + 32, g = u0[l + 96] + 32;
      ql[64 * h + l] = static_cast<uint8_t>((a & 15) | ((e & 15) << 4));
      ql[64 * h + l + 32] = static_cast<uint8_t>((c & 15) | ((g & 15) << 4));
      qh[32 * h + l] = static_cast<uint8_t>((a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) |
                                            ((g >> 4) << 6));
    }
  }
  for (int j = 0; j < 16; ++j) b[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(f.sc[j]));
  put_half(b + 208, f.d);
}

// Q8_K: f32 d = amax / 127, q = round(x / d), plus the 16 per-16 sums dot kernels use.
void quant_q8_k(const float* x, uint8_t* b) {
  float amax = 0;
  for (int i = 0; i < k_qk; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  std::memcpy(b, &d, 4);
  int8_t q[k_qk];
  for (int i = 0; i < k_qk; ++i) q[i] = static_cast<int8_t>(round_clamp(x[i] * id, -127, 127));
  std::memcpy(b + 4, q, k_qk);
  for (int j = 0; j < 16; ++j) {
    int16_t sum = 0;
    for (int i = 0; i < 16; ++i) sum = static_cast<int16_t>(sum + q[16 * j + i]);
    std::memcpy(b + 260 + 2 * j, &sum, 2);
  }
}

Status quantize_k_impl(DType t, const float* x, void* dst, int64_t n, bool naive) {
  const DTypeTraits* tr = dtype_traits(t);
  KSpec k{};
  if (!tr || (!k_spec(t, &k) && t != DType::Q8_K)) {
    return error("quantize: %s is not a K-quant type", tr ? tr->name : "unknown type");
  }
  if (n < 0 || n % k_qk != 0) {
    return error("quantize: %s row of %lld elements is not a multiple of 256", tr->name,
                 static_cast<long long>(n));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      return error("quantize: %s: element %lld is not finite", tr->name, static_cast<long long>(i));
    }
  }
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (int64_t blk = 0; blk < n / k_qk; ++blk) {
    const float* xb = x + blk * k_qk;
    uint8_t* b = out + blk * tr->type_size;
    if (t == DType::Q8_K) {
      quant_q8_k(xb, b);
      continue;
    }
    SuperFit f;
    if (!fit_super(k, xb, naive, &f)) {
      return error("quantize: %s: super-block %lld (elements %lld..%lld): values too large for "
                   "the fp16 block scale",
                   tr->name, static_cast<long long>(blk), static_cast<long long>(blk * k_qk),
                   static_cast<long long>(blk * k_qk + k_qk - 1));
    }
    switch (t) {
      case DType::Q2_K:
        pack_q2_k(f, b);
        break;
      case DType::Q3_K:
        pack_q3_k(f, b);
        break;
      case DType::Q4_K:
        pack_q4_k(f, b);
        break;
      case DType::Q5_K:
        pack_q5_k(f, b);
        break;
      default:
        pack_q6_k(f, b);
        break;
    }
  }
  return Status();
}

}  // namespace

bool is_k_quant(DType t) {
  KSpec k{};
  return k_spec(t, &k) || t == DType::Q8_K;
}

Status quantize_row_k(DType t, const float* x, void* dst, int64_t n) {
  return quantize_k_impl(t, x, dst, n, false);
}

Status quantize_row_k_naive(DType t, const float* x, void* dst, int64_t n) {
  return quantize_k_impl(t, x, dst, n, true);
}

}  // namespace slm
