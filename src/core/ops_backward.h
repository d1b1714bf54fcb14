// Backward passes of the layer math in core/ops.h, plus the two pieces only training needs in
// whole-sequence form: causal attention with its probabilities kept, and softmax cross-entropy.
// Training composes these with core/gemm.h; the forward math is the same core/ops.h functions
// inference uses (rmsnorm, rope, silu_mul, softmax). Conventions: row-major float buffers,
// n = rows (positions), dim = values per row; "accumulate" outputs are added to, never cleared.
//
// RoPE needs no function here: a rotation's backward is the rotation by the opposite angle, i.e.
// rope() with a table whose sines are negated.
#pragma once

#include <cstdint>

namespace slm {

// r[i] = 1 / sqrt(mean(x[i, :]^2) + eps): the factor rmsnorm multiplied row i by. x: [n, dim].
void rmsnorm_inv_rms(const float* x, int64_t n, int64_t dim, float eps, float* r);

// y = x * r * w  =>  dx[i] += r_i * (dy_i * w) - x_i * r_i^3 / dim * sum_j(dy_ij * w_j * x_ij).
// x, dy, dx: [n, dim]; r: [n] from rmsnorm_inv_rms; w: [dim].
void rmsnorm_backward_input(const float* x, const float* r, const float* w, const float* dy,
                            int64_t n, int64_t dim, float* dx);

// dw[j] += sum_i dy[i, j] * x[i, j] * r[i] over the n rows given, every column, rows in order.
// Threads give each a fixed share of the rows its own dw and add those in a fixed order (see
// TrainModel), so the result does not depend on the thread count.
void rmsnorm_backward_weight(const float* x, const float* r, const float* dy, int64_t n,
                             int64_t dim, float* dw);

// h = silu(g) * u  =>  dg = dh * u * s * (1 + g * (1 - s)),  du = dh * g * s,  s = sigmoid(g).
// g, u: pre-activation values; all buffers [count]; dg, du overwritten (may alias nothing).
void silu_mul_backward(const float* g, const float* u, const float* dh, int64_t count, float* dg,
                       float* du);

// One AdamW step (torch.optim.AdamW's rule, bias corrections folded into step_size and
// inv_sqrt_bc2) over n parameters: p *= keep (1 - lr * weight_decay, or 1 without decay);
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps).
struct AdamWStep {
  float keep, b1, b2, step_size, inv_sqrt_bc2, eps;
};
void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWStep& s);

// Softmax cross-entropy of n rows of logits [n, vocab] against targets [n]: returns the sum of
// -log softmax(row)[target] over the rows (double accumulation), and, when grad_scale != 0,
// overwrites each row with grad_scale * (softmax(row) - onehot(target)). Rows whose target is
// negative are ignored (no loss, zero gradient). Throws slm::Error on a target >= vocab.
double cross_entropy_rows(float* logits, const int32_t* targets, int64_t n, int64_t vocab,
                          float grad_scale);

// Logit-level knowledge distillation of one row (Hinton et al. 2015): with q = softmax(z),
// q_T = softmax(z / T) and p_T = softmax(teacher / T), the objective is
//   (1 - w) * (-log q[target])  +  w * T^2 * KL(p_T || q_T)
// whose gradient in z is (1 - w) (q - onehot(target)) + w T (q_T - p_T) (the T^2 keeps the soft
// part's gradient on the scale of the hard part's as T grows). Returns -log q[target] (the
// cross-entropy that validation measures) and stores KL(p_T || q_T) in *kl. `logits` is
// overwritten: with grad_scale * that gradient, or with q when grad_scale == 0. A negative target:
// no loss, zero gradient, *kl = 0. scratch: [2 * vocab] floats. Throws slm::Error on a target >= vocab, w outside [0, 1] or
// T <= 0.
double distill_cross_entropy_row(float* logits, int32_t target, const float* teacher_logits, int64_t vocab,
                                 float weight, float temperature, float grad_scale, float* scratch, double* kl);

// Causal self-attention of one head over a whole sequence of t positions:
//   S = scale * Q K^T (masked to j <= i),  P = softmax_rows(S),  O = P V
// q: [t, head_dim] with row stride q_stride; k, v: row stride kv_stride; probs: [t, t] out
// (upper triangle zero); out: [t, head_dim] with row stride q_stride.
void causal_attention_forward(const float* q, const float* k, const float* v, int64_t t,
                              int64_t head_dim, int64_t q_stride, int64_t kv_stride, float scale,
                              float* probs, float* out);

// Its backward, given P from the forward and dO:
//   dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),  dQ = scale dS K,  dK += scale dS^T Q,
//   dV += P^T dO.
// dq is overwritten; dk and dv accumulate (query heads sharing a key/value head under GQA add
// into the same rows). scratch: [t, t].
void causal_attention_backward(const float* q, const float* k, const float* v, const float* probs,
                               const float* dout, int64_t t, int64_t head_dim, int64_t q_stride,
                               int64_t kv_stride, float scale, float* dq, float* dk, float* dv,
                               float* scratch);

#ifdef SLM_HAVE_AVX2_KERNELS
namespace avx2 {
void silu_mul_backward(const float* g, const float* u, const float* dh, int64_t count, float* dg,
                       float* du);  // exp as softmax's (~2 ulp)
void adamw_update(float* p, const float* g, float* m, float* v, int64_t n,
                  const AdamWStep& s);  // may differ in the last bit (FMA)
}  // namespace avx2
#endif

}  // namespace slm
