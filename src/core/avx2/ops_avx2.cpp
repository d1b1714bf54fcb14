// AVX2/FMA/F16C versions of the attention inner loops (core/ops.h): 8 lanes of head_dim at a time,
// F16 cache rows widened with F16C. Compiled with -mavx2 -mfma -mf16c; called only when
// use_avx2() holds. The scalar versions in core/ops.cpp are their reference.
#include <immintrin.h>

#include "core/fp16.h"
#include "core/ops.h"

namespace slm::avx2 {
namespace {

// The element type is a template parameter so that the inner loops carry no branch.
template <bool F16>
inline __m256 load8(const void* base, int64_t index) {
  if constexpr (!F16) return _mm256_loadu_ps(static_cast<const float*>(base) + index);
  return _mm256_cvtph_ps(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + index)));
}

template <bool F16>
inline float load1(const void* base, int64_t index) {
  if constexpr (!F16) return static_cast<const float*>(base)[index];
  return fp16_to_fp32(static_cast<const uint16_t*>(base)[index]);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <bool F16>
void scores_impl(const float* q, const void* k, int64_t stride, int64_t n_ctx, int64_t head_dim,
                 float scale, float* scores) {
  const int64_t d8 = head_dim & ~int64_t{7};
  for (int64_t t = 0; t < n_ctx; ++t) {
    const int64_t row = t * stride;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t d = 0;
    for (; d + 16 <= d8; d += 16) {
      acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8<F16>(k, row + d), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), load8<F16>(k, row + d + 8), acc1);
    }
    for (; d < d8; d += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8<F16>(k, row + d), acc0);
    float acc = hsum(_mm256_add_ps(acc0, acc1));
    for (; d < head_dim; ++d) acc += q[d] * load1<F16>(k, row + d);
    scores[t] = acc * scale;
  }
}

template <bool F16>
void mix_impl(const float* p, const void* v, int64_t stride, int64_t n_ctx, int64_t head_dim,
              float* out) {
  const int64_t d8 = head_dim & ~int64_t{7};
  // Columns in blocks of up to 32 (4 registers) held across all positions: one pass over V
  // per block instead of a load/store of out per position.
  int64_t d = 0;
  for (; d + 32 <= d8; d += 32) {
    __m256 o0 = _mm256_loadu_ps(out + d), o1 = _mm256_loadu_ps(out + d + 8);
    __m256 o2 = _mm256_loadu_ps(out + d + 16), o3 = _mm256_loadu_ps(out + d + 24);
    for (int64_t t = 0; t < n_ctx; ++t) {
      const __m256 pt = _mm256_set1_ps(p[t]);
      const int64_t row = t * stride + d;
      o0 = _mm256_fmadd_ps(pt, load8<F16>(v, row), o0);
      o1 = _mm256_fmadd_ps(pt, load8<F16>(v, row + 8), o1);
      o2 = _mm256_fmadd_ps(pt, load8<F16>(v, row + 16), o2);
      o3 = _mm256_fmadd_ps(pt, load8<F16>(v, row + 24), o3);
    }
    _mm256_storeu_ps(out + d, o0);
    _mm256_storeu_ps(out + d + 8, o1);
    _mm256_storeu_ps(out + d + 16, o2);
    _mm256_storeu_ps(out + d + 24, o3);
  }
  for (; d < d8; d += 8) {
    __m256 o0 = _mm256_loadu_ps(out + d);
    for (int64_t t = 0; t < n_ctx; ++t)
      o0 = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), load8<F16>(v, t * stride + d), o0);
    _mm256_storeu_ps(out + d, o0);
  }
  for (; d < head_dim; ++d) {
    float o = out[d];
    for (int64_t t = 0; t < n_ctx; ++t) o += p[t] * load1<F16>(v, t * stride + d);
    out[d] = o;
  }
}

}  // namespace

void attention_scores(const float* q, const void* k, int64_t stride, DType kv_type, int64_t n_ctx,
                      int64_t head_dim, float scale, float* scores) {
  if (kv_type == DType::F16) return scores_impl<true>(q, k, stride, n_ctx, head_dim, scale, scores);
  scores_impl<false>(q, k, stride, n_ctx, head_dim, scale, scores);
}

void attention_mix(const float* p, const void* v, int64_t stride, DType kv_type, int64_t n_ctx,
                   int64_t head_dim, float* out) {
  if (kv_type == DType::F16) return mix_impl<true>(p, v, stride, n_ctx, head_dim, out);
  mix_impl<false>(p, v, stride, n_ctx, head_dim, out);
}

}  // namespace slm::avx2
