#!/usr/bin/env bash
# Sequence-level distillation of the pair's small model from the large one (Kim & Rush 2016), so
# that it agrees with the large model more often (what speculative decoding and cascades need).
# The large model, served by `slm serve` (many prompts decoded together), continues prompts from
# the training split greedily (128 tokens each), and the small model is fine-tuned on its texts:
#   stage 1: the openings of every training-split paragraph of at least 20 words, from their first
#            10 and first 5 words (21,580 texts, about 3.3 M tokens); 3000 steps from
#            models/slm-brown-small-1m.gguf (models/brown-small-distill.toml);
#   stage 2: stage 1's texts plus the openings of the sentences inside those paragraphs (10 and 5
#            words) and of their clauses (after a comma, semicolon or colon; 10 words): 78,413 more
#            texts, about 13.6 M tokens in all; 5000 steps from stage 1's model
#            (models/brown-small-distill-sentences.toml);
#   stage 3: 2500 more steps on stage 2's data from stage 2's model, at half its learning rate
#            (5e-4 -> 5e-5, decaying over the second half).
#   scripts/distill-small.sh [WORK_DIR]   (default: build/model-pair; after scripts/train-model-pair.sh)
# Writes models/slm-brown-small-1m-distilled.gguf. About 70 minutes on 2 cores (25 of them
# generating). Steps already done (texts, prepared data, training checkpoints) are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/model-pair}
slm=${SLM_BIN:-build/slm}
large=models/slm-brown-large-10m.gguf
port=${SLM_DISTILL_PORT:-8093}
mkdir -p "$work/distill" "$work/distill2"
if [[ ! -f $work/distill/prompts.txt ]]; then
  for words in 10 5; do
    /usr/bin/python3 scripts/collab-data.py prompts "$work/data" "$work/distill/w$words" --train 10790 --val 200 --words "$words"
  done
  cat "$work/distill/w10/prompts-train.txt" "$work/distill/w5/prompts-train.txt" >"$work/distill/prompts.txt.tmp"
  mv "$work/distill/prompts.txt.tmp" "$work/distill/prompts.txt"
fi
for words in 10 5; do
  [[ -f $work/distill2/prompts-w$words.txt ]] ||
    /usr/bin/python3 scripts/collab-data.py sentences "$work/data" "$work/distill2/prompts-w$words.txt" --words "$words"
done
[[ -f $work/distill2/prompts-clauses.txt ]] ||
  /usr/bin/python3 scripts/collab-data.py sentences "$work/data" "$work/distill2/prompts-clauses.txt" --clauses

names=(distill/texts distill2/texts-w10 distill2/texts-w5 distill2/texts-clauses)
prompts=("$work/distill/prompts.txt" "$work/distill2/prompts-w10.txt" "$work/distill2/prompts-w5.txt" "$work/distill2/prompts-clauses.txt")
texts=()
missing=0
for n in "${names[@]}"; do
  texts+=("$work/$n.txt")
  [[ -f $work/$n.txt ]] || missing=1
done
if ((missing)); then
  "$slm" serve --model large="$large" -t 2 --parallel 16 --port "$port" 2>"$work/distill/serve.log" &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for i in "${!texts[@]}"; do
    [[ -f ${texts[$i]} ]] ||
      /usr/bin/python3 scripts/teacher-texts.py "http://127.0.0.1:$port" large "${prompts[$i]}" "${texts[$i]}" -n 128 --workers 14
  done
  kill $server
  wait $server || true
  trap - EXIT
fi

# Stage 1
[[ -f $work/distill/data/train.bin ]] || "$slm" data prepare -i "${texts[0]}" -t "$work/tokenizer.gguf" -o "$work/distill/data" --val-fraction 0.02 --seed 0
resume=()
[[ -f $work/small-distill/checkpoint.gguf ]] && resume=(--resume)
"$slm" train -c models/brown-small-distill.toml --data "$work/distill/data" --out-dir "$work/small-distill" -t 2 \
  --set init_from=models/slm-brown-small-1m.gguf "${resume[@]}"
"$slm" export "$work/small-distill/checkpoint.gguf" -o "$work/small-distill/model.gguf" --dtype f16 --name slm-brown-small-1m-distilled

# Stage 2
if [[ ! -f $work/distill2/data/train.bin ]]; then
  cat "${texts[@]}" >"$work/distill2/texts.txt"
  "$slm" data prepare -i "$work/distill2/texts.txt" -t "$work/tokenizer.gguf" -o "$work/distill2/data" --val-fraction 0.02 --seed 0
fi
resume=()
[[ -f $work/small-distill2/checkpoint.gguf ]] && resume=(--resume)
"$slm" train -c models/brown-small-distill-sentences.toml --data "$work/distill2/data" --out-dir "$work/small-distill2" -t 2 \
  --set init_from="$work/small-distill/model.gguf" "${resume[@]}"
"$slm" export "$work/small-distill2/checkpoint.gguf" -o "$work/small-distill2/model.gguf" --dtype f16 --name slm-brown-small-1m-distilled

# Stage 3
resume=()
[[ -f $work/small-distill3/checkpoint.gguf ]] && resume=(--resume)
"$slm" train -c models/brown-small-distill-sentences.toml --data "$work/distill2/data" --out-dir "$work/small-distill3" -t 2 \
  --set init_from="$work/small-distill2/model.gguf" --set steps=2500 --set lr=5e-4 --set min_lr=5e-5 \
  --set decay_fraction=0.5 --set seed=99 "${resume[@]}"
"$slm" export "$work/small-distill3/checkpoint.gguf" -o models/slm-brown-small-1m-distilled.gguf --dtype f16 --name slm-brown-small-1m-distilled
