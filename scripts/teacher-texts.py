#!/usr/bin/python3
"""Greedy continuations of many prompts from a running `slm serve` (the teacher's text for
sequence-level distillation): each prompt goes to /v1/completions with temperature 0, so the
server decodes WORKERS of them together in one batch.

  scripts/teacher-texts.py URL MODEL PROMPTS OUT [-n 128] [--workers 12]

OUT gets one document per prompt, in the prompts' order: the prompt, its continuation, a blank
line (what `slm data prepare` reads as a document boundary). Finished continuations are appended
to OUT.partial as they arrive, so a rerun after a kill asks only for the missing ones; OUT is
written atomically at the end and OUT.partial removed."""
import argparse, json, os, sys, threading, time, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor


def complete(url, model, prompt, n):
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": n, "temperature": 0,
                       "ignore_eos": True}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/v1/completions", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.load(r)["choices"][0]["text"]
    except urllib.error.HTTPError as e:
        sys.exit("%s: HTTP %d: %s" % (url, e.code, e.read().decode("utf-8", "replace")))


def wait_for_server(url, seconds=60):
    """The server may still be loading its model when this starts."""
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            if time.time() > deadline:
                sys.exit("%s: no server answered /health within %d s" % (url, seconds))
            time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("model")
    ap.add_argument("prompts")
    ap.add_argument("out")
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--workers", type=int, default=12)
    a = ap.parse_args()
    try:
        prompts = [p for p in open(a.prompts, encoding="utf-8").read().split("\n") if p.strip()]
    except (OSError, UnicodeDecodeError) as e:
        sys.exit("%s: cannot read the prompts: %s" % (a.prompts, e))
    if not prompts:
        sys.exit("%s: no prompts (one per line)" % a.prompts)
    if a.n < 1 or a.workers < 1:
        sys.exit("-n and --workers must be at least 1")
    partial = a.out + ".partial"
    done = {}
    if os.path.exists(partial):
        for line in open(partial, encoding="utf-8"):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything before it is whole
            done[rec["i"]] = rec["text"]
    wait_for_server(a.url)
    todo = [i for i in range(len(prompts)) if i not in done]
    print("%d prompts, %d already done" % (len(prompts), len(done)), flush=True)
    lock = threading.Lock()
    with open(partial, "a", encoding="utf-8") as log:
        def one(i):
            text = complete(a.url, a.model, prompts[i], a.n)
            with lock:
                done[i] = text
                log.write(json.dumps({"i": i, "text": text}) + "\n")
                log.flush()
                if len(done) % 1000 == 0:
                    print("%d / %d" % (len(done), len(prompts)), flush=True)
        with ThreadPoolExecutor(a.workers) as pool:
            for f in [pool.submit(one, i) for i in todo]:
                f.result()
    with open(a.out + ".tmp", "w", encoding="utf-8") as f:
        for i, p in enumerate(prompts):
            f.write(p + done[i] + "\n\n")
    os.replace(a.out + ".tmp", a.out)
    os.remove(partial)
    print("%s: %d texts" % (a.out, len(prompts)))


if __name__ == "__main__":
    main()
