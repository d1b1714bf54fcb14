#!/usr/bin/python3
"""PyTorch twin of `slm train --random-data` for bench/train_bench.sh: the same model and the same
optimizer step, timed on this CPU.

Model: llama2.c's model.py architecture, written here from its definition: token embedding,
n_layers x [RMSNorm -> attention (RoPE on adjacent pairs, causal, GQA when n_kv_heads < n_heads)
-> residual, RMSNorm -> SwiGLU FFN (hidden = ffn_dim, or 2/3 * 4 * dim rounded up to a multiple
of 32 as in train_config.h) -> residual], final RMSNorm, output head tied to the embedding when
tie_embeddings (the default). No biases, no dropout. float32.
Step: forward + cross-entropy on uniform random tokens [batch_size, seq_len + 1], backward,
clip_grad_norm_(grad_clip) when grad_clip > 0, torch.optim.AdamW (foreach default, not fused;
decay on 2-D matrices except the embedding), zero_grad.

Usage:
  train_torch.py CONFIG.toml [--threads T] [--steps N] [--warmup W]   -> timing JSON
  train_torch.py CONFIG.toml --describe                                -> sizes and FLOPs JSON

FLOPs per token (the standard count, Kaplan et al. 2020 / PaLM appendix B):
  6 * N_matmul + 12 * n_layers * dim * seq_len
N_matmul = parameters that take part in a matrix product: per layer Wq, Wk, Wv, Wo and the three
FFN matrices, plus the output head (vocab x dim, counted even when tied: the product is done).
Embedding lookups, norms and the optimizer are not counted. 6 = 2 (multiply-add) x 3 (forward,
and backward's two products). The attention term counts QK^T and AV over the full seq_len
window (no causal halving), forward and backward.
"""

import argparse
import json
import math
import statistics
import sys
import time
import tomllib


# Keys of src/train/train_config.h this script uses, with that file's defaults.
DEFAULTS = dict(dim=288, n_layers=6, n_heads=6, n_kv_heads=0, ffn_dim=0, vocab_size=0, seq_len=256,
                tie_embeddings=True, rope_base=10000.0, norm_eps=1e-5, init_std=0.02, batch_size=8,
                grad_accum=1, lr=1e-3, weight_decay=0.1, beta1=0.9, beta2=0.95, adam_eps=1e-8,
                grad_clip=1.0, seed=1234)


def load_config(path):
    with open(path, "rb") as f:
        raw = tomllib.load(f) if path.endswith(".toml") else json.load(f)
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in raw.items() if k in DEFAULTS})
    if cfg["n_kv_heads"] == 0:
        cfg["n_kv_heads"] = cfg["n_heads"]
    if cfg["ffn_dim"] == 0:
        cfg["ffn_dim"] = 32 * math.ceil(2 * 4 * cfg["dim"] / 3 / 32)
    if cfg["vocab_size"] <= 0:
        sys.exit("%s: vocab_size must be set for random-data benchmarks" % path)
    return cfg


def describe(cfg):
    d, L, V, T = cfg["dim"], cfg["n_layers"], cfg["vocab_size"], cfg["seq_len"]
    kv_dim = d // cfg["n_heads"] * cfg["n_kv_heads"]
    per_layer = 2 * d * d + 2 * d * kv_dim + 3 * d * cfg["ffn_dim"]
    n_matmul = L * per_layer + V * d
    n_params = L * (per_layer + 2 * d) + d + V * d + (0 if cfg["tie_embeddings"] else V * d)
    return dict(dim=d, n_layers=L, n_heads=cfg["n_heads"], n_kv_heads=cfg["n_kv_heads"],
                ffn_dim=cfg["ffn_dim"], vocab_size=V, seq_len=T, batch_size=cfg["batch_size"],
                grad_accum=cfg["grad_accum"], tie_embeddings=cfg["tie_embeddings"],
                n_params=n_params, n_matmul_params=n_matmul,
                flops_per_token=6 * n_matmul + 12 * L * d * T,
                tokens_per_step=cfg["batch_size"] * cfg["grad_accum"] * T)


def build(cfg):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    d, H, KV = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    hd = d // H

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg["norm_eps"]) * self.weight

    def rope(x, cos, sin):
        # x: [B, T, h, hd]; rotates adjacent pairs (x[2i], x[2i+1]) by angle pos * base^(-2i/hd)
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn_norm, self.ffn_norm = RMSNorm(), RMSNorm()
            self.wq = nn.Linear(d, H * hd, bias=False)
            self.wk = nn.Linear(d, KV * hd, bias=False)
            self.wv = nn.Linear(d, KV * hd, bias=False)
            self.wo = nn.Linear(H * hd, d, bias=False)
            self.w1 = nn.Linear(d, cfg["ffn_dim"], bias=False)  # gate
            self.w3 = nn.Linear(d, cfg["ffn_dim"], bias=False)  # up
            self.w2 = nn.Linear(cfg["ffn_dim"], d, bias=False)  # down

        def forward(self, x, cos, sin, mask):
            B, T, _ = x.shape
            n = self.attn_norm(x)
            q = rope(self.wq(n).view(B, T, H, hd), cos, sin)
            k = rope(self.wk(n).view(B, T, KV, hd), cos, sin)
            v = self.wv(n).view(B, T, KV, hd)
            if KV != H:
                k = k.repeat_interleave(H // KV, dim=2)
                v = v.repeat_interleave(H // KV, dim=2)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # [B, H, T, hd]
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hd) + mask              # [B, H, T, T]
            o = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(B, T, H * hd)
            x = x + self.wo(o)
            n = self.ffn_norm(x)
            return x + self.w2(F.silu(self.w1(n)) * self.w3(n))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(cfg["vocab_size"], d)
            self.layers = nn.ModuleList(Block() for _ in range(cfg["n_layers"]))
            self.norm = RMSNorm()
            self.out = nn.Linear(d, cfg["vocab_size"], bias=False)
            if cfg["tie_embeddings"]:
                self.out.weight = self.tok.weight
            T = cfg["seq_len"]
            theta = cfg["rope_base"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
            ang = torch.arange(T, dtype=torch.float64)[:, None] * theta[None, :]   # [T, hd/2]
            self.register_buffer("cos", torch.cos(ang).float()[None, :, None, :])
            self.register_buffer("sin", torch.sin(ang).float()[None, :, None, :])
            self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1))
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    std = cfg["init_std"]
                    if name.endswith("wo.weight") or name.endswith("w2.weight"):
                        std /= math.sqrt(2 * cfg["n_layers"])
                    nn.init.normal_(p, 0.0, std)

        def forward(self, idx, targets):
            x = self.tok(idx)
            for layer in self.layers:
                x = layer(x, self.cos, self.sin, self.mask)
            logits = self.out(self.norm(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    return Model()


def bench(cfg, threads, steps, warmup):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(cfg["seed"])
    model = build(cfg)
    decay = [p for p in model.parameters() if p.dim() == 2 and p is not model.tok.weight]
    no_decay = [p for p in model.parameters() if not (p.dim() == 2 and p is not model.tok.weight)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["adam_eps"])
    B, T, V = cfg["batch_size"], cfg["seq_len"], cfg["vocab_size"]
    times, losses = [], []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        for _ in range(cfg["grad_accum"]):
            data = torch.randint(0, V, (B, T + 1))
            loss = model(data[:, :-1], data[:, 1:]) / cfg["grad_accum"]
            loss.backward()
        if cfg["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        losses.append(float(loss) * cfg["grad_accum"])
        if step >= warmup:
            times.append(dt)
    med = statistics.median(times)
    tokens = B * T * cfg["grad_accum"]
    return dict(threads=threads, warmup=warmup, steps=steps, ms_per_step_median=1e3 * med,
                ms_per_step_min=1e3 * min(times), ms_per_step_max=1e3 * max(times),
                tokens_per_step=tokens, tokens_per_s=tokens / med, first_loss=losses[0],
                last_loss=losses[-1], torch=torch.__version__)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=8, help="measured steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--describe", action="store_true", help="print sizes and FLOPs per token only")
    args = ap.parse_args()
    cfg = load_config(args.config)
    out = describe(cfg)
    if not args.describe:
        out.update(bench(cfg, args.threads, args.steps, args.warmup))
        out["tflops_per_s"] = out["flops_per_token"] * out["tokens_per_s"] / 1e12
    print(json.dumps(out))


if __name__ == "__main__":
    main()
