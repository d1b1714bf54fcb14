#!/usr/bin/env bash
# Installs the Debian 12 packages slm needs to build and test, if any is missing.
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config
  libgtest-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libpcre2-dev
  python3-torch python3-numpy libopenblas0-openmp libtomlplusplus-dev zlib1g-dev libcpp-httplib-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the OpenAI client test (tests/openai_client); any installation will do
# (a NodeSource nodejs includes npm and conflicts with Debian's npm package, so check commands).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
