// quantize_row: float rows to every writable type, rounding exactly as ggml's reference
// quantizers (quantize_row_*_ref in ggml-quants.c) so slm writes the bytes llama.cpp would.
// The legacy quants are here; the K-quants (iterative scale search) are in core/quant_k.cpp.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "core/quant_kernels.h"

namespace slm {
namespace {

// The signed value of largest magnitude (first one on ties), as ggml's Q4_0/Q5_0 use.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// ggml casts x * id + offset to int8_t (truncation toward zero) and clamps above only.
uint8_t trunc_level(float v, int top) {
  const int t = static_cast<int8_t>(static_cast<int>(v));
  return static_cast<uint8_t>(std::min(top, t));
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t a = trunc_level(x[j] * id + 8.5f, 15);
      const uint8_t b = trunc_level(x[j + kQK / 2] * id + 8.5f, 15);
      y[i].qs[j] = static_cast<uint8_t>(a | (b << 4));
    }
  }
}

void min_max(const float* x, int n, float& mn, float& mx) {
  mn = FLT_MAX;
  mx = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    mn = std::min(mn, x[j]);
    mx = std::max(mx, x[j]);
  }
}

void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float mn, mx;
    min_max(x, kQK, mn, mx);
    const float d = (mx - mn) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(mn);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t a = trunc_level((x[j] - mn) * id + 0.5f, 15);
      const uint8_t b = trunc_level((x[j + kQK / 2] - mn) * id + 0.5f, 15);
      y[i].qs[j] = static_cast<uint8_t>(a | (b << 4));
    }
  }
}

template <class Block>
void pack_q5(Block& b, const uint8_t* levels) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t a = levels[j], c = levels[j + kQK / 2];
    b.qs[j] = static_cast<uint8_t>((a & 0xF) | ((c & 0xF) << 4));
    qh |= static_cast<uint32_t>((a >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((c >> 4) & 1) << (j + kQK / 2);
  }
  std::memcpy(b.qh, &qh, 4);
}

void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  uint8_t L[kQK];
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) L[j] = trunc_level(x[j] * id + 16.5f, 31);
    pack_q5(y[i], L);
  }
}

void quantize_q5_1(const float* x, BlockQ5_1* y, int64_t nb) {
  uint8_t L[kQK];
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float mn, mx;
    min_max(x, kQK, mn, mx);
    const float d = (mx - mn) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(mn);
    // ggml casts to uint8_t without a clamp here; levels cannot exceed 31 for finite input.
    for (int j = 0; j < kQK; ++j) L[j] = static_cast<uint8_t>(static_cast<int>((x[j] - mn) * id + 0.5f));
    pack_q5(y[i], L);
  }
}

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

}  // namespace

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = static_cast<int64_t>(row_bytes(t, n) / dtype_info(t).block_bytes);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::F16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_fp16(src[i]);
      return;
    }
    case DType::BF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_bf16(src[i]);
      return;
    }
    case DType::Q4_0: return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case DType::Q4_1: return quantize_q4_1(src, static_cast<BlockQ4_1*>(dst), nb);
    case DType::Q5_0: return quantize_q5_0(src, static_cast<BlockQ5_0*>(dst), nb);
    case DType::Q5_1: return quantize_q5_1(src, static_cast<BlockQ5_1*>(dst), nb);
    case DType::Q8_0: return quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case DType::Q4_K: return quantize_row_q4_k(src, dst, n);
    case DType::Q5_K: return quantize_row_q5_k(src, dst, n);
    case DType::Q6_K: return quantize_row_q6_k(src, dst, n);
    default:
      throw Error("quantize_row: cannot write tensors of type " + std::string(dtype_name(t)) +
                  " (expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k)");
  }
}

}  // namespace slm
