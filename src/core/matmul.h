// Matrix products with weights in any supported dtype, working on the stored blocks directly (no
// dequantized copy of a weight matrix is ever made). Weights are row-major [n_out, n_in] as GGUF
// stores them (ne0 = n_in is the contiguous dimension).
#pragma once

#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace slm {

// A weight matrix viewed in place (usually inside the memory-mapped GGUF file).
struct WeightView {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;  // n_out
  int64_t cols = 0;  // n_in (multiple of the type's block size)
  size_t row_stride() const { return row_bytes(type, cols); }
};

// y[i, r] = sum_c x[i, c] * W[r, c] for i < m, r < W.rows; x is [m, W.cols], y is [m, W.rows],
// both row-major float. m = 1 is the decode case (matrix-vector); larger m is prefill.
// Runs on `pool` (its threads split the output rows).
void matmul(ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y);

// Several products of the same input in one parallel region: ys[i] = x · ws[i]^T for up to 4
// weights sharing their column count (Q, K and V; gate and up). Each output equals, bit for bit,
// what matmul() gives it alone; fewer, larger parallel regions matter for small models, whose
// single products take about as long as waking the pool's other threads.
void matmul_multi(ThreadPool& pool, std::span<const WeightView> ws, const float* x, int64_t m,
                  std::span<float* const> ys);

// Single-threaded reference of the same product: dequantize each row, dot in double. For tests.
void matmul_reference(const WeightView& w, const float* x, int64_t m, float* y);

// One row of W (index r) dequantized: out[0..cols). For embeddings lookups.
void weight_row(const WeightView& w, int64_t r, float* out);

}  // namespace slm
