#include "core/gemm.h"

#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>
#include <mutex>

namespace slm {
namespace {

// OpenBLAS extensions, looked up at run time: the link-time library is the generic libblas, and
// which implementation libblas.so.3 resolves to is the system's choice.
using SetThreadsFn = void (*)(int);
using ConfigFn = char* (*)();

void single_thread_blas() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (auto fn = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
      fn(1);
  });
}

// Rows (or columns) per block: large enough for BLAS's packing to pay off.
constexpr int64_t kMinBlock = 64;

}  // namespace

const char* blas_name() {
  if (auto fn = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) return fn();
  return "reference BLAS (install libopenblas0-openmp for speed)";
}

void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                 float alpha) {
  if (m <= 0 || n <= 0) return;
  single_thread_blas();
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void gemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int threads = pool.size();
  if (threads == 1 || (m < 2 * kMinBlock && n < 2 * kMinBlock)) {
    gemm_serial(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  single_thread_blas();
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
