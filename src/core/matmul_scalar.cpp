// Portable row kernels and activation quantization: the reference the AVX2 kernels are tested
// against, and the path on CPUs without AVX2. Quantized weights go through decode_block (the same
// decoding as dequantize_row), one weight row at a time into per-thread scratch, then integer dot
// products with every activation row.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "core/matmul_kernels.h"
#include "core/quant.h"
#include "core/quant_kernels.h"

namespace slm {
namespace {

// Float dot product with 8 partial sums: each sum has n/8 terms, so the rounding error stays
// below about (n/8 + 3) * 2^-24 of sum |a*b|, as in the 8-lane AVX2 kernel.
float dot_f32(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  for (; i < n; ++i) s[0] += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// Saturates to the F16 range, NaN passing through, in the AVX2 version's order of min / max.
float clamp_f16(float v) {
  v = -65504.0f > v ? -65504.0f : v;
  return 65504.0f < v ? 65504.0f : v;
}

void rows_float(const MatmulTask& t, int64_t r0, int64_t r1) {
  const int64_t cols = t.w.cols;
  const unsigned char* base = static_cast<const unsigned char*>(t.w.data);
  const size_t stride = t.w.row_stride();
  thread_local std::vector<float> row, x_half;
  row.resize(static_cast<size_t>(cols));
  const void* x = t.x;
  size_t x_stride = t.x_stride;
  if (t.w.type == DType::F16) {  // halves (see ActKind::F16)
    x_half.resize(static_cast<size_t>(t.m * cols));
    for (int64_t i = 0; i < t.m; ++i) {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(static_cast<const unsigned char*>(t.x) + i * t.x_stride);
      for (int64_t c = 0; c < cols; ++c) x_half[i * cols + c] = fp16_to_fp32(h[c]);
    }
    x = x_half.data();
    x_stride = static_cast<size_t>(cols) * sizeof(float);
  }
  for (int64_t r = r0; r < r1; ++r) {
    const void* src = base + static_cast<size_t>(r) * stride;
    const float* wr = static_cast<const float*>(src);
    if (t.w.type != DType::F32) {
      dequantize_row(t.w.type, src, row.data(), cols);
      wr = row.data();
    }
    for (int64_t i = 0; i < t.m; ++i) {
      const float* xi = reinterpret_cast<const float*>(static_cast<const unsigned char*>(x) + i * x_stride);
      t.y[i * t.w.rows + r] = dot_f32(wr, xi, cols);
    }
  }
}

int32_t idot(const int8_t* a, const int8_t* b, int n) {
  int32_t s = 0;
  for (int k = 0; k < n; ++k) s += static_cast<int32_t>(a[k]) * b[k];
  return s;
}

// value = sum over groups g of act_d * (scale[g] * sum(q * xq) + bias[g] * sum(xq)).
float dot_legacy(const DecodedBlock* wb, const ActQ8* xb, int64_t nb) {
  float s = 0;
  for (int64_t b = 0; b < nb; ++b) {
    float v = wb[b].scale[0] * static_cast<float>(idot(wb[b].q, xb[b].qs, 32));
    if (wb[b].has_bias) v += wb[b].bias[0] * static_cast<float>(xb[b].sum);
    s += xb[b].d * v;
  }
  return s;
}

float dot_k(const DecodedBlock* wb, const ActQ8K* xb, int64_t nb) {
  float s = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const DecodedBlock& w = wb[b];
    float v = 0;
    for (int g = 0; g < w.n / w.group; ++g) {
      v += w.scale[g] * static_cast<float>(idot(w.q + g * w.group, xb[b].qs + g * w.group, w.group));
      if (w.has_bias) {
        int32_t xs = 0;
        for (int k = g * w.group / 16; k < (g + 1) * w.group / 16; ++k) xs += xb[b].bsums[k];
        v += w.bias[g] * static_cast<float>(xs);
      }
    }
    s += xb[b].d * v;
  }
  return s;
}

void rows_quant(const MatmulTask& t, int64_t r0, int64_t r1) {
  const DTypeInfo& info = dtype_info(t.w.type);
  const int64_t nb = t.w.cols / info.block_size;
  const unsigned char* base = static_cast<const unsigned char*>(t.w.data);
  const size_t stride = t.w.row_stride();
  const bool k_quant = activation_kind(t.w.type) == ActKind::Q8K;
  thread_local std::vector<DecodedBlock> blocks;
  blocks.resize(static_cast<size_t>(nb));
  for (int64_t r = r0; r < r1; ++r) {
    const void* src = base + static_cast<size_t>(r) * stride;
    for (int64_t b = 0; b < nb; ++b) decode_block(t.w.type, src, b, blocks[b]);
    for (int64_t i = 0; i < t.m; ++i) {
      const void* xi = static_cast<const unsigned char*>(t.x) + i * t.x_stride;
      t.y[i * t.w.rows + r] = k_quant ? dot_k(blocks.data(), static_cast<const ActQ8K*>(xi), nb)
                                      : dot_legacy(blocks.data(), static_cast<const ActQ8*>(xi), nb);
    }
  }
}

}  // namespace

void quantize_act_scalar(ActKind k, const float* x, int64_t n, void* dst) {
  if (k == ActKind::F16) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(clamp_f16(x[i]));
    return;
  }
  const int bs = k == ActKind::Q8 ? 32 : 256;
  for (int64_t b = 0; b < n / bs; ++b) {
    const float* xb = x + b * bs;
    float amax = 0;
    for (int j = 0; j < bs; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int8_t* qs;
    if (k == ActKind::Q8) {
      ActQ8& a = static_cast<ActQ8*>(dst)[b];
      a.d = d;
      qs = a.qs;
    } else {
      ActQ8K& a = static_cast<ActQ8K*>(dst)[b];
      a.d = d;
      qs = a.qs;
    }
    for (int j = 0; j < bs; ++j) qs[j] = static_cast<int8_t>(__builtin_nearbyintf(xb[j] * id));
    if (k == ActKind::Q8) {
      ActQ8& a = static_cast<ActQ8*>(dst)[b];
      int32_t s = 0;
      for (int j = 0; j < 32; ++j) s += qs[j];
      a.sum = s;
      a.s = d * static_cast<float>(s);
    } else {
      ActQ8K& a = static_cast<ActQ8K*>(dst)[b];
      for (int g = 0; g < 16; ++g) {
        int s = 0;
        for (int j = 0; j < 16; ++j) s += qs[16 * g + j];
        a.bsums[g] = static_cast<int16_t>(s);
      }
    }
  }
}

void matmul_rows_scalar(const MatmulTask& t, int64_t r0, int64_t r1) {
  const ActKind k = activation_kind(t.w.type);
  if (k == ActKind::Float || k == ActKind::F16) return rows_float(t, r0, r1);
  rows_quant(t, r0, r1);
}

}  // namespace slm
