// The transformer's layer math, written once: plain functions over row-major float buffers that
// inference (model/transformer.cpp) and training compose. Shapes are given per argument:
// n = positions (rows), dim = values per row. Functions that have an AVX2 version pick it at run
// time (core/cpu.h); the scalar code is the reference the tests hold the AVX2 code to.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace slm {

// out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * w[:]
// x, out: [n, dim] (may alias); w: [dim].
void rmsnorm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out);

// y[i, :] += b[:] for i < n. y: [n, dim]; b: [dim]. (Projection biases.)
void add_bias(float* y, const float* b, int64_t n, int64_t dim);

// y[j] += x[j] for j < count. (Residual connections; count = n * dim.)
void add_inplace(float* y, const float* x, int64_t count);

// gate[j] = silu(gate[j]) * up[j] = gate / (1 + exp(-gate)) * up, for j < count (SwiGLU).
void silu_mul(float* gate, const float* up, int64_t count);

// In-place softmax of one row: x[j] = exp(x[j] - max) / sum. x: [n]; n >= 1.
void softmax(float* x, int64_t n);

// Rotary position embedding.
// rope_inv_freq: inv_freq[i] = base^(-2i / rot_dim) for i < rot_dim / 2.
void rope_inv_freq(int64_t rot_dim, float base, float* inv_freq);
// cos_sin[2i] = cos(pos * inv_freq[i]), cos_sin[2i+1] = sin(...), i < rot_dim / 2: the angles of
// one position, computed once and shared by all heads and layers. cos_sin: [rot_dim].
void rope_cos_sin(int64_t pos, const float* inv_freq, int64_t rot_dim, float* cos_sin);
// Rotates each of n_heads heads of x ([n_heads, head_dim], one position) by the angles in
// cos_sin ([head_dim], from rope_cos_sin with rot_dim = head_dim).
//   neox = false: pairs (x[2i], x[2i+1])            (ggml "normal" rope, llama in GGUF)
//   neox = true:  pairs (x[i], x[i + head_dim / 2]) (NeoX style: qwen2)
// Each pair (a, b) becomes (a cos - b sin, a sin + b cos).
void rope(float* x, int64_t n_heads, int64_t head_dim, const float* cos_sin, bool neox);

// Attention of one query head over the first n_ctx cached positions:
//   s[t] = scale * dot(q, K[t]);  p = softmax(s);  out = sum_t p[t] * V[t]
// q: [head_dim]; K, V: row t starts at element t * stride of k / v (element type kv_type:
// F32 or F16, converted on the fly); scores: scratch [n_ctx]; out: [head_dim].
// Causality is the caller's choice of n_ctx (position p sees n_ctx = p + 1).
void attention_head(const float* q, const void* k, const void* v, int64_t stride, DType kv_type,
                    int64_t n_ctx, int64_t head_dim, float scale, float* scores, float* out);

// Building blocks of attention_head, exposed for tests: dot products of q with n rows of K, and
// out += sum_t p[t] * V[t]. Same layouts as above.
void attention_scores(const float* q, const void* k, int64_t stride, DType kv_type, int64_t n_ctx,
                      int64_t head_dim, float scale, float* scores);
void attention_mix(const float* p, const void* v, int64_t stride, DType kv_type, int64_t n_ctx,
                   int64_t head_dim, float* out);

// Stores a float row in a KV-cache row of type F32 or F16 (round to nearest even). src: [n].
void store_row(const float* src, void* dst, DType type, int64_t n);

// Scalar references (always portable code), for the tests of the AVX2 versions.
namespace scalar {
void rmsnorm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out);
void add_inplace(float* y, const float* x, int64_t count);
void silu_mul(float* gate, const float* up, int64_t count);
void softmax(float* x, int64_t n);
void attention_scores(const float* q, const void* k, int64_t stride, DType kv_type, int64_t n_ctx,
                      int64_t head_dim, float scale, float* scores);
void attention_mix(const float* p, const void* v, int64_t stride, DType kv_type, int64_t n_ctx,
                   int64_t head_dim, float* out);
}  // namespace scalar

#ifdef SLM_HAVE_AVX2_KERNELS
namespace avx2 {
// rmsnorm: the double sum of squares in another order (may differ from scalar in the last bit).
void rmsnorm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out);
void add_inplace(float* y, const float* x, int64_t count);    // bit-identical to scalar
void silu_mul(float* gate, const float* up, int64_t count);   // exp as softmax's (~2 ulp)
void softmax(float* x, int64_t n);  // exp by a polynomial of ~2 ulp
void attention_scores(const float* q, const void* k, int64_t stride, DType kv_type, int64_t n_ctx,
                      int64_t head_dim, float scale, float* scores);
void attention_mix(const float* p, const void* v, int64_t stride, DType kv_type, int64_t n_ctx,
                   int64_t head_dim, float* out);
}  // namespace avx2
#endif

}  // namespace slm
