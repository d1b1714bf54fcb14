// Dense float matrix products for training: C = op(A) * op(B) + beta * C, row-major. On CPUs with
// AVX-512F they run on slm's own kernels (core/avx2/sgemm_avx512.cpp, see core/gemm_kernels.h),
// elsewhere (or with SLM_GEMM=blas) through the system BLAS (cblas_sgemm of OpenBLAS, loaded at
// run time; see gemm.cpp for why). Inference does not use this: its weights are quantized blocks
// (core/matmul.h).
//
// Either way the product is split over our ThreadPool. The built-in kernels share one packed
// copy of op(B) between the threads and give every C element the same summation order at any
// thread count. With the BLAS, C is cut into fixed blocks of rows (or columns, when C is wide and
// short), each a single-threaded BLAS call: BLAS's own threads are switched off
// (openblas_set_num_threads(1)) so that two thread pools never fight over the cores, and the
// split, hence every rounding, depends only on the thread count.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace slm {

// op(A): [m, k] (A is [k, m] when trans_a); op(B): [k, n] (B is [n, k] when trans_b); C: [m, n].
// lda/ldb/ldc: row strides in elements. beta = 0 overwrites C, 1 accumulates.
void gemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The same on the calling thread only (used inside tasks that are already parallel).
void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                 float alpha = 1.0f);

// Loads the system BLAS now (on the calling thread, before parallel regions race to it) when the
// products will need it, i.e. unless the built-in kernels serve them. Cheap after the first call.
void gemm_prepare();

// Name of the BLAS library in use ("OpenBLAS 0.3.21 ..." or "reference BLAS"), for bench reports
// (loads it; the built-in kernels may be the ones in use, see use_own_gemm()).
const char* blas_name();

}  // namespace slm
