#!/usr/bin/python3
# Independent PyTorch reference for slm's decoder, written in Hugging Face semantics (and the
# llama2.c variant): loads an HF dir or a llama2.c checkpoint, prints logits / greedy tokens.
"""
Usage:
  torch_model.py (--hf DIR | --llama2c FILE [--tokenizer TOK.bin])
                 (--tokens 1,2,3 | --prompt TEXT) [--generate N] [--logits-out FILE]

--logits-out writes float32 logits, row-major (positions x vocab), for every position of
the sequence that was fed (the prompt plus all generated tokens but the last), so row
len(prompt)-1+i holds the logits that chose generated token i.
stdout gets one JSON line: {"prompt": [...ids...], "generated": [...ids...]}.
Everything runs in float32 on the CPU, one full forward per generated token (no KV cache).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_grad_enabled(False)
torch.set_num_threads(1)

# ---- file parsing ---------------------------------------------------------------------------


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[base + b:base + e]
        shape = info["shape"]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4").copy()
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            raise ValueError("unsupported dtype %s for %s" % (dt, name))
        out[name] = torch.from_numpy(arr.reshape(shape).astype(np.float32))
    return out


def load_hf(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    tensors = {}
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    for fn in files:
        tensors.update(read_safetensors(os.path.join(d, fn)))
    return cfg, tensors


def load_llama2c(path):
    """Legacy run.c layout: 7 int32 header, then fp32 arrays."""
    with open(path, "rb") as f:
        data = f.read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", data[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    a = np.frombuffer(data, dtype="<f4", offset=28)
    hs = dim // n_heads
    kv_dim = n_kv * hs
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        t = torch.from_numpy(a[pos:pos + n].reshape(shape).copy())
        pos += n
        return t

    w = {}
    w["embed"] = take(vocab, dim)
    w["att_norm"] = take(n_layers, dim)
    w["wq"] = take(n_layers, dim, dim)
    w["wk"] = take(n_layers, kv_dim, dim)
    w["wv"] = take(n_layers, kv_dim, dim)
    w["wo"] = take(n_layers, dim, dim)
    w["ffn_norm"] = take(n_layers, dim)
    w["w1"] = take(n_layers, hidden, dim)
    w["w2"] = take(n_layers, dim, hidden)
    w["w3"] = take(n_layers, hidden, dim)
    w["norm"] = take(dim)
    take(seq_len, hs // 2)  # freq_cis_real (recomputed below)
    take(seq_len, hs // 2)  # freq_cis_imag
    w["lm_head"] = w["embed"] if shared else take(vocab, dim)
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
               vocab=vocab, seq_len=seq_len)
    return cfg, w


def load_llama2c_tokenizer(path, vocab_size):
    with open(path, "rb") as f:
        data = f.read()
    off = 4
    vocab, scores = [], []
    for _ in range(vocab_size):
        (score,) = struct.unpack_from("<f", data, off)
        (n,) = struct.unpack_from("<i", data, off + 4)
        vocab.append(data[off + 8:off + 8 + n])
        scores.append(score)
        off += 8 + n
    return vocab, scores


def llama2c_encode(text, vocab, scores):
    """llama2.c run.c encode(): BOS, dummy-prefix space, per-UTF-8-char lookup with byte
    fallback (id = byte + 3), then repeatedly merge the adjacent pair with the best score."""
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)
    ids = [1]
    if text:
        ids.append(lookup[b" "])
    for ch in text:
        b = ch.encode("utf-8")
        if b in lookup:
            ids.append(lookup[b])
        else:
            ids.extend(x + 3 for x in b)
    body = ids[1:]
    while True:
        best, best_i, best_id = -1e10, -1, -1
        for i in range(len(body) - 1):
            m = lookup.get(vocab[body[i]] + vocab[body[i + 1]])
            if m is not None and scores[m] > best:
                best, best_i, best_id = scores[m], i, m
        if best_i < 0:
            break
        body[best_i:best_i + 2] = [best_id]
    return [1] + body


# ---- the decoder ----------------------------------------------------------------------------


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def hf_inv_freq(cfg, head_dim):
    base = float(cfg.get("rope_theta", 10000.0))
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "llama3":
        factor = rs["factor"]
        low, high = rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wl, high_wl = old / low, old / high
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        inv = torch.where(medium, smoothed, inv_l)
    elif kind == "linear":
        inv = inv / rs["factor"]
    elif kind not in ("default", None):
        raise ValueError("rope scaling %s not implemented in the reference" % kind)
    return inv


def hf_forward(cfg, t, tokens):
    E = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or E // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    n_layers = cfg["num_hidden_layers"]
    T = len(tokens)
    ids = torch.tensor(tokens, dtype=torch.long)
    h = t["model.embed_tokens.weight"][ids]
    inv = hf_inv_freq(cfg, D)
    freqs = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((T, T), float("-inf")).triu(1)
    for i in range(n_layers):
        p = "model.layers.%d." % i
        x = rms_norm(h, t[p + "input_layernorm.weight"], eps)
        if p + "self_attn.qkv_proj.weight" in t:
            qkv = x @ t[p + "self_attn.qkv_proj.weight"].T
            q, k, v = qkv.split([H * D, Hkv * D, Hkv * D], dim=-1)
        else:
            q = x @ t[p + "self_attn.q_proj.weight"].T
            k = x @ t[p + "self_attn.k_proj.weight"].T
            v = x @ t[p + "self_attn.v_proj.weight"].T
            if p + "self_attn.q_proj.bias" in t:
                q = q + t[p + "self_attn.q_proj.bias"]
                k = k + t[p + "self_attn.k_proj.bias"]
                v = v + t[p + "self_attn.v_proj.bias"]
        q = q.view(T, H, D).transpose(0, 1)
        k = k.view(T, Hkv, D).transpose(0, 1)
        v = v.view(T, Hkv, D).transpose(0, 1)
        if p + "self_attn.q_norm.weight" in t:
            q = rms_norm(q, t[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, t[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // Hkv, dim=0)
        v = v.repeat_interleave(H // Hkv, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D) + mask, dim=-1) @ v
        h = h + att.transpose(0, 1).reshape(T, H * D) @ t[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, t[p + "post_attention_layernorm.weight"], eps)
        if p + "mlp.gate_up_proj.weight" in t:
            gate, up = (x @ t[p + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
        else:
            gate = x @ t[p + "mlp.gate_proj.weight"].T
            up = x @ t[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(gate) * up) @ t[p + "mlp.down_proj.weight"].T
    h = rms_norm(h, t["model.norm.weight"], eps)
    tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in t
    head = t["model.embed_tokens.weight"] if tied else t["lm_head.weight"]
    return h @ head.T


def llama2c_forward(cfg, w, tokens):
    """karpathy/llama2.c semantics: rope rotates adjacent pairs (x[2i], x[2i+1])."""
    E, H, Hkv = cfg["dim"], cfg["n_heads"], cfg["n_kv"]
    D = E // H
    eps = 1e-5
    T = len(tokens)
    h = w["embed"][torch.tensor(tokens, dtype=torch.long)]
    inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2).float() / D))
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]  # (T, D/2)
    cos, sin = ang.cos(), ang.sin()
    mask = torch.full((T, T), float("-inf")).triu(1)

    def rope(x):  # x: (heads, T, D)
        xr = x.reshape(*x.shape[:-1], D // 2, 2)
        a, b = xr[..., 0], xr[..., 1]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).reshape(x.shape)

    for i in range(cfg["n_layers"]):
        x = rms_norm(h, w["att_norm"][i], eps)
        q = (x @ w["wq"][i].T).view(T, H, D).transpose(0, 1)
        k = (x @ w["wk"][i].T).view(T, Hkv, D).transpose(0, 1)
        v = (x @ w["wv"][i].T).view(T, Hkv, D).transpose(0, 1)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(H // Hkv, dim=0)
        v = v.repeat_interleave(H // Hkv, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D) + mask, dim=-1) @ v
        h = h + att.transpose(0, 1).reshape(T, E) @ w["wo"][i].T
        x = rms_norm(h, w["ffn_norm"][i], eps)
        h = h + (torch.nn.functional.silu(x @ w["w1"][i].T) * (x @ w["w3"][i].T)) @ w["w2"][i].T
    return rms_norm(h, w["norm"], eps) @ w["lm_head"].T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf")
    ap.add_argument("--llama2c")
    ap.add_argument("--tokenizer")
    ap.add_argument("--tokens")
    ap.add_argument("--prompt")
    ap.add_argument("--generate", type=int, default=0)
    ap.add_argument("--logits-out")
    a = ap.parse_args()

    if a.hf:
        cfg, t = load_hf(a.hf)
        forward = lambda toks: hf_forward(cfg, t, toks)  # noqa: E731
    elif a.llama2c:
        cfg, t = load_llama2c(a.llama2c)
        forward = lambda toks: llama2c_forward(cfg, t, toks)  # noqa: E731
    else:
        ap.error("need --hf or --llama2c")

    if a.tokens:
        prompt = [int(x) for x in a.tokens.split(",")]
    elif a.prompt is not None:
        if not (a.llama2c and a.tokenizer):
            ap.error("--prompt needs --llama2c and --tokenizer")
        vocab, scores = load_llama2c_tokenizer(a.tokenizer, cfg["vocab"])
        prompt = llama2c_encode(a.prompt, vocab, scores)
    else:
        ap.error("need --tokens or --prompt")

    seq = list(prompt)
    generated = []
    logits = None
    for _ in range(a.generate):
        logits = forward(seq)
        nxt = int(torch.argmax(logits[-1]))
        generated.append(nxt)
        seq.append(nxt)
    if a.generate:
        seq = seq[:-1]  # the last generated token was never fed
    else:
        logits = forward(seq)
    if a.logits_out:
        logits.numpy().astype("<f4").tofile(a.logits_out)
    print(json.dumps({"prompt": prompt, "generated": generated}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
