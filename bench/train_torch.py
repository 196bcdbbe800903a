# PyTorch side of bench/train_bench.sh: trains the same Llama-style model as `slm train-bench`
# (same preset shapes, init, batch of uniform random ids, AdamW, clipping at 1.0, thread count)
# and prints one JSON line with the step times and tokens/s.
# Debian's python3-torch 1.13 does its matrix products through the system libblas.so.3, which
# is the netlib reference BLAS unless an optimized one is installed (BLAS_INFO=generic); the
# --gemm onednn mode runs every weight matrix product as a 1x1 convolution instead, which
# torch sends to oneDNN (its fast kernels), so PyTorch is also measured with a fast GEMM.
#
# usage: train_torch.py --preset 8m|46m [-b 8] [-T 256] [-t 2] [--steps 5] [--warmup-steps 1]
#                       [--gemm blas|onednn]
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from train_torch_ref import forward_loss, rope_tables  # noqa: E402  (the parity-tested model)

PRESETS = {
    "8m": dict(vocab_size=8192, dim=256, n_layers=8, ffn_dim=688),
    "46m": dict(vocab_size=16384, dim=512, n_layers=12, ffn_dim=1376),
}


def linear_onednn(x, w):
    # x (..., in) wᵀ as conv2d of a (1, in, rows, 1) image with (out, in, 1, 1) filters.
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    y = Fn.conv2d(x2.t().reshape(1, shape[-1], x2.shape[0], 1), w.view(w.shape[0], w.shape[1], 1, 1))
    return y.view(w.shape[0], x2.shape[0]).t().reshape(*shape[:-1], w.shape[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="8m", choices=sorted(PRESETS))
    ap.add_argument("-b", type=int, default=8)
    ap.add_argument("-T", type=int, default=256)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup-steps", type=int, default=1)
    ap.add_argument("--gemm", default="blas", choices=["blas", "onednn"])
    a = ap.parse_args()
    torch.set_num_threads(a.t)
    torch.manual_seed(1)
    m = dict(PRESETS[a.preset], n_heads=8, n_kv_heads=8, rope_theta=10000.0, norm_eps=1e-5,
             tied=True)
    D, F, V, hd = m["dim"], m["ffn_dim"], m["vocab_size"], m["dim"] // m["n_heads"]
    dkv = m["n_kv_heads"] * hd
    shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    for l in range(m["n_layers"]):
        p = "model.layers.%d." % l
        shapes.update({p + "input_layernorm.weight": (D,), p + "self_attn.q_proj.weight": (D, D),
                       p + "self_attn.k_proj.weight": (dkv, D), p + "self_attn.v_proj.weight": (dkv, D),
                       p + "self_attn.o_proj.weight": (D, D), p + "post_attention_layernorm.weight": (D,),
                       p + "mlp.gate_proj.weight": (F, D), p + "mlp.up_proj.weight": (F, D),
                       p + "mlp.down_proj.weight": (D, F)})
    P = {}
    for n, s in shapes.items():
        t = torch.ones(s) if len(s) == 1 else torch.randn(s) * 0.02
        P[n] = t.requires_grad_(True)
    n_params = sum(t.numel() for t in P.values())
    decay = [t for t in P.values() if t.dim() == 2]
    no_decay = [t for t in P.values() if t.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(0x5EED)
    ids = torch.randint(0, V, (a.b * a.T + 1,), generator=g)
    toks, tgts = ids[:-1].view(a.b, a.T), ids[1:].view(a.b, a.T)
    cos, sin = rope_tables(a.T, hd, m["rope_theta"])
    times = []
    for step in range(a.warmup_steps + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = forward_loss(P, m, toks, tgts, cos, sin,
                            linear_onednn if a.gemm == "onednn" else (lambda x, w: x @ w.t()))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        print("%s step %d: %.3f s, loss %.4f" % ("warm-up" if step < a.warmup_steps else "timed",
                                                 step, dt, loss.item()), file=sys.stderr)
        if step >= a.warmup_steps:
            times.append(dt)
    med = statistics.median(times)
    print(json.dumps({"preset": a.preset, "params": n_params, "batch": a.b, "seq": a.T,
                      "threads": a.t, "steps": a.steps, "step_s_median": med,
                      "step_s_min": min(times), "step_s_max": max(times),
                      "tokens_per_s": a.b * a.T / med, "torch": torch.__version__,
                      "gemm": a.gemm}))


if __name__ == "__main__":
    main()
