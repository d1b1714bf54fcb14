// Training's float matrix products (core/gemm.h) at the shapes of one s15m-v4k step (bench/configs:
// 2048 tokens, dim 288, ffn 768, vocab 4096), built-in AVX-512 kernels against the system BLAS in
// the same run (`/blas` twins). Reports GFLOP/s (2 m n k per second).
// Run: build/bench/gemm_bench [--benchmark_filter=NT]. OpenBLAS picks its kernels from the CPU, or
// from OPENBLAS_CORETYPE when the environment sets it (this machine's sets Haswell): compare with
// OPENBLAS_CORETYPE=SKYLAKEX build/bench/gemm_bench too.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/gemm_kernels.h"
#include "core/thread_pool.h"

namespace slm {
namespace {

struct Case {
  const char* name;  // where the product occurs in a training step
  bool ta, tb;
  int64_t m, n, k;
};
const Case kCases[] = {
    {"fwd_qkv", false, true, 2048, 288, 288},      {"fwd_gate", false, true, 2048, 768, 288},
    {"fwd_down", false, true, 2048, 288, 768},     {"fwd_logits", false, true, 2048, 4096, 288},
    {"bwd_dx_down", false, false, 2048, 768, 288}, {"bwd_dx_gate", false, false, 2048, 288, 768},
    {"bwd_dx_logits", false, false, 2048, 288, 4096}, {"bwd_dw_gate", true, false, 768, 288, 2048},
    {"bwd_dw_down", true, false, 288, 768, 2048},  {"bwd_dw_out", true, false, 4096, 288, 2048},
    {"attn_scores", false, true, 256, 256, 48},    {"attn_values", false, false, 256, 48, 256},
};

void BM_Gemm(benchmark::State& state, Case cs, bool own, int threads) {
  if (own && !cpu_features().avx512f) {
    state.SkipWithError("no AVX-512F");
    return;
  }
  const bool prev = set_use_own_gemm(own);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(cs.m * cs.k)), b(static_cast<size_t>(cs.k * cs.n)),
      c(static_cast<size_t>(cs.m * cs.n));
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  ThreadPool pool(threads);
  const int64_t lda = cs.ta ? cs.m : cs.k, ldb = cs.tb ? cs.k : cs.n;
  for (auto _ : state) {
    gemm(pool, cs.ta, cs.tb, cs.m, cs.n, cs.k, a.data(), lda, b.data(), ldb, 0.0f, c.data(), cs.n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(cs.m) * double(cs.n) * double(cs.k),
                                                 benchmark::Counter::kIsIterationInvariantRate);
  set_use_own_gemm(prev);
}

const bool kRegistered = [] {
  for (const Case& cs : kCases)
    for (int threads : {1, 2})
      for (bool own : {true, false}) {
        std::string name = std::string("gemm/") + cs.name + "/" + (cs.ta ? "T" : "N") + (cs.tb ? "T" : "N") + "/" +
                           std::to_string(cs.m) + "x" + std::to_string(cs.n) + "x" + std::to_string(cs.k) +
                           "/t" + std::to_string(threads) + (own ? "" : "/blas");
        benchmark::RegisterBenchmark(name.c_str(), BM_Gemm, cs, own, threads)->UseRealTime()->Unit(benchmark::kMicrosecond);
      }
  return true;
}();

}  // namespace
}  // namespace slm
