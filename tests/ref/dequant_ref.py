# Independent numpy reference for the ggml block formats: dequantization of every type slm
# reads and the round-to-nearest reference quantizers (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1).
#
# Written from the format definitions, vectorized: for each output element index e we compute
# which byte and bits hold its quant and which scale applies, then gather. All arithmetic is
# float32 with every multiply and add rounded separately, in the order the format defines.
#
# Usage: dequant_ref.py JOB...   where JOB is "dequant:TYPE:in.bin:out.f32" or
#        "quant:TYPE:in.f32:out.bin".
import sys

import numpy as np

F32 = np.float32

# type name -> (elements per block, bytes per block)
BLOCKS = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "F64": (1, 8), "I8": (1, 1), "I16": (1, 2),
    "I32": (1, 4), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24),
    "Q8_0": (32, 34), "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144),
    "Q5_K": (256, 176), "Q6_K": (256, 210), "Q8_K": (256, 292),
}


def half(b, off):
    """f16 field at byte offset off of every block, as a (nb, 1) float32 column."""
    return b[:, off:off + 2].copy().view("<f2").astype(F32)


def nibbles32(qs):
    """32 elements from 16 bytes: low nibbles first, then high nibbles."""
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int32)


def high_bits32(b, off):
    """Bit e of the little-endian u32 at off, for e = 0..31, as (nb, 32) ints."""
    qh = b[:, off:off + 4].copy().view("<u4").astype(np.int64)
    return ((qh >> np.arange(32)) & 1).astype(np.int32)


def dq_q4_0(b):
    return (nibbles32(b[:, 2:18]) - 8).astype(F32) * half(b, 0)


def dq_q4_1(b):
    return nibbles32(b[:, 4:20]).astype(F32) * half(b, 0) + half(b, 2)


def dq_q5_0(b):
    q = nibbles32(b[:, 6:22]) | (high_bits32(b, 2) << 4)
    return (q - 16).astype(F32) * half(b, 0)


def dq_q5_1(b):
    q = nibbles32(b[:, 8:24]) | (high_bits32(b, 4) << 4)
    return q.astype(F32) * half(b, 0) + half(b, 2)


def dq_q8_0(b):
    return b[:, 2:34].view(np.int8).astype(F32) * half(b, 0)


E = np.arange(256)
# 2-bit layouts (Q2_K, Q3_K): 128-element halves each own 32 quant bytes; within a half,
# 32-element groups take successive bit pairs of the same 32 bytes.
TWO_BIT_BYTE = (E // 128) * 32 + E % 32
TWO_BIT_SHIFT = ((E % 128) // 32) * 2


def dq_q2_k(b):
    scales = b[:, 0:16].astype(np.int32)[:, E // 16]
    q = (b[:, 16:80][:, TWO_BIT_BYTE] >> TWO_BIT_SHIFT) & 3
    dl = half(b, 80) * (scales & 15).astype(F32)
    ml = half(b, 82) * (scales >> 4).astype(F32)
    return dl * q.astype(F32) - ml


def q3_k_scales(raw):
    """16 signed 6-bit scales from 12 bytes, via the 32-bit mask formulation."""
    a = raw.copy().view("<u4").astype(np.uint32)  # (nb, 3)
    a0, a1, t = a[:, 0], a[:, 1], a[:, 2]
    m2, m1 = np.uint32(0x0F0F0F0F), np.uint32(0x03030303)
    out = np.stack([
        (a0 & m2) | (((t >> 0) & m1) << 4),
        (a1 & m2) | (((t >> 2) & m1) << 4),
        ((a0 >> 4) & m2) | (((t >> 4) & m1) << 4),
        ((a1 >> 4) & m2) | (((t >> 6) & m1) << 4),
    ], axis=1).astype("<u4")
    return out.view(np.uint8).astype(np.int32) - 32  # (nb, 16)


def dq_q3_k(b):
    low = (b[:, 32:96][:, TWO_BIT_BYTE] >> TWO_BIT_SHIFT).astype(np.int32) & 3
    hbit = (b[:, 0:32][:, E % 32].astype(np.int32) >> (E // 32)) & 1
    q = low - 4 * (1 - hbit)
    dl = half(b, 108) * q3_k_scales(b[:, 96:108])[:, E // 16].astype(F32)
    return dl * q.astype(F32)


def k4_scales(raw):
    """(scale, min) of the 8 sub-blocks, 6 bits each, packed in 12 bytes."""
    s = raw.astype(np.int32)
    sc = np.concatenate([s[:, 0:4] & 63, (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)], axis=1)
    mn = np.concatenate([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], axis=1)
    return sc, mn


# 4-bit K layout: each 64 elements use 32 bytes, low nibbles then high nibbles.
K4_BYTE = (E // 64) * 32 + E % 32
K4_SHIFT = ((E // 32) % 2) * 4


def dq_k4(b, qh_off, qs_off):
    sc, mn = k4_scales(b[:, 4:16])
    q = (b[:, qs_off:qs_off + 128][:, K4_BYTE].astype(np.int32) >> K4_SHIFT) & 15
    if qh_off is not None:
        q = q + (((b[:, qh_off:qh_off + 32][:, E % 32].astype(np.int32) >> (E // 32)) & 1) << 4)
    d1 = half(b, 0) * sc[:, E // 32].astype(F32)
    m1 = half(b, 2) * mn[:, E // 32].astype(F32)
    return d1 * q.astype(F32) - m1


def dq_q6_k(b):
    h, r = E // 128, E % 128
    quarter, l = r // 32, r % 32
    lo = (b[:, 0:128][:, h * 64 + l + 32 * (quarter % 2)].astype(np.int32) >> (4 * (quarter // 2))) & 15
    hi = (b[:, 128:192][:, h * 32 + l].astype(np.int32) >> (2 * quarter)) & 3
    q = (lo | (hi << 4)) - 32
    sc = b[:, 192:208].view(np.int8)[:, h * 8 + l // 16 + 2 * quarter].astype(F32)
    return (half(b, 208) * sc) * q.astype(F32)


def dq_q8_k(b):
    d = b[:, 0:4].copy().view("<f4").astype(F32)
    return d * b[:, 4:260].view(np.int8).astype(F32)


def dequant(name, raw):
    bs, ts = BLOCKS[name]
    if name == "F32":
        return raw.view("<f4").astype(F32)
    if name == "F16":
        return raw.view("<f2").astype(F32)
    if name == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(F32)
    if name in ("F64", "I8", "I16", "I32"):
        dt = {"F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4"}[name]
        return raw.view(dt).astype(F32)
    b = raw.reshape(-1, ts)
    fn = {
        "Q4_0": dq_q4_0, "Q4_1": dq_q4_1, "Q5_0": dq_q5_0, "Q5_1": dq_q5_1, "Q8_0": dq_q8_0,
        "Q2_K": dq_q2_k, "Q3_K": dq_q3_k, "Q4_K": lambda x: dq_k4(x, None, 16),
        "Q5_K": lambda x: dq_k4(x, 16, 48), "Q6_K": dq_q6_k, "Q8_K": dq_q8_k,
    }[name]
    y = fn(b)
    assert y.dtype == F32 and y.shape == (b.shape[0], bs), (name, y.dtype, y.shape)
    return y.reshape(-1)


# ---- quantizers ----


def inv(d):
    out = np.zeros_like(d)
    np.divide(F32(1), d, out=out, where=d != 0)
    return out


def round_half_away(v):
    """C roundf on float32 values (exact: the sum is formed in float64)."""
    a = np.floor(np.abs(v).astype(np.float64) + 0.5)
    return (np.sign(v) * a).astype(np.int64)


def f16_bytes(d):
    return d.astype(np.float16).view(np.uint8).reshape(-1, 2)


def pack_nibbles(q):
    return (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)


def pack_high(q):
    bits = ((q >> 4) & 1).astype(np.uint64) << np.arange(32, dtype=np.uint64)
    return bits.sum(axis=1).astype("<u4").view(np.uint8).reshape(-1, 4)


def signed_absmax(x):
    """The first element of largest magnitude; +0.0 for an all-zero block."""
    m = x[np.arange(x.shape[0]), np.argmax(np.abs(x), axis=1)]
    return np.where(np.abs(m) > 0, m, F32(0))


def quant(name, x):
    x = x.reshape(-1, 32).astype(F32)
    if name == "Q8_0":
        d = np.abs(x).max(axis=1) / F32(127)
        q = round_half_away(x * inv(d)[:, None]).astype(np.int8).view(np.uint8)
        return np.concatenate([f16_bytes(d), q], axis=1)
    if name in ("Q4_0", "Q5_0"):
        nbits = 4 if name == "Q4_0" else 5
        hr = F32(1 << (nbits - 1))
        d = signed_absmax(x) / -hr
        v = x * inv(d)[:, None] + (hr + F32(0.5))
        q = np.minimum((1 << nbits) - 1, np.trunc(v).astype(np.int64))
        parts = [f16_bytes(d)] + ([pack_high(q)] if nbits == 5 else []) + [pack_nibbles(q & 15)]
        return np.concatenate(parts, axis=1)
    if name in ("Q4_1", "Q5_1"):
        nbits = 4 if name == "Q4_1" else 5
        # The first element reaching the min / max (fixes which zero is kept).
        rows = np.arange(x.shape[0])
        mn, mx = x[rows, np.argmin(x, axis=1)], x[rows, np.argmax(x, axis=1)]
        d = (mx - mn) / F32((1 << nbits) - 1)
        v = (x - mn[:, None]) * inv(d)[:, None] + F32(0.5)
        q = np.trunc(v).astype(np.int64)
        if nbits == 4:
            q = np.minimum(15, q)
        parts = [f16_bytes(d), f16_bytes(mn)] + ([pack_high(q)] if nbits == 5 else [])
        return np.concatenate(parts + [pack_nibbles(q & 15)], axis=1)
    raise SystemExit("no reference quantizer for " + name)


def main():
    for job in sys.argv[1:]:
        mode, name, src, dst = job.split(":")
        if mode == "dequant":
            raw = np.fromfile(src, dtype=np.uint8)
            out = dequant(name, raw).astype("<f4")
        elif mode == "quant":
            out = quant(name, np.fromfile(src, dtype="<f4")).astype(np.uint8)
        else:
            raise SystemExit("unknown mode " + mode)
        out.tofile(dst)


if __name__ == "__main__":
    main()
