#!/usr/bin/env bash
# Sequence-level distillation of the pair's small model from the large one (Kim & Rush 2016):
# the large model continues 6000 paragraph openings of the training split greedily (128 tokens
# each), and the small model is fine-tuned on those texts, so that it agrees with the large model
# more often (what speculative decoding and cascades need).
#   scripts/distill-small.sh [WORK_DIR]   (default: build/model-pair; after scripts/train-model-pair.sh)
# Writes models/slm-brown-small-1m-distilled.gguf. About 12 minutes on 2 cores (10 of them generating).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/model-pair}
slm=${SLM_BIN:-build/slm}
large=models/slm-brown-large-10m.gguf
mkdir -p "$work/distill"
/usr/bin/python3 scripts/collab-data.py prompts "$work/data" "$work/distill" --train 6000 --val 200
generate_half() {  # half-index: every other prompt, one generator with one thread
  local n=0
  while IFS= read -r prompt; do
    if (( n++ % 2 == $1 )); then
      printf '%s' "$prompt" >"$work/distill/prompt.$1"
      printf '%s' "$prompt"
      "$slm" generate -m "$large" -f "$work/distill/prompt.$1" -n 128 --temp 0 --ignore-eos -t 1 2>/dev/null
      printf '\n'  # generate ends its text with one newline: a blank line ends the document
    fi
  done <"$work/distill/prompts-train.txt" >"$work/distill/texts.$1.tmp"
}
if [[ ! -f $work/distill/texts.txt ]]; then
  generate_half 0 & generate_half 1 & wait
  cat "$work/distill/texts.0.tmp" "$work/distill/texts.1.tmp" >"$work/distill/texts.txt.tmp"
  mv "$work/distill/texts.txt.tmp" "$work/distill/texts.txt"
  rm -f "$work/distill/texts."[01].tmp "$work/distill/prompt."[01]
fi
[[ -f $work/distill/data/train.bin ]] || "$slm" data prepare -i "$work/distill/texts.txt" -t "$work/tokenizer.gguf" -o "$work/distill/data" --val-fraction 0.02 --seed 0
resume=()
[[ -f $work/small-distill/checkpoint.gguf ]] && resume=(--resume)
"$slm" train -c models/brown-small-distill.toml --data "$work/distill/data" --out-dir "$work/small-distill" -t 2 \
  --set init_from=models/slm-brown-small-1m.gguf "${resume[@]}"
"$slm" export "$work/small-distill/checkpoint.gguf" -o models/slm-brown-small-1m-distilled.gguf --dtype f16 --name slm-brown-small-1m-distilled
