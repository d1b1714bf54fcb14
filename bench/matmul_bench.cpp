// matmul micro-benchmarks: every weight type, the shapes of small models' layers
// ([32000 x 288] output, [768 x 288] / [288 x 768] FFN of a dim-288 model, [4864 x 896] /
// [896 x 4864] Qwen2-0.5B FFN (gate or up / down), [2048 x 768] / [768 x 2048] FFN of a dim-768
// model, [32000 x 768] its output: bigger than a core's share of L3), decode (m = 1), batched
// decode and speculative verification (m = 2, 4, 8) and prefill (m = 128), 1 and 2 threads.
// Reports weight bandwidth (W_GB/s: weight bytes read per second, the decode figure of merit) and
// GFLOP/s (2 * m * rows * cols per second, the prefill one).
// Run: build/bench/matmul_bench [--benchmark_filter=q4_0/32000] ; SLM_FORCE_SCALAR=1 for the
// portable kernels.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/matmul.h"
#include "core/matmul_kernels.h"
#include "core/quant.h"
#include "core/thread_pool.h"

namespace slm {
namespace {

const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                        DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
struct Shape {
  int64_t rows, cols;
};
const Shape kShapes[] = {{32000, 288}, {768, 288}, {288, 768}, {4864, 896}, {896, 4864}, {2048, 768}, {768, 2048}, {32000, 768}};

// K-quant rows need cols % 256 == 0; 288 and 896 are not (llama.cpp falls back to other types for
// such tensors), so K-quants run those shapes with cols rounded down to 256 and 768; the reported
// bytes and flops are those of the matrix actually used.
int64_t cols_for(DType t, int64_t cols) {
  const int64_t bs = dtype_info(t).block_size;
  return cols / bs * bs;
}

struct Matrix {
  std::vector<unsigned char> bytes;
  WeightView view;
};

const Matrix& matrix(DType t, Shape s) {
  static std::map<std::tuple<int, int64_t, int64_t>, std::unique_ptr<Matrix>> cache;
  auto& slot = cache[{static_cast<int>(t), s.rows, s.cols}];
  if (!slot) {
    slot = std::make_unique<Matrix>();
    const int64_t cols = cols_for(t, s.cols);
    const size_t stride = row_bytes(t, cols);
    slot->bytes.resize(stride * static_cast<size_t>(s.rows));
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.0f, 0.05f);
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < s.rows; ++r) {
      for (auto& v : row) v = dist(rng);
      quantize_row(t, row.data(), slot->bytes.data() + static_cast<size_t>(r) * stride, cols);
    }
    slot->view = {t, slot->bytes.data(), s.rows, cols};
  }
  return *slot;
}

ThreadPool& pool(int threads) {
  static ThreadPool p1(1), p2(2);
  return threads == 1 ? p1 : p2;
}

void bench_matmul(benchmark::State& state, DType t, Shape s, int64_t m, int threads, bool interleaved) {
  const Matrix& w = matrix(t, s);
  const bool prev = set_use_interleaved(interleaved);
  std::vector<float> x(static_cast<size_t>(m * w.view.cols)), y(static_cast<size_t>(m * w.view.rows));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  ThreadPool& p = pool(threads);
  for (auto _ : state) {
    matmul(p, w.view, x.data(), m, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["W_GB/s"] = benchmark::Counter(iters * static_cast<double>(w.bytes.size()) / 1e9,
                                                benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      iters * 2.0 * static_cast<double>(m * w.view.rows * w.view.cols) / 1e9, benchmark::Counter::kIsRate);
  set_use_interleaved(prev);
}

const bool registered = [] {
  for (int64_t m : {1, 2, 4, 8, 128})
    for (DType t : kTypes)
      for (Shape s : kShapes)
        for (int threads : {1, 2})
          // "/blockwise": the same product with the row-interleaved kernels switched off (A/B).
          for (bool interleaved : {true, false}) {
            if (!interleaved && !interleaved_vnni_supports(t)) continue;
            const std::string name = "matmul/" + std::string(dtype_name(t)) + "/" + std::to_string(s.rows) + "x" +
                                     std::to_string(cols_for(t, s.cols)) + "/m" + std::to_string(m) + "/t" +
                                     std::to_string(threads) + (interleaved ? "" : "/blockwise");
            benchmark::RegisterBenchmark(name.c_str(), bench_matmul, t, s, m, threads, interleaved)
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
          }
  return true;
}();

}  // namespace
}  // namespace slm
