// Internal to core/: the pieces core/matmul.cpp dispatches to. Quantized weights are multiplied
// with activations quantized once per call to 8-bit blocks (as llama.cpp does), so the inner loops
// are integer dot products:
//   legacy quants (Q4_0 .. Q8_0): ActQ8 blocks of 32 values, one float scale each;
//   K-quants (Q4_K, Q5_K, Q6_K):  ActQ8K super-blocks of 256, one float scale and sums per 16.
// Float weights (F32, F16, BF16) take the float activations as they are.
// Every kernel has a portable version (core/matmul_scalar.cpp) and an AVX2/FMA/F16C version
// (core/avx2/matmul_avx2.cpp, which also holds AVX-512 VNNI variants chosen at run time by
// use_avx512_vnni()); all quantize activations to the same bytes, so they differ only by float
// summation order.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/matmul.h"

namespace slm {

struct ActQ8 {
  float d;      // scale: value = d * qs[i]
  float s;      // d * sum(qs), for the min / offset terms
  int32_t sum;  // sum(qs)
  int8_t qs[32];
};
struct ActQ8K {
  float d;             // scale of the 256 values
  int16_t bsums[16];   // sum of qs over each run of 16
  int8_t qs[256];
};
static_assert(sizeof(ActQ8) == 44 && sizeof(ActQ8K) == 292);

enum class ActKind { Float, Q8, Q8K };
ActKind activation_kind(DType weight_type);
// Bytes of one activation row of `cols` values in that form.
size_t activation_row_bytes(ActKind k, int64_t cols);

// Quantizes one row of n activations (n a multiple of 32 or 256) to ActQ8 / ActQ8K blocks:
// d = max|x| / 127, q = round-half-even(x / d) (via x * (1 / d)). Bit-identical in both versions.
void quantize_act_scalar(ActKind k, const float* x, int64_t n, void* dst);
void quantize_act_avx2(ActKind k, const float* x, int64_t n, void* dst);

// The values quantized activations stand for (d * q), for tests: what the integer kernels
// effectively multiply the weights with. For ActKind::Float a copy.
void activation_roundtrip(DType weight_type, const float* x, int64_t n, float* out);

// One matmul call as the row kernels see it.
struct MatmulTask {
  WeightView w;
  const void* x = nullptr;  // [m] activation rows: float [cols] or act blocks, x_stride bytes apart
  size_t x_stride = 0;
  int64_t m = 0;
  float* y = nullptr;       // [m, w.rows] row-major
};

// Computes y[i, r] for every i < m and r in [r0, r1).
void matmul_rows_scalar(const MatmulTask& t, int64_t r0, int64_t r1);
void matmul_rows_avx2(const MatmulTask& t, int64_t r0, int64_t r1);

// Quantized weights with AVX-512 VNNI, any m: 16 weight rows at a time with the rows across the
// vector lanes (core/avx2/matmul_interleaved_vnni.cpp: legacy quants; _k_vnni.cpp: K-quants,
// reached through the first; Q4_K and Q6_K decoding, m = 1, there goes row by row with the same
// arithmetic). Computes the rows r0 .. r0 + 16k (the largest such end <= r1) and
// returns that end; the caller does the rest with the block-per-lane kernels.
bool interleaved_vnni_supports(DType t);
int64_t matmul_rows_interleaved_vnni(const MatmulTask& t, int64_t r0, int64_t r1);
int64_t matmul_rows_interleaved_k_vnni(const MatmulTask& t, int64_t r0, int64_t r1);
// Tests and benchmarks switch the interleaved kernels off to compare; returns the previous setting.
bool use_interleaved();
bool set_use_interleaved(bool on);

}  // namespace slm
