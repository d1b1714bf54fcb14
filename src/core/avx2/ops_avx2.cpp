// AVX2/FMA/F16C versions of the attention inner loops (core/ops.h): 8 lanes of head_dim at a time,
// F16 cache rows widened with F16C; and of the element-wise layer math (rmsnorm, silu_mul,
// add_inplace), which in a short forward (decode, speculative verification) otherwise costs as
// much as a large share of the matrix products. Compiled with -mavx2 -mfma -mf16c; called only when
// use_avx2() holds. The scalar versions in core/ops.cpp are their reference.
#include <immintrin.h>

#include <cmath>

#include "core/fp16.h"
#include "core/ops.h"
#include "core/ops_backward.h"

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

// Dot products of q with R K rows (rows t0 + j * stride, j < R): per row two 8-lane accumulators
// (even and odd 8-column groups) over d, added and folded to 4 lanes: the first half of hsum.
// The R rows' chains run side by side (2R independent FMAs per 16 columns), which a one-row loop
// leaves waiting on FMA latency. A row's sums do not depend on R.
template <bool F16, int R>
inline void rows_dot4(const float* q, const void* k, int64_t row0, int64_t stride, int64_t d8, __m128* u) {
  __m256 acc0[R], acc1[R];
  #pragma GCC unroll 8
  for (int j = 0; j < R; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 16 <= d8; d += 16) {
    const __m256 q0 = _mm256_loadu_ps(q + d), q1 = _mm256_loadu_ps(q + d + 8);
    #pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
      acc0[j] = _mm256_fmadd_ps(q0, load8<F16>(k, row0 + j * stride + d), acc0[j]);
      acc1[j] = _mm256_fmadd_ps(q1, load8<F16>(k, row0 + j * stride + d + 8), acc1[j]);
    }
  }
  if (d < d8) {
    const __m256 q0 = _mm256_loadu_ps(q + d);
    #pragma GCC unroll 8
    for (int j = 0; j < R; ++j) acc0[j] = _mm256_fmadd_ps(q0, load8<F16>(k, row0 + j * stride + d), acc0[j]);
  }
  #pragma GCC unroll 8
  for (int j = 0; j < R; ++j) {
    const __m256 a = _mm256_add_ps(acc0[j], acc1[j]);
    u[j] = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  }
}

// Rows in groups of 4: their horizontal sums are done together by a 4x4 transpose (lane j of the
// result is ((u0 + u2) + (u1 + u3)) of row j, the order hsum uses), not a shuffle chain per row.
template <bool F16>
void scores_impl(const float* q, const void* k, int64_t stride, int64_t n_ctx, int64_t head_dim,
                 float scale, float* scores) {
  const int64_t d8 = head_dim & ~int64_t{7};
  const __m128 vscale = _mm_set1_ps(scale);
  int64_t t = 0;
  for (; t + 4 <= n_ctx; t += 4) {
    __m128 u[4];
    rows_dot4<F16, 4>(q, k, t * stride, stride, d8, u);
    _MM_TRANSPOSE4_PS(u[0], u[1], u[2], u[3]);  // now u[c] = lane c of rows t .. t + 3
    __m128 sum = _mm_add_ps(_mm_add_ps(u[0], u[2]), _mm_add_ps(u[1], u[3]));
    if (d8 < head_dim) {
      alignas(16) float acc[4];
      _mm_store_ps(acc, sum);
      for (int j = 0; j < 4; ++j)
        for (int64_t d = d8; d < head_dim; ++d) acc[j] += q[d] * load1<F16>(k, (t + j) * stride + d);
      sum = _mm_load_ps(acc);
    }
    _mm_storeu_ps(scores + t, _mm_mul_ps(sum, vscale));
  }
  for (; t < n_ctx; ++t) {
    const int64_t row = t * stride;
    __m128 s;
    rows_dot4<F16, 1>(q, k, row, stride, d8, &s);
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float acc = _mm_cvtss_f32(s);
    for (int64_t d = d8; d < head_dim; ++d) acc += q[d] * load1<F16>(k, row + d);
    scores[t] = acc * scale;
  }
}

template <bool F16>
void mix_impl(const float* p, const void* v, int64_t stride, int64_t n_ctx, int64_t head_dim,
              float* out) {
  const int64_t d8 = head_dim & ~int64_t{7};
  // Columns in blocks of up to 64 (8 registers) held across all positions: one pass over V per
  // block instead of a load/store of out per position, and 8 independent FMA chains (4 would
  // leave the FMA units waiting on latency). Each column still sums over t in order.
  int64_t d = 0;
  for (; d + 64 <= d8; d += 64) {
    __m256 o[8];
    #pragma GCC unroll 8
    for (int b = 0; b < 8; ++b) o[b] = _mm256_loadu_ps(out + d + 8 * b);
    for (int64_t t = 0; t < n_ctx; ++t) {
      const __m256 pt = _mm256_set1_ps(p[t]);
      const int64_t row = t * stride + d;
      #pragma GCC unroll 8
      for (int b = 0; b < 8; ++b) o[b] = _mm256_fmadd_ps(pt, load8<F16>(v, row + 8 * b), o[b]);
    }
    #pragma GCC unroll 8
    for (int b = 0; b < 8; ++b) _mm256_storeu_ps(out + d + 8 * b, o[b]);
  }
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

// exp of 8 lanes: Cephes-style range reduction x = n ln2 + r (ln2 split in two for exactness),
// a degree-6 polynomial for e^r, and 2^n built in the exponent bits; ~2 ulp. Inputs are clamped to
// [-87, 88]: softmax only feeds x - max <= 0, and e^-87 is negligible against the max's 1.
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

}  // namespace

void softmax(float* x, int64_t n) {
  const int64_t n8 = n & ~int64_t{7};
  float mx = x[0];
  if (n8 > 0) {
    __m256 m = _mm256_loadu_ps(x);
    for (int64_t j = 8; j < n8; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + j));
    mx = hmax(m);
  }
  for (int64_t j = n8; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t j = 0; j < n8; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmx));
    _mm256_storeu_ps(x + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  double sum = hsum(acc);
  for (int64_t j = n8; j < n; ++j) {
    x[j] = std::exp(x[j] - mx);
    sum += x[j];
  }
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
  for (int64_t j = 0; j < n8; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), inv));
  for (int64_t j = n8; j < n; ++j) x[j] *= static_cast<float>(1.0 / sum);
}

void silu_mul(float* gate, const float* up, int64_t count) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t j = 0;
  for (; j + 8 <= count; j += 8) {
    const __m256 g = _mm256_loadu_ps(gate + j);
    const __m256 e = exp8(_mm256_xor_ps(g, sign));  // exp(-g)
    _mm256_storeu_ps(gate + j, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + j)));
  }
  for (; j < count; ++j) gate[j] = gate[j] / (1.0f + std::exp(-gate[j])) * up[j];
}

void silu_mul_backward(const float* g, const float* u, const float* dh, int64_t count, float* dg,
                       float* du) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t j = 0;
  for (; j + 8 <= count; j += 8) {
    const __m256 gv = _mm256_loadu_ps(g + j), dhv = _mm256_loadu_ps(dh + j);
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_xor_ps(gv, sign))));
    const __m256 ds = _mm256_fmadd_ps(gv, _mm256_sub_ps(one, s), one);  // 1 + g (1 - s)
    _mm256_storeu_ps(dg + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dhv, _mm256_loadu_ps(u + j)), s), ds));
    _mm256_storeu_ps(du + j, _mm256_mul_ps(dhv, _mm256_mul_ps(gv, s)));
  }
  for (; j < count; ++j) {
    const float s = 1.0f / (1.0f + std::exp(-g[j]));
    dg[j] = dh[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
    du[j] = dh[j] * g[j] * s;
  }
}

void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWStep& s) {
  const __m256 keep = _mm256_set1_ps(s.keep), b1 = _mm256_set1_ps(s.b1), b2 = _mm256_set1_ps(s.b2);
  const __m256 c1 = _mm256_set1_ps(1.0f - s.b1), c2 = _mm256_set1_ps(1.0f - s.b2);
  const __m256 step = _mm256_set1_ps(s.step_size), isb = _mm256_set1_ps(s.inv_sqrt_bc2), eps = _mm256_set1_ps(s.eps);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 mv = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, gv));
    const __m256 vv = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(c2, gv), gv));
    const __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vv), isb), eps);
    const __m256 pv = _mm256_mul_ps(_mm256_loadu_ps(p + i), keep);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(pv, _mm256_div_ps(_mm256_mul_ps(step, mv), den)));
    _mm256_storeu_ps(m + i, mv);
    _mm256_storeu_ps(v + i, vv);
  }
  for (; i < n; ++i) {
    p[i] *= s.keep;
    m[i] = s.b1 * m[i] + (1.0f - s.b1) * g[i];
    v[i] = s.b2 * v[i] + (1.0f - s.b2) * g[i] * g[i];
    p[i] -= s.step_size * m[i] / (std::sqrt(v[i]) * s.inv_sqrt_bc2 + s.eps);
  }
}

void rmsnorm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float* oi = out + i * dim;
    // Squares summed in double (as the scalar version), over 4 independent 4-lane chains.
    __m256d s[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
    int64_t j = 0;
    for (; j + 16 <= dim; j += 16) {
      #pragma GCC unroll 4
      for (int b = 0; b < 4; ++b) {
        const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(xi + j + 4 * b));
        s[b] = _mm256_fmadd_pd(v, v, s[b]);
      }
    }
    const __m256d s4 = _mm256_add_pd(_mm256_add_pd(s[0], s[1]), _mm256_add_pd(s[2], s[3]));
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    double ss = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; j < dim; ++j) ss += static_cast<double>(xi[j]) * xi[j];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    const __m256 vr = _mm256_set1_ps(r);
    j = 0;
    for (; j + 8 <= dim; j += 8)
      _mm256_storeu_ps(oi + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xi + j), vr), _mm256_loadu_ps(w + j)));
    for (; j < dim; ++j) oi[j] = xi[j] * r * w[j];
  }
}

void add_inplace(float* y, const float* x, int64_t count) {
  int64_t j = 0;
  for (; j + 8 <= count; j += 8)
    _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_loadu_ps(y + j), _mm256_loadu_ps(x + j)));
  for (; j < count; ++j) y[j] += x[j];
}

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
