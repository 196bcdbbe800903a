# PyTorch reference for the trainer parity test: the same Llama-style decoder written in plain
# torch ops, trained by torch.optim.AdamW with clip_grad_norm_, accumulation and the schedule.
#
# usage: train_torch_ref.py DIR
# DIR/config.json: {"model": {vocab_size, dim, n_layers, n_heads, n_kv_heads, ffn_dim,
#   rope_theta, norm_eps, tied}, "params": [[name, [shape...]], ...] (order of params.bin),
#   "B", "T", "steps", "accum", "clip",
#   "sched": {warmup, total, max_lr, min_lr}, "adamw": {beta1, beta2, eps, wd}}
# DIR/params.bin (float32, all params in order), DIR/tokens.bin and DIR/targets.bin (int32,
#   steps * accum micro-batches of B x T; the first one is also the gradient check batch).
# Writes DIR/ref_loss0.txt, DIR/ref_grads0.bin (grads of the first micro-batch, loss scale 1),
#   DIR/ref_losses.txt (mean loss per step), DIR/ref_final.bin (params after the steps).
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as Fn


def rope_tables(T, hd, theta):
    # angle(p, i) = p * theta^(-2i/hd), in float64 then rounded to float32 (as the spec says).
    i = np.arange(hd // 2, dtype=np.float64)
    inv = theta ** (-2.0 * i / hd)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos = torch.from_numpy(np.cos(ang).astype(np.float32))
    sin = torch.from_numpy(np.sin(ang).astype(np.float32))
    # halves layout: the same angle for element i and i + hd/2
    return torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def lr_at(step, warmup, total, max_lr, min_lr):
    # The documented schedule: linear warm-up ((step + 1) / warmup), then cosine to min_lr.
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    frac = (step - warmup) / (total - warmup)
    return min_lr + (max_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * frac))


def rms_norm(x, w, eps):
    r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x * r * w


def linear(x, w):
    return x @ w.t()


def forward_loss(P, m, tokens, targets, cos, sin, linear=linear):
    # linear(x, w) = x wᵀ for every weight matrix (bench/train_torch.py can swap the kernel).
    B, T = tokens.shape
    D, H, Hk = m["dim"], m["n_heads"], m["n_kv_heads"]
    hd = D // H
    x = P["model.embed_tokens.weight"][tokens]  # (B, T, D)
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(m["n_layers"]):
        p = "model.layers.%d." % l
        h = rms_norm(x, P[p + "input_layernorm.weight"], m["norm_eps"])
        q = linear(h, P[p + "self_attn.q_proj.weight"]).view(B, T, H, hd).transpose(1, 2)
        k = linear(h, P[p + "self_attn.k_proj.weight"]).view(B, T, Hk, hd).transpose(1, 2)
        v = linear(h, P[p + "self_attn.v_proj.weight"]).view(B, T, Hk, hd).transpose(1, 2)
        q = q * cos[:T] + rotate_half(q) * sin[:T]
        k = k * cos[:T] + rotate_half(k) * sin[:T]
        k = k.repeat_interleave(H // Hk, dim=1)
        v = v.repeat_interleave(H // Hk, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
        o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + linear(o, P[p + "self_attn.o_proj.weight"])
        h = rms_norm(x, P[p + "post_attention_layernorm.weight"], m["norm_eps"])
        g = linear(h, P[p + "mlp.gate_proj.weight"])
        u = linear(h, P[p + "mlp.up_proj.weight"])
        x = x + linear(Fn.silu(g) * u, P[p + "mlp.down_proj.weight"])
    h = rms_norm(x, P["model.norm.weight"], m["norm_eps"])
    w_out = P["model.embed_tokens.weight"] if m["tied"] else P["lm_head.weight"]
    logits = linear(h, w_out)
    return Fn.cross_entropy(logits.view(B * T, -1), targets.view(-1).long(), ignore_index=-1)


def main():
    d = sys.argv[1]
    cfg = json.load(open(d + "/config.json"))
    m = cfg["model"]
    torch.set_num_threads(1)
    flat = np.fromfile(d + "/params.bin", dtype=np.float32)
    P, order, off = {}, [], 0
    for name, shape in cfg["params"]:
        n = int(np.prod(shape))
        P[name] = torch.tensor(flat[off:off + n].reshape(shape), requires_grad=True)
        order.append(name)
        off += n
    assert off == flat.size, "params.bin size does not match the shapes"
    B, T, steps, accum = cfg["B"], cfg["T"], cfg["steps"], cfg["accum"]
    toks = torch.from_numpy(np.fromfile(d + "/tokens.bin", dtype=np.int32).astype(np.int64))
    tgts = torch.from_numpy(np.fromfile(d + "/targets.bin", dtype=np.int32).astype(np.int64))
    toks = toks.view(steps * accum, B, T)
    tgts = tgts.view(steps * accum, B, T)
    cos, sin = rope_tables(T, m["dim"] // m["n_heads"], m["rope_theta"])

    # Gradients of one micro-batch.
    loss = forward_loss(P, m, toks[0], tgts[0], cos, sin)
    loss.backward()
    open(d + "/ref_loss0.txt", "w").write("%.10g\n" % loss.item())
    np.concatenate([P[n].grad.numpy().ravel() for n in order]).astype(np.float32).tofile(
        d + "/ref_grads0.bin")

    # Training steps.
    a = cfg["adamw"]
    decay = [P[n] for n in order if P[n].dim() == 2]
    no_decay = [P[n] for n in order if P[n].dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a["wd"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1.0, betas=(a["beta1"], a["beta2"]), eps=a["eps"])
    losses = []
    for s in range(steps):
        opt.zero_grad(set_to_none=False)
        total = 0.0
        for k in range(accum):
            i = s * accum + k
            l = forward_loss(P, m, toks[i], tgts[i], cos, sin)
            (l / accum).backward()
            total += l.item() / accum
        losses.append(total)
        torch.nn.utils.clip_grad_norm_([P[n] for n in order], cfg["clip"])
        for grp in opt.param_groups:
            sc = cfg["sched"]
            grp["lr"] = lr_at(s, sc["warmup"], sc["total"], sc["max_lr"], sc["min_lr"])
        opt.step()
    open(d + "/ref_losses.txt", "w").write("".join("%.10g\n" % v for v in losses))
    np.concatenate([P[n].detach().numpy().ravel() for n in order]).astype(np.float32).tofile(
        d + "/ref_final.bin")


if __name__ == "__main__":
    main()
