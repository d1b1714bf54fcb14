#!/usr/bin/python3
"""Reference check of slm's training (backward pass and AdamW) against PyTorch autograd.

Referee: torch_transformer.forward (float64, llama adjacent-pair RoPE) differentiated by autograd,
and torch.optim.AdamW. The referee is itself checked first: on two tiny models (GQA untied, MHA
tied) every parameter tensor's autograd gradient must match central finite differences (float64).

For two random small models, (a) GQA 4/2 heads with an untied output, (b) MHA with tied
embeddings, written as F32 "llama" GGUF files with random tokens, it runs

    slm debug-train grads -m M.gguf --tokens TOK.json -o G.gguf [--micro-batches K] [-t T]
    slm debug-train adamw -m M.gguf --tokens TOK.json --steps 10 --lr 5e-3 --weight-decay 1.0
                          --beta1 0.9 --beta2 0.95 --eps 1e-8 --grad-clip C -o L.json

TOK.json is {"tokens": [[t0 .. tT], ...]}: B rows of T+1 ids; inputs row[:-1], targets row[1:];
loss = mean cross-entropy over all B*T predictions. G.gguf holds "loss" [1] and, per parameter,
d loss / d parameter under the parameter's name and shape.

Checks and tolerances (slm computes in float32, the referee in float64):
  loss ........................................... |l - ref| / |ref|             <= 1e-5
  every parameter's gradient, per tensor ......... ||g - ref||_2 / ||ref||_2      <= 1e-4
                                                   max|g - ref| / (max|ref| + 1e-8) <= 1e-4
  --micro-batches 2 and 4 vs 1 (same slm) ........ as above                         <= 1e-5
  -t 1 vs -t 2 ................................... as above                         <= 1e-5
  AdamW, 10 steps on one batch, lr 5e-3, wd 1.0, betas (0.9, 0.95), eps 1e-8, clip off and 0.5:
    every step's loss vs torch.optim.AdamW ....... relative                         <= 1e-4
    (torch in float32 vs float64 differs by ~1e-6 here: the tolerance leaves room for
    slm's float32 while a wrong param group or a missing clip moves the losses by >= 1e-3)
  Param groups: weight decay on 2-D matrices except token_embd.weight (also the head when tied);
  none on norms. The test proves it can see a wrong grouping or a missing clip: the referee's
  losses with those mistakes differ from the right ones by far more than the tolerance.

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
from gguf_writer import FLOAT32, INT32, STRING, GGML_F32, GgufWriter  # noqa: E402
import torch_transformer as tt  # noqa: E402

TOL_LOSS = 1e-5
TOL_GRAD = 1e-4
TOL_SAME_MATH = 1e-5     # micro-batching, thread count: same arithmetic, other summation order
TOL_ADAMW = 1e-4
TOL_FD = 1e-6            # autograd vs central differences, both float64

# lr 5e-3 makes the loss fall ~30x in 10 steps while float32 rounding moves it by ~1e-6 (at
# 1e-2 the memorised batch's loss gets so small that float32 noise reaches 2e-4). Weight decay 1.0
# (not a training value) so that decaying the embedding by mistake moves the losses by 1e-3 even
# in the untied model, where RMSNorm hides most of the embedding's scale.
ADAMW = dict(lr=5e-3, weight_decay=1.0, beta1=0.9, beta2=0.95, eps=1e-8)
ADAMW_STEPS = 10
CLIPS = (0.0, 0.5)

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


# ---------------------------------------------------------------------------------------------
# Models, tokens, the reference loss
# ---------------------------------------------------------------------------------------------

SPECS = [
    dict(name="gqa_untied", vocab=96, dim=64, layers=2, heads=4, kv=2, ffn=192, eps=1e-5,
         base=10000.0, tied=False, batch=4, seq=16),
    dict(name="mha_tied", vocab=80, dim=48, layers=2, heads=4, kv=4, ffn=128, eps=1e-5,
         base=10000.0, tied=True, batch=4, seq=12),
]

# Tiny shapes for the finite-difference check of the referee.
FD_SPECS = [
    dict(name="fd_gqa_untied", vocab=11, dim=8, layers=2, heads=2, kv=1, ffn=16, eps=1e-5,
         base=10000.0, tied=False, batch=2, seq=5),
    dict(name="fd_mha_tied", vocab=9, dim=8, layers=1, heads=2, kv=2, ffn=12, eps=1e-5,
         base=100.0, tied=True, batch=2, seq=6),
]


def make_model(spec, seed):
    """Random float32 weights (numpy, PyTorch order). Matrices std 0.1 (logits std ~0.8, so the
    loss is clearly below log V and attention is not uniform); norms uniform in [0.8, 1.2] so that
    their gradients are not all alike."""
    rng = np.random.default_rng(seed)
    cfg = tt.RefConfig(arch="llama", n_vocab=spec["vocab"], dim=spec["dim"],
                       n_layers=spec["layers"], n_heads=spec["heads"], n_kv_heads=spec["kv"],
                       head_dim=spec["dim"] // spec["heads"], ffn_dim=spec["ffn"], eps=spec["eps"],
                       rope_base=spec["base"], ctx_len=64, tied=spec["tied"])
    d, hd, V = cfg.dim, cfg.head_dim, cfg.n_vocab

    def normal(shape, std=0.1):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm():
        return rng.uniform(0.8, 1.2, d).astype(np.float32)

    w = {"token_embd.weight": normal((V, d), 0.2 if cfg.tied else 0.1)}
    for l in range(cfg.n_layers):
        b = "blk.%d." % l
        w[b + "attn_norm.weight"] = norm()
        w[b + "attn_q.weight"] = normal((cfg.n_heads * hd, d), 0.2)
        w[b + "attn_k.weight"] = normal((cfg.n_kv_heads * hd, d), 0.2)
        w[b + "attn_v.weight"] = normal((cfg.n_kv_heads * hd, d))
        w[b + "attn_output.weight"] = normal((d, cfg.n_heads * hd))
        w[b + "ffn_norm.weight"] = norm()
        w[b + "ffn_gate.weight"] = normal((cfg.ffn_dim, d))
        w[b + "ffn_up.weight"] = normal((cfg.ffn_dim, d))
        w[b + "ffn_down.weight"] = normal((d, cfg.ffn_dim))
    w["output_norm.weight"] = norm()
    if not cfg.tied:
        w["output.weight"] = normal((V, d), 0.1)
    return cfg, w


def make_tokens(spec, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, spec["vocab"], size=(spec["batch"], spec["seq"] + 1)).tolist()


def write_model(path, cfg, w):
    """An F32 llama GGUF with the metadata forward_test.py writes and a small SPM vocabulary
    (no byte tokens: the vocabulary is smaller than 259)."""
    gw = GgufWriter(alignment=32)
    a = cfg.arch
    gw.add_string("general.architecture", a)
    gw.add_string("general.name", os.path.basename(path))
    for k, v in ((".context_length", cfg.ctx_len), (".embedding_length", cfg.dim),
                 (".block_count", cfg.n_layers), (".feed_forward_length", cfg.ffn_dim),
                 (".attention.head_count", cfg.n_heads),
                 (".attention.head_count_kv", cfg.n_kv_heads)):
        gw.add_u32(a + k, v)
    gw.add_f32(a + ".attention.layer_norm_rms_epsilon", cfg.eps)
    gw.add_f32(a + ".rope.freq_base", cfg.rope_base)
    gw.add_string("tokenizer.ggml.model", "llama")
    gw.add_u32("tokenizer.ggml.bos_token_id", 1)
    gw.add_u32("tokenizer.ggml.eos_token_id", 2)
    gw.add_u32("tokenizer.ggml.unknown_token_id", 0)
    gw.add_bool("tokenizer.ggml.add_bos_token", True)
    tokens = ["<unk>", "<s>", "</s>"] + ["\u2581w%d" % i for i in range(cfg.n_vocab - 3)]
    gw.add_array("tokenizer.ggml.tokens", STRING, tokens)
    gw.add_array("tokenizer.ggml.scores", FLOAT32, [0.0] * 3 + [-float(i) for i in range(cfg.n_vocab - 3)])
    gw.add_array("tokenizer.ggml.token_type", INT32, [2, 3, 3] + [1] * (cfg.n_vocab - 3))
    for name, arr in w.items():
        gw.add_tensor(name, arr, GGML_F32)
    gw.write(path)


def ref_loss(cfg, wt, rows):
    """Mean cross-entropy over all B*T predictions; wt: float64 torch tensors (may require grad)."""
    logits, targets = [], []
    for r in rows:
        logits.append(tt.forward(cfg, wt, r[:-1]))
        targets.extend(r[1:])
    logits = torch.cat(logits, dim=0)                                        # [B*T, V]
    return torch.nn.functional.cross_entropy(logits, torch.tensor(targets, dtype=torch.long))


def ref_grads(cfg, w, rows):
    """(loss, {name: gradient}) in float64 numpy, by autograd."""
    wt = {k: v.clone().requires_grad_(True) for k, v in tt.to_torch(w).items()}
    loss = ref_loss(cfg, wt, rows)
    loss.backward()
    return float(loss), {k: v.grad.numpy().copy() for k, v in wt.items()}


def decays(name, arr_ndim):
    """The weight-decay rule of the brief: 2-D matrices except the embedding (also the tied head)."""
    return arr_ndim == 2 and name != "token_embd.weight"


def ref_adamw(cfg, w, rows, clip, steps=ADAMW_STEPS, dtype=torch.float64, decay_rule=decays):
    """Losses before each of `steps` AdamW updates on the same batch (torch.optim.AdamW)."""
    wt = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)).to(dtype).requires_grad_(True)
          for k, v in w.items()}
    groups = [
        {"params": [p for k, p in wt.items() if decay_rule(k, p.dim())],
         "weight_decay": ADAMW["weight_decay"]},
        {"params": [p for k, p in wt.items() if not decay_rule(k, p.dim())], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]),
                            eps=ADAMW["eps"])
    losses, norms = [], []
    for _ in range(steps):
        opt.zero_grad()
        if dtype == torch.float64:
            loss = ref_loss(cfg, wt, rows)
        else:
            loss = ref_loss_f32(cfg, wt, rows)
        loss.backward()
        params = list(wt.values())
        norms.append(float(torch.norm(torch.stack([p.grad.norm() for p in params]))))
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        losses.append(float(loss))
    return np.array(losses), np.array(norms)


def ref_loss_f32(cfg, wt, rows):
    """ref_loss in float32 (to measure how far float32 arithmetic alone moves AdamW's losses):
    the float64 forward of torch_transformer with float32 weights computes in float32, except
    RoPE's angles, which are float64 and get cast on multiplication."""
    logits, targets = [], []
    for r in rows:
        logits.append(tt.forward(cfg, wt, r[:-1]).to(torch.float32))
        targets.extend(r[1:])
    return torch.nn.functional.cross_entropy(torch.cat(logits), torch.tensor(targets))


# ---------------------------------------------------------------------------------------------
# Self-check of the referee: autograd vs central finite differences
# ---------------------------------------------------------------------------------------------

def check_referee_finite_differences():
    h = 1e-5
    for i, spec in enumerate(FD_SPECS):
        cfg, w = make_model(spec, seed=77 + i)
        rows = make_tokens(spec, seed=177 + i)
        _, grads = ref_grads(cfg, w, rows)
        base = tt.to_torch(w)
        rng = np.random.default_rng(5 + i)

        def loss_at(name, delta):
            ww = dict(base)
            ww[name] = base[name] + delta
            with torch.no_grad():
                return float(ref_loss(cfg, ww, rows))

        worst = (0.0, "")
        for name, g in grads.items():
            # Directional derivative along a random direction, then three single elements.
            v = torch.from_numpy(rng.standard_normal(g.shape))
            fd = (loss_at(name, h * v) - loss_at(name, -h * v)) / (2 * h)
            an = float((torch.from_numpy(g) * v).sum())
            errs = [abs(fd - an) / max(abs(an), 1e-10)]
            for _ in range(3):
                idx = tuple(int(rng.integers(0, s)) for s in g.shape)
                e = torch.zeros(g.shape, dtype=torch.float64)
                e[idx] = 1.0
                fd_e = (loss_at(name, h * e) - loss_at(name, -h * e)) / (2 * h)
                # absolute floor: elements whose gradient is ~0 (a token absent from the batch)
                errs.append(abs(fd_e - g[idx]) / max(abs(g).max(), 1e-10))
            if max(errs) > worst[0]:
                worst = (max(errs), name)
            if max(errs) > TOL_FD:
                fail("referee %s: autograd vs finite differences for %s: rel err %.2e > %.0e"
                     % (spec["name"], name, max(errs), TOL_FD))
        print("self-check autograd vs finite differences, %s (%d tensors): worst rel err %.2e (%s)"
              % (spec["name"], len(grads), worst[0], worst[1]))


def check_referee_sees_mistakes(cfg, w, rows, label):
    """The AdamW comparison must be able to fail: the losses with a wrong param grouping (decay
    on norms or embedding, none on an untied output) or without the clip differ from the right ones by more than 5x
    the tolerance, and float32 arithmetic alone stays well inside it."""
    right, norms = ref_adamw(cfg, w, rows, clip=0.0)
    right_clip, _ = ref_adamw(cfg, w, rows, clip=CLIPS[1])
    if right[-1] > 0.9 * right[0]:
        fail("referee %s: AdamW does not move the loss (%.4f -> %.4f)" % (label, right[0], right[-1]))
    if norms[0] <= 2 * CLIPS[1]:
        fail("referee %s: grad norm %.3f too small for clip %.2f to act" % (label, norms[0], CLIPS[1]))

    def rel(a, b):
        return float(np.max(np.abs(a - b) / np.abs(b)))

    mistakes = {
        "decay on norms too": ref_adamw(cfg, w, rows, 0.0, decay_rule=lambda n, d: True)[0],
        "decay on embedding too": ref_adamw(cfg, w, rows, 0.0, decay_rule=lambda n, d: d == 2)[0],
        "clip ignored": None,
    }
    if not cfg.tied:
        mistakes["no decay on output"] = ref_adamw(
            cfg, w, rows, 0.0, decay_rule=lambda n, d: decays(n, d) and n != "output.weight")[0]
    f32, _ = ref_adamw(cfg, w, rows, 0.0, dtype=torch.float32)
    print("  referee AdamW %s: loss %.4f -> %.4f (no clip), %.4f -> %.4f (clip %.1f); grad norm %.3f"
          % (label, right[0], right[-1], right_clip[0], right_clip[-1], CLIPS[1], norms[0]))
    for name, losses in mistakes.items():
        d = rel(right_clip, right) if losses is None else rel(losses, right)
        print("    %-24s changes the losses by rel %.2e (tolerance %.0e)" % (name, d, TOL_ADAMW))
        if d < 5 * TOL_ADAMW:
            fail("referee %s: %s moves the losses only by %.2e: the test could not see it"
                 % (label, name, d))
    d32 = rel(f32, right)
    print("    %-24s changes the losses by rel %.2e" % ("float32 arithmetic", d32))
    if d32 > 0.25 * TOL_ADAMW:
        fail("referee %s: float32 alone moves the losses by %.2e, too close to the tolerance %.0e"
             % (label, d32, TOL_ADAMW))
    return {0.0: right, CLIPS[1]: right_clip}


# ---------------------------------------------------------------------------------------------
# Running slm
# ---------------------------------------------------------------------------------------------

class SlmError(Exception):
    pass


def run_slm(args, argv):
    cmd = [args.slm] + argv
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise SlmError("timed out after 300 s: %s" % " ".join(cmd))
    if p.returncode != 0:
        raise SlmError("exit %d: %s\n  stderr: %s" % (p.returncode, " ".join(cmd), p.stderr.strip()[-2000:]))
    return p


def slm_grads(args, model, tokens_json, out, micro=None, threads=2):
    if os.path.exists(out):
        os.remove(out)
    argv = ["debug-train", "grads", "-m", model, "--tokens", tokens_json, "-o", out, "-t", str(threads)]
    if micro:
        argv += ["--micro-batches", str(micro)]
    run_slm(args, argv)
    _, t = read_gguf(out)
    if "loss" not in t:
        raise SlmError("%s has no tensor \"loss\"" % out)
    return float(np.asarray(t["loss"]).reshape(-1)[0]), {k: np.asarray(v, np.float64) for k, v in t.items() if k != "loss"}


def slm_adamw(args, model, tokens_json, out, clip):
    if os.path.exists(out):
        os.remove(out)
    run_slm(args, ["debug-train", "adamw", "-m", model, "--tokens", tokens_json,
                   "--steps", str(ADAMW_STEPS), "--lr", repr(ADAMW["lr"]),
                   "--weight-decay", repr(ADAMW["weight_decay"]), "--beta1", repr(ADAMW["beta1"]),
                   "--beta2", repr(ADAMW["beta2"]), "--eps", repr(ADAMW["eps"]),
                   "--grad-clip", repr(clip), "-o", out])
    with open(out) as f:
        return np.array(json.load(f)["losses"], dtype=np.float64)


def grad_errors(got, ref):
    """(norm-relative, max-abs-relative) error of one tensor."""
    diff = got - ref
    nrel = np.linalg.norm(diff) / max(np.linalg.norm(ref), 1e-30)
    arel = np.abs(diff).max() / (np.abs(ref).max() + 1e-8)
    return float(nrel), float(arel)


def compare_grads(label, got, ref, tol, verbose):
    """got, ref: {name: array}. Every parameter must be present with its shape."""
    if set(got) != set(ref):
        fail("%s: tensors differ: missing %s, extra %s"
             % (label, sorted(set(ref) - set(got)), sorted(set(got) - set(ref))))
    worst = (-1.0, "")
    bad = []
    for name in ref:
        if name not in got:
            continue
        if got[name].shape != ref[name].shape:
            fail("%s: %s has shape %s, want %s" % (label, name, got[name].shape, ref[name].shape))
            continue
        if not np.all(np.isfinite(got[name])):
            fail("%s: %s has non-finite values" % (label, name))
            continue
        nrel, arel = grad_errors(got[name], ref[name])
        if verbose:
            print("    %-26s ||ref|| %.3e  rel %.2e  max-abs rel %.2e" % (name, np.linalg.norm(ref[name]), nrel, arel))
        if max(nrel, arel) > worst[0]:
            worst = (max(nrel, arel), name)
        if not (nrel <= tol and arel <= tol):
            bad.append("%s (rel %.1e, max-abs rel %.1e)" % (name, nrel, arel))
    print("  %-40s worst tensor %s: %.2e (tol %.0e)" % (label, worst[1], worst[0], tol))
    if bad:
        fail("%s: %d of %d tensors exceed %.0e: %s%s" % (label, len(bad), len(ref), tol,
                                                         ", ".join(bad[:4]), ", ..." if len(bad) > 4 else ""))


def check_model(spec, args, seed):
    cfg, w = make_model(spec, seed)
    rows = make_tokens(spec, seed + 500)
    path = os.path.join(args.work, spec["name"] + ".gguf")
    tok_path = os.path.join(args.work, spec["name"] + ".tokens.json")
    write_model(path, cfg, w)
    with open(tok_path, "w") as f:
        json.dump({"tokens": rows}, f)
    print("%s: dim %d layers %d heads %d/%d ffn %d vocab %d %s, batch %d x seq %d"
          % (spec["name"], cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_dim,
             cfg.n_vocab, "tied" if cfg.tied else "untied", spec["batch"], spec["seq"]))

    # The written file is what slm reads: take the reference weights from it.
    _, wf = read_gguf(path)
    if set(wf) != set(w) or any(not np.array_equal(wf[k], w[k]) for k in w):
        fail("%s: GGUF round trip changed the weights" % spec["name"])
    loss, grads = ref_grads(cfg, w, rows)
    print("  reference loss %.6f (log V = %.4f)" % (loss, math.log(cfg.n_vocab)))
    ref_losses = check_referee_sees_mistakes(cfg, w, rows, spec["name"])
    if args.python_only:
        return

    g_out = os.path.join(args.work, spec["name"] + ".grads.gguf")
    try:
        s_loss, s_grads = slm_grads(args, path, tok_path, g_out, threads=2)
    except (SlmError, ValueError, OSError) as e:
        fail("%s: slm debug-train grads failed: %s" % (spec["name"], e))
        return
    lrel = abs(s_loss - loss) / abs(loss)
    print("  loss: slm %.7f torch %.7f rel %.2e (tol %.0e)" % (s_loss, loss, lrel, TOL_LOSS))
    if not lrel <= TOL_LOSS:
        fail("%s: loss %.7f vs torch %.7f (rel %.2e > %.0e)" % (spec["name"], s_loss, loss, lrel, TOL_LOSS))
    compare_grads("%s: grads vs autograd" % spec["name"], s_grads, grads, TOL_GRAD, verbose=True)

    variants = [("-t 1", dict(threads=1))]
    for k in (2, 4):
        if spec["batch"] % k == 0:
            variants.append(("--micro-batches %d" % k, dict(micro=k)))
    for label, kw in variants:
        try:
            v_loss, v_grads = slm_grads(args, path, tok_path, g_out, **kw)
        except (SlmError, ValueError, OSError) as e:
            fail("%s: slm debug-train grads %s failed: %s" % (spec["name"], label, e))
            continue
        if abs(v_loss - s_loss) > TOL_SAME_MATH * abs(s_loss):
            fail("%s: %s loss %.7f vs %.7f" % (spec["name"], label, v_loss, s_loss))
        compare_grads("%s: %s vs default" % (spec["name"], label), v_grads, s_grads, TOL_SAME_MATH, verbose=False)

    for clip in CLIPS:
        out = os.path.join(args.work, "%s.adamw.clip%g.json" % (spec["name"], clip))
        try:
            got = slm_adamw(args, path, tok_path, out, clip)
        except (SlmError, ValueError, OSError, KeyError) as e:
            fail("%s: slm debug-train adamw --grad-clip %g failed: %s" % (spec["name"], clip, e))
            continue
        want = ref_losses[clip]
        if got.shape != want.shape:
            fail("%s: adamw clip %g: %d losses, want %d" % (spec["name"], clip, got.size, want.size))
            continue
        rel = np.abs(got - want) / np.abs(want)
        print("  adamw clip %-4g slm  %s" % (clip, " ".join("%.5f" % x for x in got)))
        print("  adamw clip %-4g torch %s  max rel %.2e (tol %.0e)"
              % (clip, " ".join("%.5f" % x for x in want), rel.max(), TOL_ADAMW))
        if not rel.max() <= TOL_ADAMW:
            fail("%s: adamw clip %g: step %d loss %.6f vs torch %.6f (rel %.2e > %.0e)"
                 % (spec["name"], clip, int(rel.argmax()) + 1, got[rel.argmax()], want[rel.argmax()],
                    rel.max(), TOL_ADAMW))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slm", help="path to the slm binary")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--shared", help="golden data directory (unused; accepted like the other tests)")
    ap.add_argument("--python-only", action="store_true", help="only the referee's self-checks")
    ap.add_argument("--only", help="run only the model with this name")
    args = ap.parse_args()
    if not args.python_only and not args.slm:
        ap.error("--slm is required unless --python-only")
    torch.set_num_threads(2)
    os.makedirs(args.work, exist_ok=True)
    t0 = time.time()

    check_referee_finite_differences()
    for i, spec in enumerate(SPECS):
        if args.only and spec["name"] != args.only:
            continue
        check_model(spec, args, seed=4321 + i)

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
