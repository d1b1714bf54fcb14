#!/usr/bin/env bash
# Sequence-level distillation of the pair's small model from the large one (Kim & Rush 2016):
# the large model continues the opening of every training-split paragraph of at least 20 words
# greedily (128 tokens each), twice: from its first 10 words and from its first 5 (10,790
# paragraphs, 21,580 texts, about 3.3 M tokens); the small model is fine-tuned on those texts,
# so that it agrees with the large model more often (what speculative decoding and cascades need).
#   scripts/distill-small.sh [WORK_DIR]   (default: build/model-pair; after scripts/train-model-pair.sh)
# Writes models/slm-brown-small-1m-distilled.gguf. About 40 minutes on 2 cores (25 of them
# generating). Steps already done (texts, prepared data, a training checkpoint) are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/model-pair}
slm=${SLM_BIN:-build/slm}
large=models/slm-brown-large-10m.gguf
mkdir -p "$work/distill"
if [[ ! -f $work/distill/prompts.txt ]]; then
  for words in 10 5; do
    /usr/bin/python3 scripts/collab-data.py prompts "$work/data" "$work/distill/w$words" --train 10790 --val 200 --words "$words"
  done
  cat "$work/distill/w10/prompts-train.txt" "$work/distill/w5/prompts-train.txt" >"$work/distill/prompts.txt.tmp"
  mv "$work/distill/prompts.txt.tmp" "$work/distill/prompts.txt"
fi
generate_half() {  # half-index: every other prompt, one generator with one thread
  local n=0
  while IFS= read -r prompt; do
    if (( n++ % 2 == $1 )); then
      printf '%s' "$prompt" >"$work/distill/prompt.$1"
      printf '%s' "$prompt"
      "$slm" generate -m "$large" -f "$work/distill/prompt.$1" -n 128 --temp 0 --ignore-eos -t 1 2>/dev/null
      printf '\n'  # generate ends its text with one newline: a blank line ends the document
    fi
  done <"$work/distill/prompts.txt" >"$work/distill/texts.$1.tmp"
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
