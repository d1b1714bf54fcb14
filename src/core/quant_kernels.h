// Internal to core/: quant blocks decoded to small integers with per-group affine maps, shared by
// dequantize_row (core/quant_decode.cpp) and the portable integer matmul kernels, and the K-quant
// reference quantizers (core/quant_k.cpp). Not part of the public interface.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace slm {

// One block of a quantized type as integers: value[i] = scale[i / group] * q[i] + bias[i / group],
// evaluated in float exactly as ggml's dequantize_row_* does (so dequantize_row is bit-exact).
struct DecodedBlock {
  int n = 0;          // values in the block (32 or 256)
  int group = 0;      // values sharing one scale/bias (16 or 32)
  bool has_bias = false;
  int8_t q[256];      // [n] integer levels, offsets (-8, -16, -32) already applied
  float scale[16];    // [n / group]
  float bias[16];     // [n / group]; 0 when !has_bias
};

// Decodes block `index` of a row of type t (a quantized type with dtype_info(t).matmul).
void decode_block(DType t, const void* row, int64_t index, DecodedBlock& out);

// ggml's nearest_int: round half to even (the current rounding mode is never changed in slm).
int nearest_int(float v);

// K-quant reference quantizers (the exact algorithms of ggml's quantize_row_q{4,5,6}_K_ref).
// n is a multiple of 256; dst holds n / 256 blocks.
void quantize_row_q4_k(const float* x, void* dst, int64_t n);
void quantize_row_q5_k(const float* x, void* dst, int64_t n);
void quantize_row_q6_k(const float* x, void* dst, int64_t n);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block, unpacked from its
// 12 scale bytes as the GGUF specification packs them.
inline void k_scale_min(int j, const uint8_t* scales, int& sc, int& m) {
  if (j < 4) {
    sc = scales[j] & 63;
    m = scales[j + 4] & 63;
  } else {
    sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

}  // namespace slm
