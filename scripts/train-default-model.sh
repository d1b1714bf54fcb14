#!/usr/bin/env bash
# Trains the bundled default model from scratch: tokenizer, data, training, export.
#   scripts/train-default-model.sh [WORK_DIR]   (default: build/default-model)
# Needs ../shared/data/corpora/brown.txt and a built slm (./scripts/quickstart.sh builds it).
# Takes about an hour on 2 cores; Ctrl-C saves a checkpoint, rerunning the script resumes it.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/default-model}
corpus=${SLM_CORPUS:-../shared/data/corpora/brown.txt}
slm=${SLM_BIN:-build/slm}
mkdir -p "$work"
[[ -f $work/tokenizer.gguf ]] || "$slm" tokenizer train -i "$corpus" --vocab 4096 -o "$work/tokenizer.gguf"
[[ -f $work/data/train.bin ]] || "$slm" data prepare -i "$corpus" -t "$work/tokenizer.gguf" -o "$work/data" --val-fraction 0.05 --seed 0
resume=()
[[ -f $work/run/checkpoint.gguf ]] && resume=(--resume)
"$slm" train -c models/brown-6m.toml --data "$work/data" --out-dir "$work/run" -t 2 "${resume[@]}"
"$slm" export "$work/run/checkpoint.gguf" -o models/slm-brown-6m.gguf --dtype f16 --name "slm-brown-6m"
