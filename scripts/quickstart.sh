#!/usr/bin/env bash
# Installs what is needed, builds slm, and generates text with the bundled default model
# (models/slm-brown-6m.gguf: 6 M parameters trained from scratch by slm on the Brown Corpus; its
# model card is models/slm-brown-6m.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build slm_cli
build/slm generate -m models/slm-brown-6m.gguf -p "The jury said" -n 60 --seed 1 --temp 0.8 --top-p 0.95
