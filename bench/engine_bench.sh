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
ninja -C build slm_cli >/dev/null
mkdir -p "$models"

# shellcheck source=bench/shapes.sh
source bench/shapes.sh

llama_bench=${LLAMA_BENCH:-}
{
  echo "# Engine benchmark: slm vs llama.cpp, same machine, same run"
  echo
  echo "Command: \`LLAMA_BENCH=/path/to/llama-bench bench/engine_bench.sh\` ($(date -u +%Y-%m-%d), slm $(git rev-parse --short HEAD 2>/dev/null || echo '?'))."
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores."
  echo "Each model: \`slm init ... --tie --vocab-from ggml-vocab-llama-spm.gguf --dtype TYPE\`, then"
  echo "\`slm bench -m MODEL -p 128 -n 128 -r 3 -t T --json\` and, right after it on the same file,"
  echo "\`llama-bench -m MODEL -p 128 -n 128 -r 3 -t T -o json\`. Medians in tokens/s; ratio = slm / llama.cpp."
  echo "slm keeps its KV cache in F32, llama.cpp in F16 (each tool's default)."
  echo
  echo "| model | type | types in file | MiB | threads | prefill slm | prefill llama.cpp | ratio | decode slm | decode llama.cpp | ratio | slm peak RSS MiB |"
  echo "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
} >"$out.tmp"

for shape in "${shapes[@]}"; do
  for t in "${types[@]}"; do
    m=$models/$shape-$t.gguf
    if [[ ! -f $m ]]; then
      # shellcheck disable=SC2046
      $slm init --arch llama $(shape_flags "$shape") --tie --vocab-from "$vocab" --dtype "$t" -o "$m" >/dev/null
    fi
    types_in=$($slm info "$m" | sed -n 's/^types: //p' | sed -E 's/ \([^)]*\)//g')
    for th in 1 2; do
      js=$($slm bench -m "$m" -p 128 -n 128 -r 3 -t "$th" --json)
      jl='[]'
      [[ -n $llama_bench ]] && jl=$("$llama_bench" -m "$m" -p 128 -n 128 -r 3 -t "$th" -o json 2>/dev/null)
      python3 - "$shape" "$t" "$types_in" "$th" "$js" "$jl" >>"$out.tmp" <<'PY'
import json, statistics, sys
shape, t, types_in, th, js, jl = sys.argv[1:7]
s, l = json.loads(js), json.loads(jl)
def llama(kind):
    for e in l:
        if (kind == "pp" and e["n_prompt"] > 0 and e["n_gen"] == 0) or (kind == "tg" and e["n_gen"] > 0 and e["n_prompt"] == 0):
            return statistics.median(e["samples_ts"])
    return None
row = [shape, t, types_in, f"{s['file_mib']:.1f}", th]
for ours, theirs in ((s["prefill_tps"]["median"], llama("pp")), (s["decode_tps"]["median"], llama("tg"))):
    row += [f"{ours:.1f}", f"{theirs:.1f}" if theirs else "-", f"{ours / theirs:.2f}" if theirs else "-"]
row.append(f"{s['peak_rss_mib']:.0f}")
print("| " + " | ".join(str(c) for c in row) + " |")
PY
      tail -1 "$out.tmp"
    done
  done
done
mv "$out.tmp" "$out"
echo "wrote $out"
