#!/usr/bin/python3
"""Reference check of the token router (R2R) against PyTorch: features and MLP forward.

Two random models sharing the built-in vocabulary are made with `slm init`; a router is trained
on them with `slm collab router train` (few tokens, few epochs: only its weights matter here);
then `slm collab router score --prompt-ids ...` prints the router's probability after every
token of a sequence. PyTorch recomputes, in float64, from the GGUF files alone:
  the small model's logits and final hidden state (torch_transformer.forward; the hidden state is
  the same forward with an identity output head), the features (hidden, top-8 probabilities,
  entropy, top-1 minus top-2 margin), the standardisation, tanh MLP and sigmoid,
and compares each probability. Tolerance 1e-4 absolute (slm computes in float32; the hidden
state and probabilities carry ~1e-6 relative error, the MLP adds little). Routers with hidden
sizes 8 and 0 (logistic regression) are both checked.

The MLP's gradients are checked against finite differences in tests/token_router_test.cpp.

Exit codes: 0 pass, 1 fail, 77 skipped (torch or numpy missing).
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError:
    print("torch or numpy missing: skipped")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_reader import read_gguf  # noqa: E402
import torch_transformer as tt  # noqa: E402

TOL = 1e-4
TOP_K = 8


def run(slm, *args):
    r = subprocess.run([slm] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("slm %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def reference_probabilities(model_path, router_path, tokens):
    meta, tensors = read_gguf(model_path)
    cfg = tt.config_from_metadata(meta, tensors)
    w = tt.to_torch(tensors)
    logits = tt.forward(cfg, w, tokens)                                   # [T, V]
    # The final hidden state: the same forward with an identity output head.
    cfg_h = dataclasses.replace(cfg, tied=False)
    hidden = tt.forward(cfg_h, dict(w, **{"output.weight": torch.eye(cfg.dim, dtype=torch.float64)}), tokens)

    rmeta, rt = read_gguf(router_path)
    assert int(rmeta["slm.router.top_k"]) == TOP_K
    H = int(rmeta["slm.router.hidden"])
    r = {k: torch.from_numpy(np.asarray(v, dtype=np.float64).copy()) for k, v in rt.items()}

    p = torch.softmax(logits, dim=-1)
    top = torch.topk(p, TOP_K, dim=-1).values                             # [T, k] descending
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1, keepdim=True)
    margin = (top[:, 0] - top[:, 1]).unsqueeze(-1)
    feats = torch.cat([hidden, top, entropy, margin], dim=-1)            # [T, F]
    x = (feats - r["router.feature_mean"]) / r["router.feature_std"]
    if H > 0:
        a = torch.tanh(x @ r["router.fc1.weight"].T + r["router.fc1.bias"])  # [T, H]
    else:
        a = x
    s = a @ r["router.out.weight"].reshape(-1) + r["router.out.bias"]
    return torch.sigmoid(s).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slm", required=True, help="path to the slm binary")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--shared", help="golden data directory (unused; accepted like the other tests)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    small, large = os.path.join(a.work, "small.gguf"), os.path.join(a.work, "large.gguf")
    run(a.slm, "init", "--dim", "48", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--ffn", "96",
        "--ctx", "128", "--dtype", "f32", "--seed", "5", "-o", small)
    run(a.slm, "init", "--dim", "64", "--layers", "2", "--heads", "4", "--ffn", "128", "--ctx", "128",
        "--dtype", "f32", "--seed", "6", "-o", large)
    prompts = os.path.join(a.work, "prompts.txt")
    with open(prompts, "w") as f:
        f.write("The cat sat on\nOnce upon a time\nIt was the best\nHello there\n")
    rng = np.random.default_rng(3)
    tokens = [int(t) for t in rng.integers(0, 257, size=24)]
    worst_all, failed = 0.0, False
    for hidden in (8, 0):
        router = os.path.join(a.work, "router%d.gguf" % hidden)
        run(a.slm, "collab", "router", "train", "--small", small, "--large", large, "--prompts", prompts,
            "-o", router, "-n", "8", "--horizon", "3", "--hidden", str(hidden), "--epochs", "4", "-t", "1")
        out = json.loads(run(a.slm, "collab", "router", "score", "--router", router, "--small", small,
                             "--prompt-ids", " ".join(map(str, tokens)), "-t", "1"))
        got = np.array(out["probabilities"], dtype=np.float64)
        ref = reference_probabilities(small, router, tokens)
        if got.shape != ref.shape:
            print("FAIL hidden %d: %s probabilities, expected %s" % (hidden, got.shape, ref.shape))
            failed = True
            continue
        err = float(np.max(np.abs(got - ref)))
        spread = float(ref.max() - ref.min())
        worst_all = max(worst_all, err)
        status = "ok" if err <= TOL else "FAIL"
        print("%s hidden %d: max |p_slm - p_torch| = %.2e over %d positions (p from %.3f to %.3f)"
              % (status, hidden, err, len(ref), ref.min(), ref.max()))
        if err > TOL:
            failed = True
        if spread < 1e-3:
            print("FAIL hidden %d: the probabilities barely vary (%.1e): the check would be weak" % (hidden, spread))
            failed = True
    print("worst %.2e (tolerance %.0e)" % (worst_all, TOL))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
