#include "core/gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>

#include "core/cpu.h"
#include "core/gemm_kernels.h"

namespace slm {
namespace {

// The BLAS is loaded at run time rather than linked: OpenBLAS picks its kernels from the CPU when
// it is loaded, and 0.3.21 takes AVX-512 Zen 4 parts for Haswell (AVX2) - 1.6x slower on
// training's products. Loading it ourselves lets us set OPENBLAS_CORETYPE=SKYLAKEX first on CPUs
// with the AVX-512 subsets those kernels use, unless the environment already names a core type
// (it is the user's or the machine's choice then, and it is respected). Without any BLAS, a plain loop product keeps training correct, if slow.
enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };  // the CBLAS enum values
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);
using SetThreadsFn = void (*)(int);
using ConfigFn = char* (*)();

struct Blas {
  SgemmFn sgemm = nullptr;
  ConfigFn config = nullptr;
};

bool cpu_has_avx512_skylakex_set() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512cd");
#else
  return false;
#endif
}

const Blas& blas() {
  static Blas b;
  static std::once_flag once;
  std::call_once(once, [] {
    if (!std::getenv("OPENBLAS_CORETYPE") && cpu_has_avx512_skylakex_set())
      setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 0);
    // One BLAS thread per caller, for every caller: openblas_set_num_threads(1) below only sets
    // the OpenMP thread count of the thread that calls it, so the pool's other threads would
    // each start a team of their own (4 threads on 2 cores, 4x slower). The variables are read
    // when the library (and libgomp) loads, which is now.
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    for (const char* name : {"libopenblas.so.0", "libblas.so.3", "libopenblas.so", "libblas.so"}) {
      void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!h) continue;
      auto fn = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
      if (!fn) continue;
      b.sgemm = fn;
      b.config = reinterpret_cast<ConfigFn>(dlsym(h, "openblas_get_config"));
      // Our pool splits the work; BLAS's own threads would fight it for the cores.
      if (auto set = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"))) set(1);
      break;
    }
    if (!b.sgemm)
      std::fprintf(stderr, "warning: no BLAS library found (install libopenblas0-openmp); training "
                           "uses a slow built-in matrix product\n");
  });
  return b;
}

// C = alpha op(A) op(B) + beta C, plain loops (only without a BLAS).
void fallback_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int64_t p = 0; p < k; ++p)
        acc += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      float& out = c[i * ldc + j];
      out = alpha * acc + (beta == 0.0f ? 0.0f : beta * out);
    }
}

// Rows (or columns) per block: large enough for BLAS's packing to pay off.
constexpr int64_t kMinBlock = 64;

std::atomic<bool>& own_gemm_flag() {
  static std::atomic<bool> flag{[] {
    const char* env = std::getenv("SLM_GEMM");
    return !(env && std::string_view(env) == "blas");
  }()};
  return flag;
}

}  // namespace

bool use_own_gemm() {
#if defined(SLM_HAVE_AVX2_KERNELS)
  return own_gemm_flag().load(std::memory_order_relaxed) && use_avx512f();
#else
  return false;
#endif
}
bool set_use_own_gemm(bool on) { return own_gemm_flag().exchange(on); }

void gemm_prepare() {
  if (!use_own_gemm()) blas();
}

const char* blas_name() {
  const Blas& b = blas();
  if (b.config) return b.config();
  return b.sgemm ? "system BLAS (not OpenBLAS)" : "built-in loops (no BLAS found)";
}

void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                 float alpha) {
  if (m <= 0 || n <= 0) return;
#if defined(SLM_HAVE_AVX2_KERNELS)
  if (use_own_gemm()) {
    sgemm_avx512(nullptr, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#endif
  const Blas& bl = blas();
  if (!bl.sgemm) {
    fallback_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  bl.sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, static_cast<int>(m),
           static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
           static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void gemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
#if defined(SLM_HAVE_AVX2_KERNELS)
  if (use_own_gemm()) {
    sgemm_avx512(&pool, trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#endif
  const int threads = pool.size();
  if (threads == 1 || (m < 2 * kMinBlock && n < 2 * kMinBlock)) {
    gemm_serial(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  blas();  // loaded once, before the pool's threads race to it
  if (m >= n) {
    // Blocks of C's rows: row i of op(A) is A[i, :] or column i of A.
    const int64_t block = std::max(kMinBlock, (m + threads - 1) / threads);
    pool.parallel_for(m, block, [&](int64_t i0, int64_t i1) {
      const float* a0 = trans_a ? a + i0 : a + i0 * lda;
      gemm_serial(trans_a, trans_b, i1 - i0, n, k, a0, lda, b, ldb, beta, c + i0 * ldc, ldc);
    });
  } else {
    const int64_t block = std::max(kMinBlock, (n + threads - 1) / threads);
    pool.parallel_for(n, block, [&](int64_t j0, int64_t j1) {
      const float* b0 = trans_b ? b + j0 * ldb : b + j0;
      gemm_serial(trans_a, trans_b, m, j1 - j0, k, a, lda, b0, ldb, beta, c + j0, ldc);
    });
  }
}

}  // namespace slm
