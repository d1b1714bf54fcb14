#include "core/ops_backward.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/cpu.h"
#include "core/error.h"
#include "core/gemm.h"
#include "core/ops.h"

namespace slm {

void rmsnorm_inv_rms(const float* x, int64_t n, int64_t dim, float eps, float* r) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float ss = 0.0f;
    for (int64_t j = 0; j < dim; ++j) ss += xi[j] * xi[j];
    r[i] = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
  }
}

void rmsnorm_backward_input(const float* x, const float* r, const float* w, const float* dy,
                            int64_t n, int64_t dim, float* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    const float* dyi = dy + i * dim;
    float* dxi = dx + i * dim;
    float dot = 0.0f;
    for (int64_t j = 0; j < dim; ++j) dot += dyi[j] * w[j] * xi[j];
    const float ri = r[i];
    const float c = dot * ri * ri * ri / static_cast<float>(dim);
    for (int64_t j = 0; j < dim; ++j) dxi[j] += ri * dyi[j] * w[j] - xi[j] * c;
  }
}

void rmsnorm_backward_weight(const float* x, const float* r, const float* dy, int64_t n,
                             int64_t dim, float* dw) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    const float* dyi = dy + i * dim;
    const float ri = r[i];
    for (int64_t j = 0; j < dim; ++j) dw[j] += dyi[j] * xi[j] * ri;
  }
}

void silu_mul_backward(const float* g, const float* u, const float* dh, int64_t count, float* dg,
                       float* du) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (use_avx2()) return avx2::silu_mul_backward(g, u, dh, count, dg, du);
#endif
  for (int64_t i = 0; i < count; ++i) {
    const float s = 1.0f / (1.0f + std::exp(-g[i]));
    const float silu = g[i] * s;
    dg[i] = dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    du[i] = dh[i] * silu;
  }
}

void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWStep& s) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (use_avx2()) return avx2::adamw_update(p, g, m, v, n, s);
#endif
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= s.keep;
    m[i] = s.b1 * m[i] + (1.0f - s.b1) * g[i];
    v[i] = s.b2 * v[i] + (1.0f - s.b2) * g[i] * g[i];
    p[i] -= s.step_size * m[i] / (std::sqrt(v[i]) * s.inv_sqrt_bc2 + s.eps);
  }
}

double cross_entropy_rows(float* logits, const int32_t* targets, int64_t n, int64_t vocab,
                          float grad_scale) {
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    float* row = logits + i * vocab;
    const int32_t t = targets[i];
    if (t >= vocab)
      throw Error("cross_entropy: target " + std::to_string(t) + " >= vocabulary size " +
                  std::to_string(vocab));
    if (t < 0) {
      if (grad_scale != 0.0f)
        for (int64_t j = 0; j < vocab; ++j) row[j] = 0.0f;
      continue;
    }
    if (grad_scale != 0.0f) {
      // Training: the row becomes its gradient anyway, so the softmax (the SIMD one inference
      // uses) runs in place and gives the loss as -log p[target].
      const float logit_t = row[t];
      float mx = row[0];
      for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, row[j]);
      softmax(row, vocab);
      const float p_t = row[t];
      if (p_t > 1e-30f) {
        total -= std::log(static_cast<double>(p_t));
      } else {
        // The target's probability underflowed: log-sum-exp = mx - log(p of the max logit),
        // since that probability is exp(0) / sum.
        float p_max = row[0];
        for (int64_t j = 1; j < vocab; ++j) p_max = std::max(p_max, row[j]);
        total += static_cast<double>(mx) - std::log(static_cast<double>(p_max)) - logit_t;
      }
      for (int64_t j = 0; j < vocab; ++j) row[j] *= grad_scale;
      row[t] -= grad_scale;
      continue;
    }
    float mx = row[0];
    for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, row[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j] - mx));
    total += std::log(sum) + mx - row[t];
  }
  return total;
}

namespace {

// Copies x / T into out, softmaxes it there (the SIMD softmax inference uses) and returns the
// log-sum-exp of x / T: the row's largest entry has probability exp(0) / sum, so
// lse = max - log(that probability).
double softmax_scaled(const float* x, int64_t n, float inv_t, float* out) {
  float mx = x[0] * inv_t;
  for (int64_t j = 0; j < n; ++j) {
    out[j] = x[j] * inv_t;
    mx = std::max(mx, out[j]);
  }
  softmax(out, n);
  float p_max = out[0];
  for (int64_t j = 1; j < n; ++j) p_max = std::max(p_max, out[j]);
  return static_cast<double>(mx) - std::log(static_cast<double>(p_max));
}

}  // namespace

double distill_cross_entropy_row(float* logits, int32_t target, const float* teacher_logits, int64_t vocab,
                                 float weight, float temperature, float grad_scale, float* scratch, double* kl) {
  if (target >= vocab)
    throw Error("distillation: target " + std::to_string(target) + " >= vocabulary size " + std::to_string(vocab));
  if (!(weight >= 0.0f && weight <= 1.0f)) throw Error("distillation: the weight must be in [0, 1]");
  if (!(temperature > 0.0f)) throw Error("distillation: the temperature must be > 0");
  *kl = 0.0;
  if (target < 0) {
    if (grad_scale != 0.0f) std::fill(logits, logits + vocab, 0.0f);
    return 0.0;
  }
  const float inv_t = 1.0f / temperature;
  float* p_t = scratch;  // teacher at temperature T
  const double lse_teacher = softmax_scaled(teacher_logits, vocab, inv_t, p_t);
  // KL(p_T || q_T) = sum_j p_j (t_j - z_j) / T - lse(t / T) + lse(z / T).
  double cross = 0.0;
  for (int64_t j = 0; j < vocab; ++j)
    cross += static_cast<double>(p_t[j]) * static_cast<double>(teacher_logits[j] - logits[j]);
  const float z_target = logits[target];
  float* q_t = temperature != 1.0f ? scratch + vocab : logits;  // student at temperature T
  const double lse_zt = temperature != 1.0f ? softmax_scaled(logits, vocab, inv_t, q_t) : 0.0;
  // q in place of the logits (as cross_entropy_rows does); lse(z) from its largest entry.
  const double lse_z = softmax_scaled(logits, vocab, 1.0f, logits);
  *kl = std::max(0.0, cross * static_cast<double>(inv_t) - lse_teacher + (temperature != 1.0f ? lse_zt : lse_z));
  const double nll = lse_z - static_cast<double>(z_target);
  if (grad_scale != 0.0f) {
    const float hard = 1.0f - weight, soft = weight * temperature;
    for (int64_t j = 0; j < vocab; ++j) logits[j] = grad_scale * (hard * logits[j] + soft * (q_t[j] - p_t[j]));
    logits[target] -= grad_scale * hard;
  }
  return nll;
}

void causal_attention_forward(const float* q, const float* k, const float* v, int64_t t,
                              int64_t head_dim, int64_t q_stride, int64_t kv_stride, float scale,
                              float* probs, float* out) {
  // S = scale * Q K^T over the full square; the masked upper triangle is then zeroed (computing
  // it costs less than t separate row products would).
  gemm_serial(false, true, t, t, head_dim, q, q_stride, k, kv_stride, 0.0f, probs, t, scale);
  for (int64_t i = 0; i < t; ++i) {
    float* row = probs + i * t;
    softmax(row, i + 1);
    for (int64_t j = i + 1; j < t; ++j) row[j] = 0.0f;
  }
  gemm_serial(false, false, t, head_dim, t, probs, t, v, kv_stride, 0.0f, out, q_stride);
}

void causal_attention_backward(const float* q, const float* k, const float* v, const float* probs,
                               const float* dout, int64_t t, int64_t head_dim, int64_t q_stride,
                               int64_t kv_stride, float scale, float* dq, float* dk, float* dv,
                               float* scratch) {
  // dV += P^T dO
  gemm_serial(true, false, t, head_dim, t, probs, t, dout, q_stride, 1.0f, dv, kv_stride);
  // dP = dO V^T, then dS in place
  gemm_serial(false, true, t, t, head_dim, dout, q_stride, v, kv_stride, 0.0f, scratch, t);
  for (int64_t i = 0; i < t; ++i) {
    const float* p = probs + i * t;
    float* ds = scratch + i * t;
    float dot = 0.0f;
    for (int64_t j = 0; j <= i; ++j) dot += p[j] * ds[j];
    for (int64_t j = 0; j <= i; ++j) ds[j] = p[j] * (ds[j] - dot);
    for (int64_t j = i + 1; j < t; ++j) ds[j] = 0.0f;
  }
  gemm_serial(false, false, t, head_dim, t, scratch, t, k, kv_stride, 0.0f, dq, q_stride, scale);
  gemm_serial(true, false, t, head_dim, t, scratch, t, q, q_stride, 1.0f, dk, kv_stride, scale);
}

}  // namespace slm
