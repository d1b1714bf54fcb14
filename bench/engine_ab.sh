#!/usr/bin/env bash
# Rerun chosen rows of bench/engine_bench.sh as alternating rounds of slm and llama-bench, so a
# slow spell of this shared machine lands on both tools instead of deciding a ratio. Each round
# runs `slm bench` and `llama-bench` (-p 128 -n 128 -r 3, same file, same threads) back to back,
# the order swapped every round; the table gives every round's ratio and the median of the rounds.
# Usage: LLAMA_BENCH=/path/to/llama-bench bench/engine_ab.sh ROUNDS ROW...
#   ROW = shape:type:threads, e.g. s110m:q4_k:1 (models from bench/engine_bench.sh, built if missing)
#   LLAMA_ARGS: extra llama-bench flags, e.g. "-mmp 0" (no memory map: its 2 MiB mappings of the
#   page cache's large folios were 2-4x slower on the benchmark VM, see docs/bench-engine.md)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { sed -n '2,9p' "$0"; exit 2; }
rounds=$1
shift
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer, got '$rounds'"; exit 2; }
llama_bench=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}
vocab=${SLM_VOCAB:-../shared/data/tokenizer/ggml-vocab-llama-spm.gguf}
models=build/bench-models
slm=build/slm
mkdir -p "$models"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# shellcheck source=bench/shapes.sh
source bench/shapes.sh

for row in "$@"; do
  IFS=: read -r shape type threads <<<"$row"
  flags=$(shape_flags "$shape") || { echo "unknown shape in '$row' (s15m, s110m, q500m)"; exit 2; }
  [[ $threads =~ ^[1-9][0-9]*$ ]] || { echo "bad thread count in '$row'"; exit 2; }
  m=$models/$shape-$type.gguf
  # shellcheck disable=SC2086
  [[ -f $m ]] || $slm init --arch llama $flags --tie --vocab-from "$vocab" --dtype "$type" -o "$m" >/dev/null
done

slm_run() {  # model threads -> "prefill decode"
  $slm bench -m "$1" -p 128 -n 128 -r 3 -t "$2" --json |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["prefill_tps"]["median"], j["decode_tps"]["median"])'
}
llama_run() {
  # shellcheck disable=SC2086
  "$llama_bench" -m "$1" -p 128 -n 128 -r 3 -t "$2" ${LLAMA_ARGS:-} -o json 2>/dev/null | python3 -c '
import json, statistics, sys
pp = tg = None
for e in json.load(sys.stdin):
    if e["n_gen"] == 0: pp = statistics.median(e["samples_ts"])
    if e["n_prompt"] == 0: tg = statistics.median(e["samples_ts"])
print(pp, tg)'
}

for ((r = 1; r <= rounds; r++)); do
  for row in "$@"; do
    IFS=: read -r shape type threads <<<"$row"
    m=$models/$shape-$type.gguf
    if ((r % 2)); then
      s=$(slm_run "$m" "$threads"); l=$(llama_run "$m" "$threads")
    else
      l=$(llama_run "$m" "$threads"); s=$(slm_run "$m" "$threads")
    fi
    echo "$row $r $s $l" | tee -a "$log" >&2
  done
done

python3 - "$log" "$@" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    row, r, sp, sd, lp, ld = line.split()
    rows.setdefault(row, []).append((float(sp), float(sd), float(lp), float(ld)))
print("| row | prefill slm / llama.cpp per round | median | decode slm / llama.cpp per round | median |")
print("|---|---|--:|---|--:|")
for row in sys.argv[2:]:
    pr = [sp / lp for sp, _, lp, _ in rows[row]]
    dr = [sd / ld for _, sd, _, ld in rows[row]]
    fmt = lambda xs: " ".join(f"{x:.2f}" for x in xs)
    print(f"| {row} | {fmt(pr)} | {statistics.median(pr):.2f} | {fmt(dr)} | {statistics.median(dr):.2f} |")
PY
