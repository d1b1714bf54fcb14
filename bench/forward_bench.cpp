// Transformer::forward of a few new tokens at a fixed context: the cost of speculative decoding's
// verification call (k drafted tokens + 1 checked in one forward, all_logits = true) against a
// plain decode step (n = 1). Each call feeds n tokens after a prefix of kContext positions, then
// truncates the KV cache back to the prefix, so every call sees the same context.
// Reports median_ms and min_ms over all timed calls (the median is robust on a shared machine);
// compare n > 1 with n = 1 of the same run and thread count (the goal: n = 5 within 1.5x n = 1).
// Model: $SLM_BENCH_MODEL, else models/slm-brown-large-10m.gguf of this source tree; positions
// already in the cache: $SLM_BENCH_CONTEXT (64).
// Run: build/bench/forward_bench [--benchmark_filter=forward/5/1]
//   args: forward/<n new tokens>/<threads>; KV cache f32 (the CLI default).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace slm {
namespace {

// Positions in the cache before each timed call: $SLM_BENCH_CONTEXT, else 64.
const int64_t kContext = [] {
  const char* c = std::getenv("SLM_BENCH_CONTEXT");
  if (!c) return int64_t{64};
  char* end = nullptr;
  const long v = std::strtol(c, &end, 10);
  if (end == c || *end != '\0' || v < 1 || v > 100000) {
    std::fprintf(stderr, "forward_bench: SLM_BENCH_CONTEXT must be a whole number from 1 to 100000, got \"%s\"\n", c);
    std::exit(2);
  }
  return static_cast<int64_t>(v);
}();

std::string model_path() {
  if (const char* p = std::getenv("SLM_BENCH_MODEL")) return p;
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "models" / "slm-brown-large-10m.gguf")
      .string();
}

const Model& model() {
  static std::unique_ptr<Model> m = Model::load(model_path());
  return *m;
}

ThreadPool& pool(int threads) {
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return *p;
}

void BM_forward(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const Model& m = model();
  const ModelConfig& c = m.config();
  Transformer tr(m, pool(threads));
  KvCache kv(c, kContext + 64, DType::F32);

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(c.n_vocab - 1));
  std::vector<int32_t> prefix(kContext), fresh(static_cast<size_t>(n));
  for (auto& t : prefix) t = pick(rng);
  for (auto& t : fresh) t = pick(rng);
  std::vector<float> logits(static_cast<size_t>(n * c.n_vocab));
  tr.forward(prefix.data(), kContext, kv, logits.data(), false);
  // Warm-up: scratch buffers grow to n rows, caches fill.
  for (int i = 0; i < 3; ++i) {
    tr.forward(fresh.data(), n, kv, logits.data(), true);
    kv.truncate(kContext);
  }

  std::vector<double> ms;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    tr.forward(fresh.data(), n, kv, logits.data(), true);
    const auto t1 = std::chrono::steady_clock::now();
    kv.truncate(kContext);
    benchmark::DoNotOptimize(logits.data());
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  state.counters["median_ms"] = ms.empty() ? 0.0 : ms[ms.size() / 2];
  state.counters["min_ms"] = ms.empty() ? 0.0 : ms.front();
  state.counters["tok_per_s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_forward)
    ->Name("forward")
    ->ArgNames({"n", "threads"})
    ->ArgsProduct({{1, 2, 3, 5, 8}, {1, 2}})
    ->MinTime(0.5)
    ->Unit(benchmark::kMillisecond);

// One continuous-batching decode step of the server: `seqs` sequences, each with its own cache of
// kContext positions, one new token each, in one forward_batch call (last-position logits).
// Compare tok_per_s with seqs = 1: the batching gain the server can get per step; and threads 1
// with 2: how much the second thread adds to a step of a small model.
void BM_decode_batch(benchmark::State& state) {
  const int64_t seqs = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const Model& m = model();
  const ModelConfig& c = m.config();
  Transformer tr(m, pool(threads));
  std::mt19937 rng(99);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(c.n_vocab - 1));
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<int32_t> prefix(kContext), next(static_cast<size_t>(seqs));
  std::vector<float> logits(static_cast<size_t>(seqs * c.n_vocab));
  for (int64_t s = 0; s < seqs; ++s) {
    caches.push_back(std::make_unique<KvCache>(c, kContext + 8, DType::F32));
    for (auto& t : prefix) t = pick(rng);
    tr.forward(prefix.data(), kContext, *caches.back(), logits.data(), false);
    next[static_cast<size_t>(s)] = pick(rng);
  }
  std::vector<SequenceBatch> batch(static_cast<size_t>(seqs));
  for (int64_t s = 0; s < seqs; ++s)
    batch[static_cast<size_t>(s)] = {&next[static_cast<size_t>(s)], 1, caches[static_cast<size_t>(s)].get(),
                                     logits.data() + s * c.n_vocab, false, nullptr};
  const auto step = [&] {
    tr.forward_batch(batch);
    for (auto& kv : caches) kv->truncate(kContext);
  };
  for (int i = 0; i < 3; ++i) step();
  std::vector<double> ms;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(logits.data());
  }
  std::sort(ms.begin(), ms.end());
  state.counters["median_ms"] = ms.empty() ? 0.0 : ms[ms.size() / 2];
  state.counters["tok_per_s"] = benchmark::Counter(static_cast<double>(seqs), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_decode_batch)
    ->Name("decode_batch")
    ->ArgNames({"seqs", "threads"})
    ->ArgsProduct({{1, 4, 8, 16}, {1, 2}})
    ->MinTime(0.5)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace slm
