#!/usr/bin/python3
"""Reference check of slm's forward pass against PyTorch (torch_transformer.py).

For random models of several shapes (GQA, MQA, MHA; tied and untied output; llama and qwen2 with
q/k/v biases; RoPE bases 1e4 and 1e6; head dims 16, 24, 40; F32 weights and one F16 token_embd)
it writes a GGUF file (gguf_writer.py), runs
    slm generate -m M.gguf --prompt-ids "..." -n 17 --temp 0 --logits-out L.bin --json -t T
and checks each of the 17 logits rows (row 0 = prefill's last position, row i = after i
single-token decode steps) against one non-cached float64 PyTorch forward of prompt + slm's
generated tokens, at position len(prompt) - 1 + i.

Error measure, per row: rel = max_v |slm_v - ref_v| / max_v |ref_v|  (over the vocabulary).
Tolerances (see docs/testing-reference.md):
  F32 weights, F32 KV cache ............ 1e-4  (slm computes in float32; observed ~1e-6)
  F16 token_embd (tied: also the head) . 1e-3  (an F16 matmul may round activations to half,
                                               2^-11 relative, as llama.cpp does)
  --kv-type f16 vs PyTorch with K/V rounded to half like the cache stores them ... 1e-3
  --kv-type f16 vs exact PyTorch ....... 5e-3  (half rounding of K/V, 2^-11 relative per value,
                                               moves these models' logits by 5e-4..9e-4)
  -t 1 vs -t 2 ......................... 1e-5  (same math, different work split)
Greedy: slm's token i must be PyTorch's argmax of row i unless PyTorch's top-2 margin is below
twice the row's tolerance (a near tie may legitimately flip).

Before that it checks the referee itself: RoPE against hand-computed values, the GGUF writer
against an independent reader, and (when ../shared/data is present) the PyTorch model against
the logits llama.cpp computed on the golden models.

Exit codes: 0 pass, 1 fail, 77 skipped (torch or numpy missing).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    print("SKIP: PyTorch/numpy not importable (%s)" % e)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gguf_reader import read_gguf  # noqa: E402
from gguf_writer import ARRAY, FLOAT32, INT32, STRING, GGML_F16, GGML_F32, GgufWriter  # noqa: E402
import torch_transformer as tt  # noqa: E402

TOL_F32 = 1e-4
TOL_F16_WEIGHTS = 1e-3
TOL_KV_F16_EMULATED = 2e-4
TOL_KV_F16_EXACT = 5e-3
TOL_THREADS = 1e-5
N_GEN = 17
EOS_ID = 2

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def rel_err(a, b):
    """max |a - b| / max |b| over the last axis (the vocabulary)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.abs(a - b).max(axis=-1) / np.abs(b).max(axis=-1)


# ---------------------------------------------------------------------------------------------
# Self-checks of the referee
# ---------------------------------------------------------------------------------------------

def check_rope_by_hand():
    # head_dim 4, base 100 -> theta = [100^0, 100^(-2/4)] = [1, 0.1]; position 1 -> angles 1, 0.1.
    c1, s1 = 0.5403023058681398, 0.8414709848078965      # cos 1, sin 1
    c2, s2 = 0.9950041652780258, 0.09983341664682815     # cos 0.1, sin 0.1
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]], dtype=torch.float64)  # [T=1, H=1, hd=4]
    # adjacent pairs (x0, x1) at angle 1, (x2, x3) at angle 0.1
    want_adj = [1 * c1 - 2 * s1, 1 * s1 + 2 * c1, 3 * c2 - 4 * s2, 3 * s2 + 4 * c2]
    # NeoX pairs (x0, x2) at angle 1, (x1, x3) at angle 0.1
    want_neox = [1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 1 * s1 + 3 * c1, 2 * s2 + 4 * c2]
    got_adj = tt.rope(x, torch.tensor([1]), 100.0, neox=False).flatten().tolist()
    got_neox = tt.rope(x, torch.tensor([1]), 100.0, neox=True).flatten().tolist()
    got_p0 = tt.rope(x, torch.tensor([0]), 100.0, neox=False).flatten().tolist()
    for name, got, want in (("adjacent", got_adj, want_adj), ("neox", got_neox, want_neox),
                            ("position 0", got_p0, [1.0, 2.0, 3.0, 4.0])):
        if max(abs(g - w) for g, w in zip(got, want)) > 1e-12:
            fail("rope %s: got %s want %s" % (name, got, want))
    print("self-check rope vs hand-computed values: done")


def check_writer_roundtrip(path, meta_expect, tensors_expect):
    meta, tensors = read_gguf(path)
    for k, v in meta_expect.items():
        got = meta.get(k)
        if isinstance(v, float):
            ok = got is not None and abs(got - v) <= 1e-6 * abs(v)
        else:
            ok = got == v
        if not ok:
            fail("gguf roundtrip %s: key %s = %r, want %r" % (path, k, got, v))
    if set(tensors) != set(tensors_expect):
        fail("gguf roundtrip %s: tensor names differ" % path)
        return
    for k, v in tensors_expect.items():
        if tensors[k].shape != v.shape or not np.array_equal(tensors[k], v):
            fail("gguf roundtrip %s: tensor %s differs" % (path, k))


def check_against_llama_cpp(shared):
    """The PyTorch model vs llama.cpp's golden logits (independent referee of the conventions)."""
    models = os.path.join(shared, "models")
    for name in ("t-llama-spm-gqa", "t-qwen2-gpt2-mqa"):
        path = os.path.join(models, name + ".gguf")
        if not os.path.exists(path):
            print("self-check vs llama.cpp: %s absent, skipped" % path)
            continue
        meta, tensors = read_gguf(path)
        cfg = tt.config_from_metadata(meta, tensors)
        w = tt.to_torch(tensors)
        for p in ("p1", "p2"):
            with open(os.path.join(models, "%s.%s.json" % (name, p))) as f:
                g = json.load(f)
            prompt = g["prompt_tokens"]
            greedy = [t for t, _ in g["greedy"]]
            logits = tt.forward(cfg, w, prompt + greedy).numpy()
            ids = [t for t, _ in g["last_prompt_top20"]]
            vals = np.array([v for _, v in g["last_prompt_top20"]])
            last = logits[len(prompt) - 1]
            err = np.abs(last[ids] - vals).max() / np.abs(vals).max()
            tol = 1e-3  # README: ~1e-3 relative for F16/F32 weights
            if err > tol:
                fail("torch vs llama.cpp %s.%s: top-20 logits rel err %.2e > %.0e" % (name, p, err, tol))
            steps = 0
            for i, (tok, margin) in enumerate(g["greedy"]):
                if margin < 2 * tol * np.abs(vals).max():
                    break  # near tie: divergence after this point is not an error
                if int(np.argmax(logits[len(prompt) - 1 + i])) != tok:
                    fail("torch vs llama.cpp %s.%s: greedy step %d differs" % (name, p, i))
                    break
                steps += 1
            print("self-check torch vs llama.cpp %s.%s: top-20 rel err %.2e, %d greedy steps agree"
                  % (name, p, err, steps))


# ---------------------------------------------------------------------------------------------
# Random models
# ---------------------------------------------------------------------------------------------

def make_vocab(n_vocab):
    tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
    for b in range(256):
        tokens.append("<0x%02X>" % b)
        scores.append(0.0)
        types.append(6)
    i = 0
    letters = "abcdefghijklmnopqrstuvwxyz"
    while len(tokens) < n_vocab:
        word, j = "", i
        while True:
            word = letters[j % 26] + word
            j = j // 26 - 1
            if j < 0:
                break
        tokens.append("\u2581" + word)
        scores.append(-float(i))
        types.append(1)
        i += 1
    return tokens, scores, types


def make_model(spec, seed):
    """Random weights (numpy, PyTorch order) scaled so logits are O(1..10) and attention is
    neither uniform nor one-hot. EOS rows are shrunk so greedy decoding never stops early."""
    rng = np.random.default_rng(seed)
    cfg = tt.RefConfig(arch=spec["arch"], n_vocab=spec["vocab"], dim=spec["dim"],
                       n_layers=spec["layers"], n_heads=spec["heads"], n_kv_heads=spec["kv"],
                       head_dim=spec["dim"] // spec["heads"], ffn_dim=spec["ffn"], eps=spec["eps"],
                       rope_base=spec["base"], ctx_len=256, tied=spec["tied"])
    d, hd, V = cfg.dim, cfg.head_dim, cfg.n_vocab

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    w = {}
    w["token_embd.weight"] = normal((V, d), 3.0 / math.sqrt(d) if cfg.tied else 1.0)
    w["token_embd.weight"][EOS_ID] *= 0.01
    for l in range(cfg.n_layers):
        b = "blk.%d." % l
        w[b + "attn_norm.weight"] = rng.uniform(0.8, 1.2, d).astype(np.float32)
        w[b + "attn_q.weight"] = normal((cfg.n_heads * hd, d), 1.5 / math.sqrt(d))
        w[b + "attn_k.weight"] = normal((cfg.n_kv_heads * hd, d), 1.5 / math.sqrt(d))
        w[b + "attn_v.weight"] = normal((cfg.n_kv_heads * hd, d), 1.0 / math.sqrt(d))
        if cfg.qkv_bias:
            w[b + "attn_q.bias"] = normal((cfg.n_heads * hd,), 0.5)
            w[b + "attn_k.bias"] = normal((cfg.n_kv_heads * hd,), 0.5)
            w[b + "attn_v.bias"] = normal((cfg.n_kv_heads * hd,), 0.5)
        w[b + "attn_output.weight"] = normal((d, cfg.n_heads * hd), 1.0 / math.sqrt(cfg.n_heads * hd))
        w[b + "ffn_norm.weight"] = rng.uniform(0.8, 1.2, d).astype(np.float32)
        w[b + "ffn_gate.weight"] = normal((cfg.ffn_dim, d), 1.0 / math.sqrt(d))
        w[b + "ffn_up.weight"] = normal((cfg.ffn_dim, d), 1.0 / math.sqrt(d))
        w[b + "ffn_down.weight"] = normal((d, cfg.ffn_dim), 1.0 / math.sqrt(cfg.ffn_dim))
    w["output_norm.weight"] = rng.uniform(0.8, 1.2, d).astype(np.float32)
    if not cfg.tied:
        w["output.weight"] = normal((V, d), 3.0 / math.sqrt(d))
        w["output.weight"][EOS_ID] *= 0.01
    if spec.get("embd_f16"):
        w["token_embd.weight"] = w["token_embd.weight"].astype(np.float16)
    return cfg, w


def write_model(path, cfg, w):
    gw = GgufWriter(alignment=32)
    a = cfg.arch
    meta = {
        "general.architecture": a,
        "general.name": os.path.basename(path),
        a + ".context_length": cfg.ctx_len,
        a + ".embedding_length": cfg.dim,
        a + ".block_count": cfg.n_layers,
        a + ".feed_forward_length": cfg.ffn_dim,
        a + ".attention.head_count": cfg.n_heads,
        a + ".attention.head_count_kv": cfg.n_kv_heads,
        a + ".attention.layer_norm_rms_epsilon": cfg.eps,
        a + ".rope.freq_base": cfg.rope_base,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": EOS_ID,
        "tokenizer.ggml.unknown_token_id": 0,
    }
    for k, v in meta.items():
        if isinstance(v, str):
            gw.add_string(k, v)
        elif isinstance(v, float):
            gw.add_f32(k, v)
        else:
            gw.add_u32(k, v)
    gw.add_bool("tokenizer.ggml.add_bos_token", True)
    tokens, scores, types = make_vocab(cfg.n_vocab)
    gw.add_array("tokenizer.ggml.tokens", STRING, tokens)
    gw.add_array("tokenizer.ggml.scores", FLOAT32, scores)
    gw.add_array("tokenizer.ggml.token_type", INT32, types)
    for name, arr in w.items():
        gw.add_tensor(name, arr, GGML_F16 if arr.dtype == np.float16 else GGML_F32)
    gw.write(path)
    meta["tokenizer.ggml.tokens"] = tokens
    meta["tokenizer.ggml.token_type"] = types
    return meta


MODELS = [
    # name, arch, vocab, dim, layers, heads, kv, ffn, eps, base, tied, prompt length
    dict(name="llama_gqa_untied", arch="llama", vocab=300, dim=64, layers=2, heads=4, kv=2,
         ffn=160, eps=1e-5, base=10000.0, tied=False, prompt=9),
    dict(name="llama_mqa_tied_hd24_base1e6", arch="llama", vocab=320, dim=72, layers=2, heads=3,
         kv=1, ffn=200, eps=1e-6, base=1e6, tied=True, prompt=33),
    dict(name="llama_mha_untied_hd40_long", arch="llama", vocab=384, dim=80, layers=3, heads=2,
         kv=2, ffn=96, eps=1e-5, base=10000.0, tied=False, prompt=100),
    dict(name="llama_mha_tied_prompt1_eps1e-2", arch="llama", vocab=280, dim=32, layers=1, heads=2,
         kv=2, ffn=64, eps=1e-2, base=10000.0, tied=True, prompt=1),
    dict(name="qwen2_gqa_tied_base1e6", arch="qwen2", vocab=512, dim=96, layers=2, heads=6, kv=2,
         ffn=256, eps=1e-6, base=1e6, tied=True, prompt=17),
    dict(name="qwen2_mha_untied_hd24_eps5e-3", arch="qwen2", vocab=300, dim=48, layers=2, heads=2,
         kv=2, ffn=128, eps=5e-3, base=10000.0, tied=False, prompt=12),
    dict(name="qwen2_mqa_untied_hd40", arch="qwen2", vocab=300, dim=80, layers=2, heads=2, kv=1,
         ffn=128, eps=1e-6, base=1e6, tied=False, prompt=70),
    dict(name="llama_gqa_tied_f16embd", arch="llama", vocab=300, dim=64, layers=2, heads=4, kv=2,
         ffn=160, eps=1e-5, base=10000.0, tied=True, prompt=20, embd_f16=True),
    dict(name="qwen2_mqa_untied_f16embd", arch="qwen2", vocab=300, dim=64, layers=2, heads=4, kv=1,
         ffn=160, eps=1e-6, base=1e6, tied=False, prompt=20, embd_f16=True),
]


# ---------------------------------------------------------------------------------------------
# Running slm
# ---------------------------------------------------------------------------------------------

class SlmError(Exception):
    pass


def run_slm(slm, model, prompt, out_bin, n_vocab, threads, extra=()):
    cmd = [slm, "generate", "-m", model, "--prompt-ids", " ".join(map(str, prompt)),
           "-n", str(N_GEN), "--temp", "0", "--logits-out", out_bin, "--json",
           "-t", str(threads), "--ignore-eos"] + list(extra)
    if os.path.exists(out_bin):
        os.remove(out_bin)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    if p.returncode != 0:
        raise SlmError("exit %d: %s\n  stderr: %s" % (p.returncode, " ".join(cmd), p.stderr.strip()[-2000:]))
    obj = None
    try:
        obj = json.loads(p.stdout)
    except ValueError:
        for line in reversed(p.stdout.splitlines()):
            try:
                obj = json.loads(line)
                break
            except ValueError:
                continue
    if not isinstance(obj, dict) or "tokens" not in obj:
        raise SlmError("no JSON object with \"tokens\" on stdout of: %s\n  stdout: %s"
                       % (" ".join(cmd), p.stdout[-2000:]))
    tokens = [int(t) for t in obj["tokens"]]
    if "prompt_tokens" in obj and [int(t) for t in obj["prompt_tokens"]] != list(prompt):
        raise SlmError("prompt_tokens %s differ from --prompt-ids %s" % (obj["prompt_tokens"], prompt))
    raw = np.fromfile(out_bin, dtype="<f4")
    if raw.size % n_vocab:
        raise SlmError("%s: %d floats is not a multiple of n_vocab %d" % (out_bin, raw.size, n_vocab))
    rows = raw.reshape(-1, n_vocab)
    if rows.shape[0] != len(tokens):
        raise SlmError("%s: %d logits rows for %d generated tokens" % (out_bin, rows.shape[0], len(tokens)))
    if len(tokens) != N_GEN and not (tokens and tokens[-1] == EOS_ID):
        raise SlmError("asked for %d tokens, got %d (not stopped by EOS)" % (N_GEN, len(tokens)))
    return tokens, rows


def compare(label, rows, tokens, ref, n_prompt, tol):
    """rows: slm logits [n, V]; ref: PyTorch logits of the whole sequence [T, V]."""
    ref_rows = ref[n_prompt - 1:n_prompt - 1 + rows.shape[0]]
    errs = rel_err(rows, ref_rows)
    if not np.all(np.isfinite(rows)):
        fail("%s: non-finite logits from slm" % label)
    bad = [i for i, e in enumerate(errs) if not e <= tol]
    print("  %-44s max rel err %.2e (tol %.0e)  per step: %s" % (
        label, errs.max(), tol, " ".join("%.1e" % e for e in errs)))
    if bad:
        fail("%s: rows %s exceed rel err %.0e (worst %.2e at row %d)"
             % (label, bad, tol, errs.max(), int(errs.argmax())))
    for i, tok in enumerate(tokens):
        r = ref_rows[i]
        top2 = np.sort(r)[-2:]
        margin = top2[1] - top2[0]
        if tok != int(np.argmax(r)) and margin >= 2 * tol * np.abs(r).max():
            fail("%s: greedy token %d is %d, PyTorch argmax %d (margin %.3g)"
                 % (label, i, tok, int(np.argmax(r)), margin))
    return errs


def check_model(spec, args, seed):
    cfg, w = make_model(spec, seed)
    path = os.path.join(args.work, spec["name"] + ".gguf")
    meta = write_model(path, cfg, w)
    check_writer_roundtrip(path, meta, w)
    rng = np.random.default_rng(seed + 1000)
    prompt = [1] + [int(t) for t in rng.integers(3, cfg.n_vocab, spec["prompt"] - 1)]
    wt = tt.to_torch(w)
    tol = TOL_F16_WEIGHTS if spec.get("embd_f16") else TOL_F32
    print("%s: %s dim %d layers %d heads %d/%d head_dim %d ffn %d vocab %d base %g %s%s, prompt %d"
          % (spec["name"], cfg.arch, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads,
             cfg.head_dim, cfg.ffn_dim, cfg.n_vocab, cfg.rope_base,
             "tied" if cfg.tied else "untied", ", F16 token_embd" if spec.get("embd_f16") else "",
             len(prompt)))
    if args.python_only:
        ref = tt.forward(cfg, wt, prompt).numpy()
        last = ref[-1]
        s = np.sort(last)
        print("  (python only) last-row logits: max|.| %.2f std %.2f top-2 margin %.3f"
              % (np.abs(last).max(), last.std(), s[-1] - s[-2]))
        return

    out2 = os.path.join(args.work, spec["name"] + ".t2.bin")
    out1 = os.path.join(args.work, spec["name"] + ".t1.bin")
    try:
        tok2, rows2 = run_slm(args.slm, path, prompt, out2, cfg.n_vocab, 2)
    except SlmError as e:
        fail("%s: slm failed: %s" % (spec["name"], e))
        return
    ref = tt.forward(cfg, wt, prompt + tok2[:-1]).numpy()
    compare("f32 kv, -t 2 vs torch", rows2, tok2, ref, len(prompt), tol)

    try:
        tok1, rows1 = run_slm(args.slm, path, prompt, out1, cfg.n_vocab, 1)
        n = 0
        while n < min(len(tok1), len(tok2)) and tok1[n] == tok2[n]:
            n += 1
        n = min(n + 1, len(tok1), len(tok2))  # row i depends on tokens < i only
        errs = rel_err(rows1[:n], rows2[:n])
        print("  %-44s max rel err %.2e (tol %.0e) over %d rows" % ("-t 1 vs -t 2", errs.max(), TOL_THREADS, n))
        if errs.max() > TOL_THREADS:
            fail("%s: -t 1 and -t 2 logits differ by rel %.2e > %.0e" % (spec["name"], errs.max(), TOL_THREADS))
    except SlmError as e:
        fail("%s: slm -t 1 failed: %s" % (spec["name"], e))

    outh = os.path.join(args.work, spec["name"] + ".kvf16.bin")
    try:
        tokh, rowsh = run_slm(args.slm, path, prompt, outh, cfg.n_vocab, 2, ["--kv-type", "f16"])
    except SlmError as e:
        if "kv-type" in str(e) and ("not" in str(e).lower() or "unknown" in str(e).lower()
                                    or "extra" in str(e).lower()):
            print("  NOTE: --kv-type f16 not supported by this slm, F16 KV part skipped")
            return
        fail("%s: slm --kv-type f16 failed: %s" % (spec["name"], e))
        return
    seq = prompt + tokh[:-1]
    ref_exact = tt.forward(cfg, wt, seq).numpy()
    ref_emul = tt.forward(cfg, wt, seq, kv_f16=True).numpy()
    compare("f16 kv vs torch with half-rounded K/V", rowsh, tokh, ref_emul, len(prompt),
            max(TOL_KV_F16_EMULATED, tol))
    compare("f16 kv vs exact torch", rowsh, tokh, ref_exact, len(prompt), TOL_KV_F16_EXACT)
    # The flag must take effect: half-rounded K/V move the logits (by ~1e-4 or more here).
    n = 0
    while n < min(len(tokh), len(tok2)) and tokh[n] == tok2[n]:
        n += 1
    moved = rel_err(rowsh[:n + 1], rows2[:n + 1]).max() if n else 0.0
    print("  %-44s max rel diff %.2e" % ("f16 kv vs f32 kv (must differ)", moved))
    if n and moved < 1e-6:
        fail("%s: --kv-type f16 gives the same logits as f32 (rel diff %.1e): flag ignored?"
             % (spec["name"], moved))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slm", help="path to the slm binary")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared", "data"),
                    help="golden data directory (default ../shared/data)")
    ap.add_argument("--python-only", action="store_true",
                    help="only the referee's self-checks and the random models' statistics")
    ap.add_argument("--only", help="run only the model with this name")
    args = ap.parse_args()
    if not args.python_only and not args.slm:
        ap.error("--slm is required unless --python-only")
    torch.set_num_threads(2)
    os.makedirs(args.work, exist_ok=True)
    t0 = time.time()

    check_rope_by_hand()
    if os.path.isdir(args.shared):
        check_against_llama_cpp(args.shared)
    else:
        print("self-check vs llama.cpp: %s absent, skipped" % args.shared)

    for i, spec in enumerate(MODELS):
        if args.only and spec["name"] != args.only:
            continue
        check_model(spec, args, seed=1234 + i)

    print("elapsed %.1f s" % (time.time() - t0))
    if failures:
        print("%d FAILURE(S):" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
