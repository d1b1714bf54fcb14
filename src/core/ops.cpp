// Scalar layer math (core/ops.h) and the run-time choice of the AVX2 kernels.
#include "core/ops.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/cpu.h"
#include "core/error.h"
#include "core/fp16.h"

namespace slm {

namespace scalar {

void rmsnorm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float* oi = out + i * dim;
    // Sum in double like ggml's rms_norm: dims reach thousands and the mean sets every value's scale.
    double ss = 0;
    for (int64_t j = 0; j < dim; ++j) ss += static_cast<double>(xi[j]) * xi[j];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    for (int64_t j = 0; j < dim; ++j) oi[j] = xi[j] * r * w[j];
  }
}

void add_inplace(float* y, const float* x, int64_t count) {
  for (int64_t j = 0; j < count; ++j) y[j] += x[j];
}

void silu_mul(float* gate, const float* up, int64_t count) {
  for (int64_t j = 0; j < count; ++j) {
    const float g = gate[j];
    gate[j] = g / (1.0f + std::exp(-g)) * up[j];
  }
}

}  // namespace scalar

void rmsnorm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (use_avx2()) return avx2::rmsnorm(x, w, n, dim, eps, out);
#endif
  scalar::rmsnorm(x, w, n, dim, eps, out);
}

void add_bias(float* y, const float* b, int64_t n, int64_t dim) {
  for (int64_t i = 0; i < n; ++i) {
    float* yi = y + i * dim;
    for (int64_t j = 0; j < dim; ++j) yi[j] += b[j];
  }
}

void add_inplace(float* y, const float* x, int64_t count) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (use_avx2()) return avx2::add_inplace(y, x, count);
#endif
  scalar::add_inplace(y, x, count);
}

void silu_mul(float* gate, const float* up, int64_t count) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (use_avx2()) return avx2::silu_mul(gate, up, count);
#endif
  scalar::silu_mul(gate, up, count);
}

namespace scalar {

void softmax(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t j = 1; j < n; ++j) mx = std::max(mx, x[j]);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    x[j] = std::exp(x[j] - mx);
    sum += x[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) x[j] *= inv;
}

}  // namespace scalar

void softmax(float* x, int64_t n) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (use_avx2()) return avx2::softmax(x, n);
#endif
  scalar::softmax(x, n);
}

void rope_inv_freq(int64_t rot_dim, float base, float* inv_freq) {
  for (int64_t i = 0; i < rot_dim / 2; ++i)
    inv_freq[i] = static_cast<float>(std::pow(static_cast<double>(base),
                                              -2.0 * static_cast<double>(i) / static_cast<double>(rot_dim)));
}

void rope_cos_sin(int64_t pos, const float* inv_freq, int64_t rot_dim, float* cos_sin) {
  for (int64_t i = 0; i < rot_dim / 2; ++i) {
    // Angles reach ctx_len radians: form them in double so that far positions keep their phase.
    const double theta = static_cast<double>(pos) * static_cast<double>(inv_freq[i]);
    cos_sin[2 * i] = static_cast<float>(std::cos(theta));
    cos_sin[2 * i + 1] = static_cast<float>(std::sin(theta));
  }
}

void rope(float* x, int64_t n_heads, int64_t head_dim, const float* cos_sin, bool neox) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      float* a = neox ? xh + i : xh + 2 * i;
      float* b = neox ? xh + i + half : xh + 2 * i + 1;
      const float x0 = *a, x1 = *b;
      *a = x0 * c - x1 * s;
      *b = x0 * s + x1 * c;
    }
  }
}

namespace {

inline float kv_at(const void* base, DType type, int64_t index) {
  if (type == DType::F32) return static_cast<const float*>(base)[index];
  return fp16_to_fp32(static_cast<const uint16_t*>(base)[index]);
}

void check_kv_type(DType type) {
  if (type != DType::F32 && type != DType::F16)
    throw Error("attention: KV type must be f32 or f16, got " + std::string(dtype_name(type)));
}

}  // namespace

namespace scalar {

void attention_scores(const float* q, const void* k, int64_t stride, DType kv_type, int64_t n_ctx,
                      int64_t head_dim, float scale, float* scores) {
  for (int64_t t = 0; t < n_ctx; ++t) {
    float acc = 0;
    for (int64_t d = 0; d < head_dim; ++d) acc += q[d] * kv_at(k, kv_type, t * stride + d);
    scores[t] = acc * scale;
  }
}

void attention_mix(const float* p, const void* v, int64_t stride, DType kv_type, int64_t n_ctx,
                   int64_t head_dim, float* out) {
  for (int64_t t = 0; t < n_ctx; ++t) {
    const float pt = p[t];
    for (int64_t d = 0; d < head_dim; ++d) out[d] += pt * kv_at(v, kv_type, t * stride + d);
  }
}

}  // namespace scalar

void attention_scores(const float* q, const void* k, int64_t stride, DType kv_type, int64_t n_ctx,
                      int64_t head_dim, float scale, float* scores) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (use_avx2()) return avx2::attention_scores(q, k, stride, kv_type, n_ctx, head_dim, scale, scores);
#endif
  scalar::attention_scores(q, k, stride, kv_type, n_ctx, head_dim, scale, scores);
}

void attention_mix(const float* p, const void* v, int64_t stride, DType kv_type, int64_t n_ctx,
                   int64_t head_dim, float* out) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (use_avx2()) return avx2::attention_mix(p, v, stride, kv_type, n_ctx, head_dim, out);
#endif
  scalar::attention_mix(p, v, stride, kv_type, n_ctx, head_dim, out);
}

void attention_head(const float* q, const void* k, const void* v, int64_t stride, DType kv_type,
                    int64_t n_ctx, int64_t head_dim, float scale, float* scores, float* out) {
  check_kv_type(kv_type);
  attention_scores(q, k, stride, kv_type, n_ctx, head_dim, scale, scores);
  softmax(scores, n_ctx);
  std::fill(out, out + head_dim, 0.0f);
  attention_mix(scores, v, stride, kv_type, n_ctx, head_dim, out);
}

void store_row(const float* src, void* dst, DType type, int64_t n) {
  if (type == DType::F32) {
    std::copy(src, src + n, static_cast<float*>(dst));
  } else if (type == DType::F16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t j = 0; j < n; ++j) d[j] = fp32_to_fp16(src[j]);
  } else {
    check_kv_type(type);
  }
}

}  // namespace slm
