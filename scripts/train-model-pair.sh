#!/usr/bin/env bash
# Trains the collaboration model pair from scratch on the Brown Corpus with one shared tokenizer:
#   models/slm-brown-small-1m.gguf   (models/brown-small.toml, ~1.3 M parameters, ~5 min on 2 cores)
#   models/slm-brown-large-10m.gguf  (models/brown-large.toml, ~9.9 M parameters, ~30 min on 2 quiet cores)
# and the small model fine-tuned on press reportage (the first 44 Brown documents, validation ones
# excluded) for proxy tuning: models/slm-brown-small-1m-news.gguf.
#   scripts/train-model-pair.sh [WORK_DIR]   (default: build/model-pair)
# Needs ../shared/data/corpora/brown.txt and a built slm (./scripts/quickstart.sh builds it).
# Ctrl-C saves a checkpoint; rerunning the script resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/model-pair}
corpus=${SLM_CORPUS:-../shared/data/corpora/brown.txt}
slm=${SLM_BIN:-build/slm}
mkdir -p "$work"
[[ -f $work/tokenizer.gguf ]] || "$slm" tokenizer train -i "$corpus" --vocab 4096 -o "$work/tokenizer.gguf"
[[ -f $work/data/train.bin ]] || "$slm" data prepare -i "$corpus" -t "$work/tokenizer.gguf" -o "$work/data" --val-fraction 0.05 --seed 0

train() {  # name config [extra train flags...]
  local name=$1 config=$2
  shift 2
  local resume=()
  [[ -f $work/$name/checkpoint.gguf ]] && resume=(--resume)
  "$slm" train -c "$config" --data "${DATA:-$work/data}" --out-dir "$work/$name" -t 2 "${resume[@]}" "$@"
}
train small models/brown-small.toml
"$slm" export "$work/small/checkpoint.gguf" -o models/slm-brown-small-1m.gguf --dtype f16 --name slm-brown-small-1m
# The bundled large model was trained to 500 steps (WSD decay included), then resumed to 850 steps
# (the learning rate rises back and decays again over the last 20%): models/slm-brown-pair.md.
# Resuming is exact, so these two calls give the same weights on any machine with the same build.
train large models/brown-large.toml --steps 500
train large models/brown-large.toml --steps 850
"$slm" export "$work/large/checkpoint.gguf" -o models/slm-brown-large-10m.gguf --dtype f16 --name slm-brown-large-10m

# Proxy tuning's "tuned small": the small model fine-tuned on press reportage (training-split
# news documents only; the validation ones stay held out for `slm collab eval`-style scoring).
/usr/bin/python3 scripts/collab-data.py news "$corpus" "$work/data" "$work/news"
[[ -f $work/news/data/train.bin ]] || "$slm" data prepare -i "$work/news/news-train.txt" -t "$work/tokenizer.gguf" -o "$work/news/data" --val-fraction 0.1 --seed 0
DATA=$work/news/data train small-news models/brown-small-news.toml --set init_from=models/slm-brown-small-1m.gguf
"$slm" export "$work/small-news/checkpoint.gguf" -o models/slm-brown-small-1m-news.gguf --dtype f16 --name slm-brown-small-1m-news
# The prompt files of the collaboration experiments (docs/collab/).
/usr/bin/python3 scripts/collab-data.py prompts "$work/data" docs/collab
