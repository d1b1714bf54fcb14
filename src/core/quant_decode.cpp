// Block decoding for every quantized type slm multiplies with, and dequantize_row on top of it.
// Layouts follow ggml (ggml-common.h / ggml-quants.c), the definition GGUF files use:
//   Q4_0/Q4_1: qs[j] low nibble = value j, high nibble = value j + 16.
//   Q5_0/Q5_1: as Q4, plus bit j of the little-endian uint32 qh = bit 4 of value j (j < 32).
//   Q4_K: 8 sub-blocks of 32 with 6-bit scale/min packed in 12 bytes (see k_scale_min); each run
//         of 64 values takes 32 bytes of qs: low nibbles = first 32, high nibbles = next 32.
//   Q5_K: as Q4_K, plus qh[l] bit 2k / 2k+1 = bit 4 of value 64k + l / 64k + 32 + l.
//   Q6_K: two halves of 128; in half h, with ql = ql + 64h, qh = qh + 32h, for l < 32:
//         value l      = ql[l] low  | (qh[l] bits 0-1) << 4,  value l + 32 = ql[l+32] low  | bits 2-3,
//         value l + 64 = ql[l] high | (qh[l] bits 4-5) << 4,  value l + 96 = ql[l+32] high | bits 6-7;
//         minus 32, times d * scales[value / 16].
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "core/quant_kernels.h"

namespace slm {
namespace {

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

template <class B>
const B& block_at(const void* row, int64_t i) {
  return static_cast<const B*>(row)[i];
}

}  // namespace

int nearest_int(float v) { return static_cast<int>(__builtin_nearbyintf(v)); }

void decode_block(DType t, const void* row, int64_t index, DecodedBlock& o) {
  switch (t) {
    case DType::Q4_0:
    case DType::Q4_1: {
      const bool q41 = t == DType::Q4_1;
      const uint8_t* qs = q41 ? block_at<BlockQ4_1>(row, index).qs : block_at<BlockQ4_0>(row, index).qs;
      const uint16_t d = q41 ? block_at<BlockQ4_1>(row, index).d : block_at<BlockQ4_0>(row, index).d;
      o.n = o.group = kQK;
      o.has_bias = q41;
      o.scale[0] = fp16_to_fp32(d);
      o.bias[0] = q41 ? fp16_to_fp32(block_at<BlockQ4_1>(row, index).m) : 0.0f;
      const int off = q41 ? 0 : 8;
      for (int j = 0; j < kQK / 2; ++j) {
        o.q[j] = static_cast<int8_t>((qs[j] & 0xF) - off);
        o.q[j + kQK / 2] = static_cast<int8_t>((qs[j] >> 4) - off);
      }
      return;
    }
    case DType::Q5_0:
    case DType::Q5_1: {
      const bool q51 = t == DType::Q5_1;
      const uint8_t* qs = q51 ? block_at<BlockQ5_1>(row, index).qs : block_at<BlockQ5_0>(row, index).qs;
      const uint32_t qh = load_u32(q51 ? block_at<BlockQ5_1>(row, index).qh : block_at<BlockQ5_0>(row, index).qh);
      const uint16_t d = q51 ? block_at<BlockQ5_1>(row, index).d : block_at<BlockQ5_0>(row, index).d;
      o.n = o.group = kQK;
      o.has_bias = q51;
      o.scale[0] = fp16_to_fp32(d);
      o.bias[0] = q51 ? fp16_to_fp32(block_at<BlockQ5_1>(row, index).m) : 0.0f;
      const int off = q51 ? 0 : 16;
      for (int j = 0; j < kQK / 2; ++j) {
        const int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
        o.q[j] = static_cast<int8_t>(((qs[j] & 0xF) | h0) - off);
        o.q[j + kQK / 2] = static_cast<int8_t>(((qs[j] >> 4) | h1) - off);
      }
      return;
    }
    case DType::Q8_0: {
      const BlockQ8_0& b = block_at<BlockQ8_0>(row, index);
      o.n = o.group = kQK;
      o.has_bias = false;
      o.scale[0] = fp16_to_fp32(b.d);
      o.bias[0] = 0.0f;
      std::memcpy(o.q, b.qs, kQK);
      return;
    }
    case DType::Q4_K:
    case DType::Q5_K: {
      const bool q5 = t == DType::Q5_K;
      const uint16_t dh = q5 ? block_at<BlockQ5_K>(row, index).d : block_at<BlockQ4_K>(row, index).d;
      const uint16_t mh = q5 ? block_at<BlockQ5_K>(row, index).dmin : block_at<BlockQ4_K>(row, index).dmin;
      const uint8_t* sc = q5 ? block_at<BlockQ5_K>(row, index).scales : block_at<BlockQ4_K>(row, index).scales;
      const uint8_t* qs = q5 ? block_at<BlockQ5_K>(row, index).qs : block_at<BlockQ4_K>(row, index).qs;
      const uint8_t* qh = q5 ? block_at<BlockQ5_K>(row, index).qh : nullptr;
      const float d = fp16_to_fp32(dh), dmin = fp16_to_fp32(mh);
      o.n = kQKK;
      o.group = 32;
      o.has_bias = true;
      for (int j = 0; j < 8; ++j) {
        int s, m;
        k_scale_min(j, sc, s, m);
        o.scale[j] = d * static_cast<float>(s);
        o.bias[j] = -(dmin * static_cast<float>(m));  // ggml: d1 * q - m1
      }
      for (int k = 0; k < 4; ++k) {  // runs of 64 values over 32 bytes of qs
        for (int l = 0; l < 32; ++l) {
          int lo = qs[32 * k + l] & 0xF, hi = qs[32 * k + l] >> 4;
          if (qh) {
            lo |= ((qh[l] >> (2 * k)) & 1) << 4;
            hi |= ((qh[l] >> (2 * k + 1)) & 1) << 4;
          }
          o.q[64 * k + l] = static_cast<int8_t>(lo);
          o.q[64 * k + 32 + l] = static_cast<int8_t>(hi);
        }
      }
      return;
    }
    case DType::Q6_K: {
      const BlockQ6_K& b = block_at<BlockQ6_K>(row, index);
      const float d = fp16_to_fp32(b.d);
      o.n = kQKK;
      o.group = 16;
      o.has_bias = false;
      for (int j = 0; j < 16; ++j) {
        o.scale[j] = d * static_cast<float>(b.scales[j]);
        o.bias[j] = 0.0f;
      }
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = b.ql + 64 * h;
        const uint8_t* qh = b.qh + 32 * h;
        int8_t* q = o.q + 128 * h;
        for (int l = 0; l < 32; ++l) {
          q[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
          q[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
          q[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          q[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
      }
      return;
    }
    default:
      throw Error("decode_block: tensor type " + std::string(dtype_name(t)) + " is not supported");
  }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const DTypeInfo& info = dtype_info(t);
  if (!info.matmul)
    throw Error("dequantize_row: tensor type " + std::string(info.name) + " is not supported");
  (void)row_bytes(t, n);  // validates that n is a whole number of blocks
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
      return;
    }
    default:
      break;
  }
  DecodedBlock b;
  const int64_t nb = n / info.block_size;
  for (int64_t i = 0; i < nb; ++i) {
    decode_block(t, src, i, b);
    float* y = dst + i * b.n;
    for (int j = 0; j < b.n; ++j) {
      const int g = j / b.group;
      const float v = b.scale[g] * static_cast<float>(b.q[j]);
      y[j] = b.has_bias ? v + b.bias[g] : v;
    }
  }
}

}  // namespace slm
