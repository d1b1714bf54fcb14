// Float matrix product for training on CPUs with AVX-512F (see core/gemm_kernels.h), in the
// blocked form of Goto & van de Geijn. k is cut into blocks of at most kMaxKC. op(B) is packed
// into panels of kNR columns (k-major, zero-padded), for several k blocks at once, shared by all
// threads. C is cut into tasks of up to kMaxMCPanels x kMR rows (a multiple of the thread count,
// so threads get equal shares); a task packs its rows of op(A) into panels of kMR rows, one k
// block at a time, and runs the micro-kernel over its tiles. The micro-kernel holds a kMR x kNR
// tile of C in 24 of the 32 zmm registers: each k step is kNV vector loads of B, kMR broadcasts
// of A and 24 FMAs. Loop order: an A panel (kMR x kc floats, 18 KiB at most) stays in L1 while it
// sweeps a group of kGroupPanels B panels that stays in L2.
//
// Tiles are 12 x 32, or 8 x 48 where that wastes fewer padded columns (attention's head_dim 48).
// Packing handles the transposes (16 x 16 blocks transposed in registers), so the four
// (trans_a, trans_b) cases share one kernel. Each element's sum runs over k in the same order
// whatever the tile shape and the split across threads, so results do not depend on the thread
// count.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/gemm_kernels.h"

namespace slm {
namespace {

#define SLM_AVX512F __attribute__((target("avx512f")))
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() (a self-initialized variable) as the
// unused merge operand, which -Wuninitialized reports at every use; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

constexpr int64_t kMaxKC = 384;                    // k per block
constexpr int64_t kMaxMCPanels = 20;               // A panels per task (240 rows of 12)
constexpr int64_t kGroupPanels = 8;                // B panels swept by one A panel (L2-sized)
constexpr int64_t kMaxPackedB = int64_t{1} << 22;  // floats of op(B) packed per pass (16 MiB)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A per-thread, 64-byte aligned buffer that only grows (packing runs on every call).
class Scratch {
 public:
  float* get(size_t n) {
    if (buf_.size() < n + 16) buf_.resize(n + 16);
    const auto p = reinterpret_cast<uintptr_t>(buf_.data());
    return reinterpret_cast<float*>((p + 63) & ~uintptr_t{63});
  }

 private:
  std::vector<float> buf_;
};

// Writes the transpose of `rows` (<= 16) rows of src (row stride ld), columns [0, kc), so that
// column p becomes dst[p * dst_stride + lane] for the lanes in `lanes` (rows past `rows` as zeros):
// 16 x 16 blocks transposed in registers (unpack, then 128-bit lane shuffles), instead of one
// scalar strided store per element.
SLM_AVX512F void pack_transposed(const float* src, int64_t ld, int rows, int64_t kc, float* dst,
                                 int64_t dst_stride, __mmask16 lanes) {
  for (int64_t p = 0; p < kc; p += 16) {
    const int64_t width = std::min<int64_t>(16, kc - p);
    const __mmask16 cols = width == 16 ? __mmask16(0xffff) : __mmask16((1u << width) - 1);
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) {
      // 16 rows are 16 streams, more than the hardware prefetcher follows: ask for the lines
      // four blocks ahead.
      if (i < rows) _mm_prefetch(reinterpret_cast<const char*>(src + i * ld + p + 64), _MM_HINT_T0);
      r[i] = i < rows ? _mm512_maskz_loadu_ps(cols, src + i * ld + p) : _mm512_setzero_ps();
    }
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
      r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
      r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
      r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    for (int h = 0; h < 16; h += 8)
      for (int i = 0; i < 4; ++i) {
        t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
        t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
      }
    for (int i = 0; i < 8; ++i) {
      r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
      r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
    for (int64_t j = 0; j < width; ++j) _mm512_mask_storeu_ps(dst + (p + j) * dst_stride, lanes, r[j]);
  }
}

thread_local Scratch b_scratch, a_scratch;

// Rows [i0, i0 + mc) and k [p0, p0 + kc) of op(A) as panels of kMR rows: panel q holds element
// (p, r) at [q * kMR * kc + p * kMR + r]; rows past mc are zeros.
template <int kMR>
SLM_AVX512F void pack_a(bool trans_a, const float* a, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
            int64_t kc, float* ap) {
  for (int64_t q = 0; q < mc; q += kMR) {
    const int rows = static_cast<int>(std::min<int64_t>(kMR, mc - q));
    float* dst = ap + q * kc;
    if (trans_a) {  // op(A)[i][p] = a[p * lda + i]: kMR contiguous values per p
      const __mmask16 valid = __mmask16((1u << rows) - 1), lanes = __mmask16((1u << kMR) - 1);
      for (int64_t p = 0; p < kc; ++p)
        _mm512_mask_storeu_ps(dst + p * kMR, lanes, _mm512_maskz_loadu_ps(valid, a + (p0 + p) * lda + i0 + q));
    } else {  // op(A)[i][p] = a[i * lda + p]: a row of A becomes a column of the panel
      pack_transposed(a + (i0 + q) * lda + p0, lda, rows, kc, dst, kMR, __mmask16((1u << kMR) - 1));
    }
  }
}

// Columns [j0, j0 + cols) (cols <= kNR) and k [p0, p0 + kc) of op(B) as one panel: element
// (p, j) at [p * kNR + j]; columns past cols are zeros.
template <int kNR>
SLM_AVX512F void pack_b(bool trans_b, const float* b, int64_t ldb, int64_t j0, int cols, int64_t p0, int64_t kc,
            float* bp) {
  if (trans_b) {  // op(B)[p][j] = b[j * ldb + p]: a row of B becomes a column of the panel
    for (int j = 0; j < kNR; j += 16)
      pack_transposed(b + (j0 + j) * ldb + p0, ldb, std::clamp(cols - j, 0, 16), kc, bp + j, kNR,
                      __mmask16(0xffff));
  } else {  // op(B)[p][j] = b[p * ldb + j]: kNR / 16 masked vector copies per p
    __mmask16 valid[kNR / 16];
    for (int v = 0; v < kNR / 16; ++v) {
      const int left = std::clamp(cols - 16 * v, 0, 16);
      valid[v] = left == 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    }
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b + (p0 + p) * ldb + j0;
      for (int v = 0; v < kNR / 16; ++v)
        _mm512_store_ps(bp + p * kNR + 16 * v, _mm512_maskz_loadu_ps(valid[v], src + 16 * v));
    }
  }
}

// C[rows, cols] = alpha * A * Bpanel + beta * C (beta == 0: C is not read). A is a packed panel
// (kPacked: element (p, r) at ap[p * kMR + r]) or read in place, element (p, r) at
// ap[r * a_rs + p * a_ps] (rows past `rows` read the last row again; they are never stored).
template <int kMR, int kNV, bool kPacked>
SLM_AVX512F void micro_kernel(int64_t kc, const float* ap, int64_t a_rs, int64_t a_ps, const float* bp,
                              float* c, int64_t ldc, int rows, int cols, float alpha, float beta) {
  const float* arow[kMR];
#pragma GCC unroll 32
  for (int r = 0; r < kMR; ++r) arow[r] = kPacked ? ap + r : ap + std::min(r, rows - 1) * a_rs;
  const int64_t a_step = kPacked ? kMR : a_ps;
  __m512 acc[kMR][kNV];
#pragma GCC unroll 32
  for (int r = 0; r < kMR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[r][v] = _mm512_setzero_ps();
  if (beta != 0.0f)
    for (int r = 0; r < rows; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
  for (int64_t p = 0, off = 0; p < kc; ++p, off += a_step) {
    __m512 bv[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) bv[v] = _mm512_load_ps(bp + 16 * v);
#pragma GCC unroll 32
    for (int r = 0; r < kMR; ++r) {
      const __m512 av = _mm512_set1_ps(arow[r][off]);
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    bp += 16 * kNV;
  }
  __mmask16 mask[kNV];
  for (int v = 0; v < kNV; ++v) {
    const int left = cols - 16 * v;
    mask[v] = left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 32
  for (int r = 0; r < kMR; ++r) {
    if (r >= rows) break;
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      float* dst = c + r * ldc + 16 * v;
      __m512 x = _mm512_mul_ps(acc[r][v], va);
      if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], dst), x);
      _mm512_mask_storeu_ps(dst, mask[v], x);
    }
  }
}

#pragma GCC diagnostic pop

void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// Runs fn(begin, end) over [0, n): on the pool when there is one with several threads.
template <class Fn>
void for_range(ThreadPool* pool, int64_t n, Fn&& fn) {
  if (pool && pool->size() > 1 && n > 1)
    pool->parallel_for(n, 1, fn);
  else
    fn(int64_t{0}, n);
}

template <int kMR, int kNV>
void blocked_product(ThreadPool* pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                  float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                  float* c, int64_t ldc) {
  constexpr int kNR = 16 * kNV;
  const int threads = pool ? pool->size() : 1;
  const int64_t k_blocks = ceil_div(k, kMaxKC), kc_max = ceil_div(k, k_blocks);
  const int64_t m_panels = ceil_div(m, kMR), n_panels = ceil_div(n, kNR);

  // Tasks: C cut into blocks of A panels, their count a multiple of the thread count (equal
  // shares) and at least two per thread where m allows; a short C is also cut across n.
  int64_t m_chunks = ceil_div(m_panels, kMaxMCPanels);
  if (threads > 1) m_chunks = std::min(m_panels, ceil_div(m_chunks, 4 * threads) * 4 * threads);
  const int64_t mc_panels = ceil_div(m_panels, m_chunks);
  m_chunks = ceil_div(m_panels, mc_panels);
  int64_t n_chunks = m_chunks < 4 * threads ? std::min(n_panels, ceil_div(4 * threads, m_chunks)) : 1;
  const int64_t nc_panels = ceil_div(n_panels, n_chunks);
  n_chunks = ceil_div(n_panels, nc_panels);

  // op(B) is packed for several k blocks at once (up to kMaxPackedB floats), so that each task
  // runs all of them on its part of C (kept in cache) with one barrier per pass instead of two
  // per k block.
  // Where C is one B panel wide (attention's products with head_dim columns), each element of
  // op(A) is used once: the micro-kernel reads it in place instead of packing it first.
  const bool direct_a = n_panels == 1;
  const int64_t block_floats = n_panels * kNR * kc_max;
  const int64_t blocks_per_pass = std::clamp<int64_t>(kMaxPackedB / block_floats, 1, k_blocks);
  float* bp = b_scratch.get(static_cast<size_t>(blocks_per_pass * block_floats));

  for (int64_t kb0 = 0; kb0 < k_blocks; kb0 += blocks_per_pass) {
    const int64_t kb1 = std::min(k_blocks, kb0 + blocks_per_pass);
    for_range(pool, (kb1 - kb0) * n_panels, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t kb = kb0 + u / n_panels, s = u % n_panels;
        const int64_t p0 = kb * kc_max, kc = std::min(kc_max, k - p0);
        pack_b<kNR>(trans_b, b, ldb, s * kNR, static_cast<int>(std::min<int64_t>(kNR, n - s * kNR)), p0,
                    kc, bp + (kb - kb0) * block_floats + s * kNR * kc);
      }
    });
    for_range(pool, m_chunks * n_chunks, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t i0 = (t / n_chunks) * mc_panels * kMR, mc = std::min(mc_panels * kMR, m - i0);
        const int64_t s0 = (t % n_chunks) * nc_panels, s1 = std::min(n_panels, s0 + nc_panels);
        float* ap = a_scratch.get(static_cast<size_t>(ceil_div(mc, kMR) * kMR * kc_max));
        for (int64_t kb = kb0; kb < kb1; ++kb) {
          const int64_t p0 = kb * kc_max, kc = std::min(kc_max, k - p0);
          const float* bk = bp + (kb - kb0) * block_floats;
          const float beta_now = p0 == 0 ? beta : 1.0f;
          if (!direct_a) pack_a<kMR>(trans_a, a, lda, i0, mc, p0, kc, ap);
          for (int64_t g = s0; g < s1; g += kGroupPanels)
            for (int64_t q = 0; q < mc; q += kMR)
              for (int64_t s = g; s < std::min(s1, g + kGroupPanels); ++s) {
                const int rows = static_cast<int>(std::min<int64_t>(kMR, mc - q));
                const int cols = static_cast<int>(std::min<int64_t>(kNR, n - s * kNR));
                float* ct = c + (i0 + q) * ldc + s * kNR;
                if (direct_a)
                  micro_kernel<kMR, kNV, false>(kc, trans_a ? a + p0 * lda + i0 + q : a + (i0 + q) * lda + p0,
                                                trans_a ? 1 : lda, trans_a ? lda : 1, bk + s * kNR * kc, ct,
                                                ldc, rows, cols, alpha, beta_now);
                else
                  micro_kernel<kMR, kNV, true>(kc, ap + q * kc, 0, 0, bk + s * kNR * kc, ct, ldc, rows, cols,
                                               alpha, beta_now);
              }
        }
      }
    });
  }
}

}  // namespace

void sgemm_avx512(ThreadPool* pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                  float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                  float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  // 12 x 32 tiles, or 8 x 48 where C's width wastes fewer padded columns that way (attention's
  // head_dim 48 products); the choice does not change any element's summation order.
  const bool wide = ceil_div(n, 48) * 48 < ceil_div(n, 32) * 32;
  if (wide)
    blocked_product<8, 3>(pool, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    blocked_product<12, 2>(pool, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace slm
