#!/usr/bin/env bash
# End-to-end engine benchmark: builds the s15m, s110m and q500m shapes of docs/ANCHORS (random
# weights, the 32000-token llama-spm vocabulary, tied embeddings) in each weight type with
# `slm init`, then runs `slm bench -p 128 -n 128 -r 3` at 1 and 2 threads and writes a markdown
# table (default docs/bench-engine.md) with the llama.cpp figures of ../shared/docs/ANCHORS.md.
# Usage: bench/engine_bench.sh [OUT.md] [shapes...]   (shapes: s15m s110m q500m; default all)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/bench-engine.md}
shift || true
shapes=("${@:-s15m s110m q500m}")
read -r -a shapes <<<"${shapes[*]}"
types=(f32 f16 q8_0 q4_0 q4_k)
vocab=${SLM_VOCAB:-../shared/data/tokenizer/ggml-vocab-llama-spm.gguf}
models=build/bench-models
slm=build/slm
[[ -f $vocab ]] || { echo "need the llama-spm vocabulary at $vocab (set SLM_VOCAB)"; exit 1; }
ninja -C build slm >/dev/null
mkdir -p "$models"

shape_flags() {
  case $1 in
    s15m) echo "--dim 288 --layers 6 --heads 6 --ffn 768" ;;
    s110m) echo "--dim 768 --layers 12 --heads 12 --ffn 2048" ;;
    q500m) echo "--dim 896 --layers 24 --heads 14 --kv-heads 2 --ffn 4864" ;;
  esac
}

# llama.cpp (commit c392e50) on this machine, from ../shared/docs/ANCHORS.md:
# prefill 1t, decode 1t, prefill 2t, decode 2t
declare -A anchor=(
  [s15m.f32]="1896 149.0 3690 215" [s15m.f16]="1098 156.1 2273 251" [s15m.q8_0]="1414 323.4 2657 499.9"
  [s15m.q4_0]="1584 336.8 2891 534.0" [s15m.q4_k]="1165 295.3 2209 474.0"
  [s110m.f32]="177.1 24.20 345.9 37.75" [s110m.f16]="94.9 24.25 188.8 45.26" [s110m.q8_0]="115.0 57.68 219.4 92.14"
  [s110m.q4_0]="129.5 67.19 246.9 111.66" [s110m.q4_k]="116.1 66.37 232.7 108.38"
  [q500m.f32]="46.30 7.12 85.49 12.39" [q500m.f16]="24.70 7.16 46.80 13.55" [q500m.q8_0]="30.39 17.63 54.75 30.64"
  [q500m.q4_0]="31.56 21.53 61.33 38.22" [q500m.q4_k]="22.38 14.99 43.80 27.84"
)

{
  echo "# Engine benchmark: slm vs llama.cpp"
  echo
  echo "Command: \`bench/engine_bench.sh\` ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null || echo '?'))."
  echo "Each model: \`slm init ... --tie --vocab-from ggml-vocab-llama-spm.gguf --dtype TYPE\`, then"
  echo "\`slm bench -m MODEL -p 128 -n 128 -r 3 -t T --json\`; medians in tokens/s. llama.cpp figures are"
  echo "../shared/docs/ANCHORS.md (llama-bench, same machine, same shapes). Ratio = slm / llama.cpp."
  echo
  echo "| model | type | types in file | MiB | prefill 1t | ratio | decode 1t | ratio | prefill 2t | ratio | decode 2t | ratio | peak RSS MiB (2t) |"
  echo "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
} >"$out.tmp"

for shape in "${shapes[@]}"; do
  for t in "${types[@]}"; do
    m=$models/$shape-$t.gguf
    if [[ ! -f $m ]]; then
      # shellcheck disable=SC2046
      $slm init --arch llama $(shape_flags "$shape") --tie --vocab-from "$vocab" --dtype "$t" -o "$m" >/dev/null
    fi
    types_in=$($slm info "$m" | sed -n 's/^types: //p' | sed -E 's/ \([^)]*\)//g')
    j1=$($slm bench -m "$m" -p 128 -n 128 -r 3 -t 1 --json)
    j2=$($slm bench -m "$m" -p 128 -n 128 -r 3 -t 2 --json)
    read -r a_pp1 a_tg1 a_pp2 a_tg2 <<<"${anchor[$shape.$t]}"
    python3 - "$shape" "$t" "$types_in" "$j1" "$j2" "$a_pp1" "$a_tg1" "$a_pp2" "$a_tg2" >>"$out.tmp" <<'PY'
import json, sys
shape, t, types_in, j1, j2 = sys.argv[1:6]
a = [float(x) for x in sys.argv[6:10]]
j1, j2 = json.loads(j1), json.loads(j2)
v = [j1["prefill_tps"]["median"], j1["decode_tps"]["median"], j2["prefill_tps"]["median"], j2["decode_tps"]["median"]]
cells = []
for x, y in zip(v, a):
    cells += [f"{x:.1f}", f"{x / y:.2f}"]
print(f"| {shape} | {t} | {types_in} | {j2['file_mib']:.1f} | " + " | ".join(cells) + f" | {j2['peak_rss_mib']:.0f} |")
PY
    tail -1 "$out.tmp"
  done
done
mv "$out.tmp" "$out"
echo "wrote $out"
