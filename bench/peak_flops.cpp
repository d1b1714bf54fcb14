// Measures this machine's peak FP32 FMA throughput, the yardstick of bench/train_bench.sh's
// "% of peak" columns. Contract: prints one JSON object
//   {"isa": "avx512f", "threads": {"1": GFLOP/s, "2": GFLOP/s}, "by_isa": {...}, ...}
// where "isa" is the instruction set with the higher 1-thread figure (on AMD Zen 4 AVX-512 runs
// on 256-bit units, so AVX2 and AVX-512 give the same peak) and an FMA counts as 2 FLOPs.
//
// Method: each thread runs kAcc independent FMA chains (acc = acc * a + b) on vector registers.
// kAcc covers latency x throughput (4-cycle FMA x 2 pipes = 8 chains in flight; 12 or 16 leave
// margin) and fits the register file (16 ymm for AVX2, 32 zmm for AVX-512). The best of several
// repeats is reported, because the machine is shared and a peak is a best case by definition;
// the headline rate divides by each thread's CPU time (time stolen by other processes removed),
// the "wall" rates divide by wall-clock time.
// Instruction sets are chosen at run time (__builtin_cpu_supports); each kernel is compiled
// with a target attribute, so the file builds with the default flags.
#include <immintrin.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int64_t kIters = 100'000'000;  // loop trips per thread per repeat (0.2 to 0.6 s)
constexpr int kRepeats = 5;

// Returns a value derived from every accumulator so the compiler cannot drop the chains.
__attribute__((target("avx2,fma"))) float fma_avx2(int64_t iters) {
  constexpr int kAcc = 12;  // 12 of the 16 ymm registers; a and b take two more
  __m256 acc[kAcc];
#pragma GCC unroll 12
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_set1_ps(1.0f + 0.01f * j);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  __m256 s = acc[0];
#pragma GCC unroll 12
  for (int j = 1; j < kAcc; ++j) s = _mm256_add_ps(s, acc[j]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}
constexpr double kFlopsPerIterAvx2 = 12.0 * 8 * 2;

__attribute__((target("avx512f"))) float fma_avx512(int64_t iters) {
  constexpr int kAcc = 16;
  __m512 acc[kAcc];
#pragma GCC unroll 16
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_set1_ps(1.0f + 0.01f * j);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
#pragma GCC unroll 16
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_ps(s, acc[j]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0] + out[15];
}
constexpr double kFlopsPerIterAvx512 = 16.0 * 16 * 2;

using Kernel = float (*)(int64_t);

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Rate {
  double wall = 0.0;  // GFLOP/s over wall time: what the machine delivered in this run
  double cpu = 0.0;   // sum over threads of GFLOP per second of that thread's CPU time: the
                      // hardware's rate with time lost to other processes removed (shared machine)
};

// Rates of `threads` threads each running `kernel`, best of kRepeats.
Rate measure(Kernel kernel, double flops_per_iter, int threads, float* sink) {
  Rate best;
  for (int r = 0; r < kRepeats; ++r) {
    std::vector<float> results(threads);
    std::vector<double> cpu_s(threads);
    std::vector<std::thread> pool;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const double c0 = thread_cpu_seconds();
        results[t] = kernel(kIters);
        cpu_s[t] = thread_cpu_seconds() - c0;
      });
    }
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double gflop = flops_per_iter * kIters / 1e9;  // per thread
    double cpu_rate = 0.0;
    for (int t = 0; t < threads; ++t) {
      *sink += results[t];
      cpu_rate += gflop / cpu_s[t];
    }
    best.wall = std::max(best.wall, gflop * threads / s);
    best.cpu = std::max(best.cpu, cpu_rate);
  }
  return best;
}

}  // namespace

int main() {
  struct Isa {
    const char* name;
    bool supported;
    Kernel kernel;
    double flops_per_iter;
  };
  const Isa isas[] = {
      {"avx2", __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), fma_avx2, kFlopsPerIterAvx2},
      {"avx512f", static_cast<bool>(__builtin_cpu_supports("avx512f")), fma_avx512, kFlopsPerIterAvx512},
  };
  const int thread_counts[] = {1, 2};
  float sink = 0.0f;
  std::string by_isa;
  const char* best_isa = nullptr;
  Rate best[2];
  for (const Isa& isa : isas) {
    if (!isa.supported) continue;
    Rate g[2];
    for (int i = 0; i < 2; ++i) g[i] = measure(isa.kernel, isa.flops_per_iter, thread_counts[i], &sink);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%s\"%s\": {\"1\": %.1f, \"2\": %.1f, \"wall_1\": %.1f, \"wall_2\": %.1f}",
                  by_isa.empty() ? "" : ", ", isa.name, g[0].cpu, g[1].cpu, g[0].wall, g[1].wall);
    by_isa += buf;
    if (g[0].cpu > best[0].cpu) {
      best_isa = isa.name;
      best[0] = g[0];
      best[1] = g[1];
    }
  }
  if (!best_isa) {
    std::fprintf(stderr, "peak_flops: this CPU has neither AVX2+FMA nor AVX-512F\n");
    return 1;
  }
  // "threads": the CPU-time rates (the peak); "wall": the same runs over wall-clock time.
  std::printf("{\"isa\": \"%s\", \"threads\": {\"1\": %.1f, \"2\": %.1f}, "
              "\"wall\": {\"1\": %.1f, \"2\": %.1f}, \"by_isa\": {%s}, \"hardware_threads\": %u, "
              "\"flops_per_fma\": 2, \"checksum\": %g}\n",
              best_isa, best[0].cpu, best[1].cpu, best[0].wall, best[1].wall, by_isa.c_str(),
              std::thread::hardware_concurrency(), static_cast<double>(sink));
  return 0;
}
