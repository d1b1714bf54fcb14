// Internal to core/: the hand-written float matrix product that core/gemm.cpp dispatches to on
// CPUs with AVX-512F (core/avx2/sgemm_avx512.cpp). Same contract as gemm() in core/gemm.h, plus
// alpha; `pool` may be null (the calling thread does all the work, as gemm_serial needs).
//
// Each element of C is summed in an order that depends only on k (blocks of k in sequence, one
// fused multiply-add per k inside a block), never on how the product was split across threads:
// results are bit-identical at every thread count.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace slm {

void sgemm_avx512(ThreadPool* pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                  float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                  float* c, int64_t ldc);

// Which implementation gemm() uses: the built-in AVX-512 kernels (default where the CPU has
// AVX-512F) or the system BLAS. SLM_GEMM=blas in the environment starts with the BLAS; tests and
// benchmarks switch it to compare the two. set_use_own_gemm returns the previous setting.
bool use_own_gemm();
bool set_use_own_gemm(bool on);

}  // namespace slm
