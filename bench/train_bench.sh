#!/usr/bin/env bash
# Training speed benchmark: slm vs PyTorch on the same model, same machine, same run.
# For each config (bench/configs/t1m.toml, s15m-v4k.toml) and 1 and 2 threads it runs
#   slm train -c CONFIG --random-data --steps S --threads T --set out_dir=DIR
# (median of log.jsonl's tokens_per_s, the first 2 steps skipped as warm-up) and
#   bench/train_torch.py CONFIG --threads T --warmup 2 --steps S-2
# (the same model and AdamW step in PyTorch, median step time), measures the machine's FP32 FMA
# peak with bench/peak_flops.cpp, and writes a markdown table (default docs/bench-train.md) with
# tokens/s, the slm/PyTorch ratio and each one's share of peak (model FLOPs per token from
# train_torch.py --describe: 6 * N_matmul + 12 * n_layers * dim * seq_len). Prints the table.
#
# Usage: bench/train_bench.sh [OUT.md] [configs...]     (configs: t1m s15m-v4k; default both)
# Env:   SLM_BUILD_DIR (default build; configured as Release when absent)
#        SLM_SKIP=1 (PyTorch and peak only, e.g. before `slm train` exists)
#        STEPS_T1M (default 12), STEPS_S15M (default 8): slm steps incl. the 2 warm-up steps
# Exit status 1 when an slm or PyTorch run failed (the table then says "failed" in that cell).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/bench-train.md}
shift || true
configs=("${@:-t1m s15m-v4k}")
read -r -a configs <<<"${configs[*]}"
build=${SLM_BUILD_DIR:-build}
py=/usr/bin/python3
warmup=2
work=$(mktemp -d /tmp/train-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

steps_for() {
  case $1 in
    t1m) echo "${STEPS_T1M:-12}" ;;
    *) echo "${STEPS_S15M:-8}" ;;
  esac
}

# --- build ------------------------------------------------------------------------------------
if [[ ! -f $build/build.ninja ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if [[ ${SLM_SKIP:-0} != 1 ]]; then
  ninja -C "$build" slm_cli >/dev/null || { echo "train_bench: building slm in $build failed" >&2; exit 1; }
fi
peak_bin=$build/bench/peak_flops
if ! ninja -C "$build" peak_flops >/dev/null 2>&1; then
  # bench/ is only configured when Google Benchmark is installed; peak_flops needs nothing of it.
  peak_bin=$work/peak_flops
  c++ -O2 -std=c++20 -pthread -o "$peak_bin" bench/peak_flops.cpp
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "peak FP32 FMA throughput..." >&2
"$peak_bin" >"$work/peak.json"
cat "$work/peak.json" >&2

status=0
for c in "${configs[@]}"; do
  cfg=bench/configs/$c.toml
  [[ -f $cfg ]] || { echo "train_bench: no config $cfg" >&2; exit 1; }
  steps=$(steps_for "$c")
  $py bench/train_torch.py "$cfg" --describe >"$work/$c.describe.json"
  for th in 1 2; do
    if [[ ${SLM_SKIP:-0} != 1 ]]; then
      run=$work/slm-$c-t$th
      echo "slm train $c, $th thread(s), $steps steps..." >&2
      if "$build/slm" train -c "$cfg" --random-data --steps "$steps" --threads "$th" \
          --set "out_dir=$run" >"$work/slm-$c-t$th.out" 2>&1; then
        $py - "$run/log.jsonl" "$warmup" >"$work/slm-$c-t$th.json" <<'PY' || status=1
import json, statistics, sys
path, warmup = sys.argv[1], int(sys.argv[2])
rows = []
with open(path) as f:
    for line in f:
        line = line.strip()
        if line:
            o = json.loads(line)
            if "step" in o and "tokens_per_s" in o:
                rows.append(o)
timed = rows[warmup:]
if not timed:
    sys.exit("train_bench: %s has %d training lines, need more than %d warm-up steps" % (path, len(rows), warmup))
print(json.dumps({"tokens_per_s": statistics.median(r["tokens_per_s"] for r in timed),
                  "ms_per_step_median": statistics.median(r["step_ms"] for r in timed if "step_ms" in r) if any("step_ms" in r for r in timed) else None,
                  "steps_timed": len(timed), "first_loss": rows[0].get("loss"), "last_loss": rows[-1].get("loss")}))
PY
      else
        echo "train_bench: 'slm train' failed for $c at $th thread(s); its output ends with:" >&2
        tail -n 20 "$work/slm-$c-t$th.out" >&2
        status=1
      fi
    fi
    echo "PyTorch $c, $th thread(s), $warmup + $((steps - warmup)) steps..." >&2
    if ! $py bench/train_torch.py "$cfg" --threads "$th" --warmup "$warmup" --steps "$((steps - warmup))" \
        >"$work/torch-$c-t$th.json" 2>"$work/torch-$c-t$th.err"; then
      echo "train_bench: train_torch.py failed for $c at $th thread(s):" >&2
      tail -n 20 "$work/torch-$c-t$th.err" >&2
      rm -f "$work/torch-$c-t$th.json"
      status=1
    fi
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$(dirname "$out")"
$py - "$work" "$out" "$load_before" "$load_after" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "${SLM_SKIP:-0}" "${configs[@]}" <<'PY'
import datetime, json, os, platform, sys
work, out, load_before, load_after, rev, skip = sys.argv[1:7]
configs = sys.argv[7:]

def load(name):
    p = os.path.join(work, name)
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        return None
    with open(p) as f:
        return json.load(f)

peak = load("peak.json")
cpu = "?"
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
torch_version = None
lines = [
    "# Training benchmark: slm vs PyTorch, same model, same machine, same run",
    "",
    "Command: `bench/train_bench.sh` (%s UTC, slm %s)." % (
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), rev),
    "CPU: %s, %d cores; load average %s before, %s after (the machine is shared: compare the"
    " two tools within a row, they ran back to back)." % (cpu, os.cpu_count(), load_before, load_after),
    "Peak FP32 (bench/peak_flops, %s FMA chains, 2 FLOPs per FMA, per-thread CPU time): "
    "**%.0f GFLOP/s at 1 thread, %.0f at 2** (over wall time in the same run: %.0f, %.0f)." % (
        peak["isa"], peak["threads"]["1"], peak["threads"]["2"], peak["wall"]["1"], peak["wall"]["2"]),
] + ([
    "",
    "**Warning: the machine was busy (1-minute load %s on %d cores when the run began): every"
    " figure is depressed, 2-thread runs most (OpenMP/thread-pool workers wait on descheduled"
    " peers). Rerun on a quiet machine before drawing conclusions.**" % (load_before.split()[0], os.cpu_count())
] if float(load_before.split()[0]) > 0.5 * os.cpu_count() else []) + [
    "",
    "Each row: `slm train -c bench/configs/CONFIG.toml --random-data --steps S --threads T` (median of"
    " log.jsonl's tokens_per_s over steps 3..S) and `bench/train_torch.py` (the same llama model,"
    " float32, forward + backward + clip + torch.optim.AdamW, median over S-2 steps after 2 warm-up"
    " steps) on uniform random tokens. Ratio = slm / PyTorch.",
    "Model FLOPs per token = 6 * N_matmul + 12 * n_layers * dim * seq_len, N_matmul = per layer"
    " Wq, Wk, Wv, Wo, W_gate, W_up, W_down plus the (tied) output head; % of peak = FLOPs per token"
    " * tokens/s / peak at that thread count.",
    "",
    "| config | params | MFLOP/token | batch x seq | threads | slm tokens/s | PyTorch tokens/s | ratio | slm % of peak | PyTorch % of peak |",
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
]
for c in configs:
    d = load(c + ".describe.json")
    for th in ("1", "2"):
        s = None if skip == "1" else load("slm-%s-t%s.json" % (c, th))
        t = load("torch-%s-t%s.json" % (c, th))
        if t:
            torch_version = t.get("torch")
        pk = peak["threads"][th] * 1e9

        def fmt_tps(r, ran):
            if r is None:
                return "not run" if not ran else "failed"
            return "%.0f" % r["tokens_per_s"]

        def pct(r):
            return "" if r is None else "%.1f%%" % (100 * d["flops_per_token"] * r["tokens_per_s"] / pk)

        ratio = "%.2f" % (s["tokens_per_s"] / t["tokens_per_s"]) if s and t else ""
        lines.append("| %s | %.2fM | %.1f | %d x %d | %s | %s | %s | %s | %s | %s |" % (
            c, d["n_params"] / 1e6, d["flops_per_token"] / 1e6, d["batch_size"], d["seq_len"], th,
            fmt_tps(s, skip != "1"), fmt_tps(t, True), ratio, pct(s), pct(t)))
lines += ["", "PyTorch %s (Debian, OpenBLAS), Python %s." % (torch_version or "?", platform.python_version())]
text = "\n".join(lines) + "\n"
with open(out, "w") as f:
    f.write(text)
print(text)
PY
exit $status
