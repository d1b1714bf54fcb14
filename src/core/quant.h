// Quantized block formats of the GGUF specification, bit-for-bit: block structs, dequantize and
// quantize of whole rows. The matrix products that work on blocks directly are in core/matmul.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace slm {

constexpr int kQK = 32;    // values per block of the legacy quants (Q4_0 ... Q8_0)
constexpr int kQKK = 256;  // values per super-block of the K-quants
constexpr int kKScaleBytes = 12;

// Legacy quant blocks. `d` and `m` are IEEE halves.
struct BlockQ4_0 { uint16_t d; uint8_t qs[kQK / 2]; };             // x = d * (q - 8)
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[kQK / 2]; };          // x = d * q + m
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[kQK / 2]; };  // x = d * (q - 16)
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[kQK / 2]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[kQK]; };                  // x = d * q
// K-quants: super-blocks of 256 made of sub-blocks with 6-bit (Q4_K/Q5_K) or 8-bit (Q6_K) scales.
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[kKScaleBytes]; uint8_t qs[kQKK / 2]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[kKScaleBytes]; uint8_t qh[kQKK / 8]; uint8_t qs[kQKK / 2]; };
struct BlockQ6_K { uint8_t ql[kQKK / 2]; uint8_t qh[kQKK / 4]; int8_t scales[kQKK / 16]; uint16_t d; };

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// dst[0..n) = the n values that `src` (a row of type t) holds. n must be a multiple of the block
// size. Scalar reference; works for every type with dtype_info(t).matmul.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// Writes n values as a row of type t (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
// Q6_K), rounding as the reference GGUF quantizer does; throws slm::Error for other types.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

}  // namespace slm
