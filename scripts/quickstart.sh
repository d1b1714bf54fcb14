#!/usr/bin/env bash
# Installs what is needed, builds slm, and generates text with the default model.
# Until the trained default model lands (models/), the default model is a random-weight model
# that `slm init` makes with a byte-level vocabulary: it shows the pipeline, not good text.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build slm
model=build/models/demo-llama-q8_0.gguf
if [[ ! -f $model ]]; then
  mkdir -p build/models
  build/slm init --arch llama --dim 288 --layers 6 --heads 6 --ffn 768 --tie --dtype q8_0 -o "$model"
fi
build/slm generate -m "$model" -p "Once upon a time" -n 48 --seed 1
