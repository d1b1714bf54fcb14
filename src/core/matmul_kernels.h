// Internal to core/: the pieces core/matmul.cpp dispatches to. Quantized weights are multiplied
// with activations quantized once per call to 8-bit blocks (as llama.cpp does), so the inner loops
// are integer dot products:
//   legacy quants (Q4_0 .. Q8_0): ActQ8 blocks of 32 values, one float scale each;
//   K-quants (Q4_K, Q5_K, Q6_K):  ActQ8K super-blocks of 256, one float scale and sums per 16.
// F16 weights take the activations rounded to F16, as halves (as llama.cpp does): half the bytes
// to stream beside the weights (decode, a plain loop over q500m's F16 matrices at 1 thread: 25.9 ->
// 27.7 GB/s; prefill of [896 x 4864] with 128 rows, whose 2.5 MB of float activations exceed L2:
// 102 -> 131 GFLOP/s). F32 and BF16 weights take the float activations as they are.
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

enum class ActKind { Float, F16, Q8, Q8K };
ActKind activation_kind(DType weight_type);
// Bytes of one activation row of `cols` values in that form (ActKind::F16: as halves).
size_t activation_row_bytes(ActKind k, int64_t cols);

// Quantizes one row of n activations (n a multiple of 32 or 256) to ActQ8 / ActQ8K blocks:
// d = max|x| / 127, q = round-half-even(x / d) (via x * (1 / d)). Bit-identical in both versions.
// ActKind::F16: n halves, rounded to nearest even; values beyond the F16 range saturate to
// +-65504 (llama.cpp's conversion makes them infinite), NaN stays NaN.
void quantize_act_scalar(ActKind k, const float* x, int64_t n, void* dst);
void quantize_act_avx2(ActKind k, const float* x, int64_t n, void* dst);

// The values quantized activations stand for (d * q), for tests: what the integer kernels
// effectively multiply the weights with. For ActKind::Float a copy; F16: rounded to F16.
void activation_roundtrip(DType weight_type, const float* x, int64_t n, float* out);

// One matmul call as the row kernels see it.
struct MatmulTask {
  WeightView w;
  // [m] activation rows, x_stride bytes apart, in the form activation_kind(w.type) names:
  // float [cols], halves [cols] (F16 weights) or act blocks.
  const void* x = nullptr;
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
