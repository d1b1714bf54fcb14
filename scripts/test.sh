#!/usr/bin/env bash
# Builds slm and runs every test: the GoogleTest suites and PyTorch reference checks (CTest), then
# under AddressSanitizer + UndefinedBehaviorSanitizer: the GGUF fuzz test (hostile files), the
# matrix-product tests (SIMD loads near the ends of weight rows), training's gemm (packing at the
# edges of its blocks) and the server fuzz test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLM_SANITIZE=ON \
  -DSLM_BUILD_BENCH=OFF >/dev/null
ninja -C build-asan -j "$jobs" gguf_fuzz_test matmul_test gemm_test serve_fuzz_test
SLM_FUZZ_SECONDS=${SLM_FUZZ_SECONDS:-30} build-asan/tests/gguf_fuzz_test
build-asan/tests/matmul_test --gtest_brief=1
build-asan/tests/gemm_test --gtest_brief=1
build-asan/tests/serve_fuzz_test --gtest_brief=1
echo "all tests passed"
