"""PyTorch reference of the LLaMA-family forward pass (architectures "llama" and "qwen2"), written
from the architecture's definition, independent of slm's C++ code. Contract: forward(cfg, w,
tokens) runs the whole sequence at once (no cache), causally, in float64, and returns the logits
of every position, [T, n_vocab]. Weights `w` are keyed by GGUF tensor name and held in PyTorch
order (a Linear weight is [out, in]; token_embd is [n_vocab, dim]).

Per layer:  h = x + Wo * attn(rope(Wq*n1 + bq), rope(Wk*n1 + bk), Wv*n1 + bv),  n1 = rmsnorm(x)
            out = h + Wdown * (silu(Wgate*n2) * (Wup*n2)),                        n2 = rmsnorm(h)
logits = Wout * rmsnorm(x_last)   (Wout = token_embd when the output is tied)
RoPE: llama rotates adjacent pairs (x[2i], x[2i+1]); qwen2 rotates (x[i], x[i + head_dim/2]);
both with theta_i = base^(-2i/head_dim) and angle p * theta_i at position p.
"""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class RefConfig:
    arch: str            # "llama" (adjacent RoPE) or "qwen2" (NeoX RoPE, q/k/v biases)
    n_vocab: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    eps: float
    rope_base: float
    ctx_len: int = 512
    tied: bool = False

    @property
    def neox(self):
        return self.arch == "qwen2"

    @property
    def qkv_bias(self):
        return self.arch == "qwen2"


def config_from_metadata(meta, tensors):
    """Builds a RefConfig from GGUF metadata (as returned by gguf_reader.read_gguf)."""
    arch = meta["general.architecture"]
    p = arch + "."
    n_heads = int(meta[p + "attention.head_count"])
    dim = int(meta[p + "embedding_length"])
    return RefConfig(
        arch=arch,
        n_vocab=tensors["token_embd.weight"].shape[0],
        dim=dim,
        n_layers=int(meta[p + "block_count"]),
        n_heads=n_heads,
        n_kv_heads=int(meta.get(p + "attention.head_count_kv", n_heads)),
        head_dim=int(meta.get(p + "attention.key_length", dim // n_heads)),
        ffn_dim=int(meta[p + "feed_forward_length"]),
        eps=float(meta[p + "attention.layer_norm_rms_epsilon"]),
        rope_base=float(meta.get(p + "rope.freq_base", 10000.0)),
        ctx_len=int(meta[p + "context_length"]),
        tied="output.weight" not in tensors,
    )


def to_torch(tensors):
    """numpy (f32 or f16) -> float64 torch; F16 values are exactly representable in float64."""
    return {k: torch.from_numpy(np.asarray(v, dtype=np.float64).copy()) for k, v in tensors.items()}


def rmsnorm(x, weight, eps):
    # x: [T, dim]
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * weight


def rope(x, positions, base, neox):
    """x: [T, H, hd]; positions: [T] ints. Returns the rotated copy."""
    T, H, hd = x.shape
    half = hd // 2
    i = torch.arange(half, dtype=torch.float64)
    theta = base ** (-2.0 * i / hd)                                          # [half]
    ang = positions.to(torch.float64)[:, None] * theta[None, :]              # [T, half]
    cos = torch.cos(ang)[:, None, :].to(x.dtype)   # no-op for float64 input
    sin = torch.sin(ang)[:, None, :].to(x.dtype)
    if neox:
        a, b = x[..., :half], x[..., half:]
    else:
        a, b = x[..., 0::2], x[..., 1::2]
    ra = a * cos - b * sin
    rb = a * sin + b * cos
    out = torch.empty_like(x)
    if neox:
        out[..., :half], out[..., half:] = ra, rb
    else:
        out[..., 0::2], out[..., 1::2] = ra, rb
    return out


def _round_f16(x):
    return x.to(torch.float16).to(torch.float64)


def forward(cfg, w, tokens, kv_f16=False):
    """tokens: list of ids. Returns logits [T, n_vocab] in float64.
    kv_f16: round keys (after RoPE) and values to IEEE half, as an F16 KV cache stores them."""
    tok = torch.tensor(tokens, dtype=torch.long)
    T = len(tokens)
    pos = torch.arange(T)
    hd, H, KV = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    group = H // KV
    x = w["token_embd.weight"][tok]                                          # [T, dim]
    mask = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1)         # causal
    for l in range(cfg.n_layers):
        b = "blk.%d." % l
        n1 = rmsnorm(x, w[b + "attn_norm.weight"], cfg.eps)
        q = n1 @ w[b + "attn_q.weight"].T
        k = n1 @ w[b + "attn_k.weight"].T
        v = n1 @ w[b + "attn_v.weight"].T
        if cfg.qkv_bias:
            q = q + w[b + "attn_q.bias"]
            k = k + w[b + "attn_k.bias"]
            v = v + w[b + "attn_v.bias"]
        q = rope(q.view(T, H, hd), pos, cfg.rope_base, cfg.neox)
        k = rope(k.view(T, KV, hd), pos, cfg.rope_base, cfg.neox)
        v = v.view(T, KV, hd)
        if kv_f16:
            k, v = _round_f16(k), _round_f16(v)
        # query head h reads kv head h // group
        k = k.repeat_interleave(group, dim=1)                                # [T, H, hd]
        v = v.repeat_interleave(group, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask     # [H, T, T]
        att = torch.softmax(scores, dim=-1)
        o = torch.einsum("hts,shd->thd", att, v).reshape(T, H * hd)
        x = x + o @ w[b + "attn_output.weight"].T
        n2 = rmsnorm(x, w[b + "ffn_norm.weight"], cfg.eps)
        g = n2 @ w[b + "ffn_gate.weight"].T
        u = n2 @ w[b + "ffn_up.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ w[b + "ffn_down.weight"].T
    x = rmsnorm(x, w["output_norm.weight"], cfg.eps)
    out_w = w["token_embd.weight"] if cfg.tied else w["output.weight"]
    return x @ out_w.T
