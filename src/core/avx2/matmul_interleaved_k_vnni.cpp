// K-quants (Q4_K, Q5_K, Q6_K) times activation rows with AVX-512 VNNI, output rows across the
// vector lanes: the K-quant counterpart of matmul_interleaved_vnni.cpp (read that first).
//
// A super-block of 256 values is S sub-blocks of G values (Q4_K / Q5_K: 8 of 32 with a 6-bit
// scale and a 6-bit min; Q6_K: 16 of 16 with a signed 8-bit scale and levels offset by 32). For 16
// weight rows, each super-block is repacked once: 64 vectors of unsigned levels (lane r of vector
// v = levels 4v..4v+3 of row r), the sub-block scales and mins as 32-bit lanes, d and dmin as
// floats. Per activation row and sub-block, G / 4 vpdpbusd (activation bytes broadcast) sum the
// levels exactly; the integer sub-block sums are weighted by the scales in integers (vpmulld),
// so the float work is one conversion and one FMA per super-block for 16 outputs.
//   Q4_K / Q5_K: y += d dx sum_s sc_s sum(q x) - dmin dx sum_s m_s sum_s(x)
//   Q6_K:        y += d dx sum_s sc_s (sum(q x) - 32 sum_s(x))      (the offset starts each sum)
// sum_s(x) comes from the activation block's 16-value sums (ActQ8K::bsums). Every output is
// computed the same way whatever m or the thread split (a batched row equals the decoded row).
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "core/avx2/interleave16.h"
#include "core/fp16.h"
#include "core/matmul_kernels.h"
#include "core/quant.h"

namespace slm {
namespace {

using namespace interleave16;

constexpr int kMaxXK = 4;  // activation rows per pass: 4 x (sub-block sum, total, float) accumulators

struct alignas(64) PackedK16 {
  uint8_t lv[64][64];   // lane r (bytes 4r..4r+3) of lv[v]: levels 4v..4v+3 of row r, unsigned
  int32_t sc[16][16];   // sub-block scales (S of them)
  int32_t mn[8][16];    // Q4_K / Q5_K sub-block mins
  float d[16], dmin[16];
};

// Byte b (0..3) of every 32-bit lane, zero- or sign-extended.
SLM_VNNI inline __m512i byte_u(__m512i v, int b) { return _mm512_and_si512(_mm512_srli_epi32(v, 8 * b), _mm512_set1_epi32(0xFF)); }
SLM_VNNI inline __m512i byte_s(__m512i v, int b) { return _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * b), 24); }

// Bit k of every byte moved to bit 4 (the fifth bit of a Q5_K level), other bits cleared.
SLM_VNNI inline __m512i bit_to_4(__m512i v, int k) {
  const __m512i one = _mm512_set1_epi8(1);
  return _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(v, k), one), 4);
}

template <bool Q5>
SLM_VNNI void pack_q45k(const unsigned char* row0, size_t stride, PackedK16& p) {
  using B = std::conditional_t<Q5, BlockQ5_K, BlockQ4_K>;
  constexpr size_t kScales = offsetof(B, scales), kQs = offsetof(B, qs);
  _mm512_store_ps(p.d, halves16(row0 + offsetof(B, d), stride));
  _mm512_store_ps(p.dmin, halves16(row0 + offsetof(B, dmin), stride));
  // 12 scale bytes (+ 4 bytes of what follows, unused): s0 = bytes 0-3, s1 = 4-7, s2 = 8-11.
  __m512i s[4];
  transpose16x4(row0 + kScales, stride, s);
  for (int j = 0; j < 4; ++j) {  // k_scale_min (core/quant_kernels.h), 16 rows at once
    const __m512i low6 = _mm512_set1_epi32(63);
    _mm512_store_si512(p.sc[j], _mm512_and_si512(byte_u(s[0], j), low6));
    _mm512_store_si512(p.mn[j], _mm512_and_si512(byte_u(s[1], j), low6));
    const __m512i b8 = byte_u(s[2], j);
    _mm512_store_si512(p.sc[j + 4], _mm512_or_si512(_mm512_and_si512(b8, _mm512_set1_epi32(0xF)),
                                                    _mm512_slli_epi32(_mm512_srli_epi32(byte_u(s[0], j), 6), 4)));
    _mm512_store_si512(p.mn[j + 4], _mm512_or_si512(_mm512_srli_epi32(b8, 4),
                                                    _mm512_slli_epi32(_mm512_srli_epi32(byte_u(s[1], j), 6), 4)));
  }
  __m512i qh[8];
  if constexpr (Q5) {
    transpose16x4(row0 + offsetof(B, qh), stride, qh);
    transpose16x4(row0 + offsetof(B, qh) + 16, stride, qh + 4);
  }
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int k = 0; k < 4; ++k) {  // runs of 64 values: 32 bytes of qs, low nibbles then high
    __m512i q[8];
    transpose16x4(row0 + kQs + 32 * k, stride, q);
    transpose16x4(row0 + kQs + 32 * k + 16, stride, q + 4);
    #pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      __m512i lo = _mm512_and_si512(q[g], low4), hi = _mm512_and_si512(_mm512_srli_epi32(q[g], 4), low4);
      if constexpr (Q5) {
        lo = _mm512_or_si512(lo, bit_to_4(qh[g], 2 * k));
        hi = _mm512_or_si512(hi, bit_to_4(qh[g], 2 * k + 1));
      }
      _mm512_store_si512(p.lv[16 * k + g], lo);
      _mm512_store_si512(p.lv[16 * k + 8 + g], hi);
    }
  }
}

// Bits shift..shift+1 of every byte moved to bits 4-5 (the high bits of a Q6_K level).
SLM_VNNI inline __m512i high2(__m512i h, int shift) {
  return _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, shift), _mm512_set1_epi8(3)), 4);
}

SLM_VNNI void pack_q6k(const unsigned char* row0, size_t stride, PackedK16& p) {
  _mm512_store_ps(p.d, halves16(row0 + offsetof(BlockQ6_K, d), stride));
  __m512i s[4];
  transpose16x4(row0 + offsetof(BlockQ6_K, scales), stride, s);
  #pragma GCC unroll 16
  for (int j = 0; j < 16; ++j) _mm512_store_si512(p.sc[j], byte_s(s[j / 4], j % 4));
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int h = 0; h < 2; ++h) {  // halves of 128 values
    const unsigned char* ql = row0 + offsetof(BlockQ6_K, ql) + 64 * h;
    const unsigned char* qhp = row0 + offsetof(BlockQ6_K, qh) + 32 * h;
    __m512i a[8], b[8], qh[8];
    transpose16x4(ql, stride, a);
    transpose16x4(ql + 16, stride, a + 4);
    transpose16x4(ql + 32, stride, b);
    transpose16x4(ql + 48, stride, b + 4);
    transpose16x4(qhp, stride, qh);
    transpose16x4(qhp + 16, stride, qh + 4);
    #pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {  // values 128h + 4g + (0, 32, 64, 96) + 0..3
      _mm512_store_si512(p.lv[32 * h + g], _mm512_or_si512(_mm512_and_si512(a[g], low4), high2(qh[g], 0)));
      _mm512_store_si512(p.lv[32 * h + 8 + g], _mm512_or_si512(_mm512_and_si512(b[g], low4), high2(qh[g], 2)));
      _mm512_store_si512(p.lv[32 * h + 16 + g],
                         _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(a[g], 4), low4), high2(qh[g], 4)));
      _mm512_store_si512(p.lv[32 * h + 24 + g],
                         _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(b[g], 4), low4), high2(qh[g], 6)));
    }
  }
}

// Sub-block geometry of each type.
template <DType T>
struct KShape {
  static constexpr int kSub = T == DType::Q6_K ? 16 : 8;         // sub-blocks per super-block
  static constexpr int kDw = 64 / kSub;                           // level dwords per sub-block
  static constexpr bool kMins = T != DType::Q6_K;
  static constexpr size_t kBytes = T == DType::Q4_K ? sizeof(BlockQ4_K) : T == DType::Q5_K ? sizeof(BlockQ5_K) : sizeof(BlockQ6_K);
};

// sum of activation row x over sub-block s of its super-block.
template <DType T>
inline int32_t sub_sum(const ActQ8K& x, int s) {
  if constexpr (KShape<T>::kSub == 16) return x.bsums[s];
  else return x.bsums[2 * s] + x.bsums[2 * s + 1];
}

// y[i * ldy + r] = dot(W[r], x[i]) for the 16 packed rows and NX activation rows.
template <DType T, int NX>
SLM_VNNI void tile_k(const PackedK16* p, int64_t nb, const ActQ8K* const* x, float* y, int64_t ldy) {
  using K = KShape<T>;
  __m512 acc[NX];
  #pragma GCC unroll 4
  for (int i = 0; i < NX; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t j = 0; j < nb; ++j) {
    const PackedK16& b = p[j];
    __m512i tot[NX], mins[NX];
    #pragma GCC unroll 4
    for (int i = 0; i < NX; ++i) tot[i] = mins[i] = _mm512_setzero_si512();
    #pragma GCC unroll 2
    for (int s = 0; s < K::kSub; ++s) {
      __m512i is[NX];
      #pragma GCC unroll 4
      for (int i = 0; i < NX; ++i)
        is[i] = K::kMins ? _mm512_setzero_si512() : _mm512_set1_epi32(-32 * sub_sum<T>(x[i][j], s));
      #pragma GCC unroll 8
      for (int g = 0; g < K::kDw; ++g) {
        const __m512i w = _mm512_load_si512(b.lv[s * K::kDw + g]);
        #pragma GCC unroll 4
        for (int i = 0; i < NX; ++i) {
          int32_t four;
          std::memcpy(&four, x[i][j].qs + 4 * (s * K::kDw + g), 4);
          is[i] = _mm512_dpbusd_epi32(is[i], w, _mm512_set1_epi32(four));
        }
      }
      const __m512i sc = _mm512_load_si512(b.sc[s]);
      #pragma GCC unroll 4
      for (int i = 0; i < NX; ++i) tot[i] = _mm512_add_epi32(tot[i], _mm512_mullo_epi32(is[i], sc));
      if constexpr (K::kMins) {
        const __m512i mn = _mm512_load_si512(b.mn[s]);
        #pragma GCC unroll 4
        for (int i = 0; i < NX; ++i)
          mins[i] = _mm512_add_epi32(mins[i], _mm512_mullo_epi32(mn, _mm512_set1_epi32(sub_sum<T>(x[i][j], s))));
      }
    }
    const __m512 d = _mm512_load_ps(b.d), dmin = _mm512_load_ps(b.dmin);
    #pragma GCC unroll 4
    for (int i = 0; i < NX; ++i) {
      const __m512 dx = _mm512_set1_ps(x[i][j].d);
      acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(d, dx), _mm512_cvtepi32_ps(tot[i]), acc[i]);
      if constexpr (K::kMins) acc[i] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, dx), _mm512_cvtepi32_ps(mins[i]), acc[i]);
    }
  }
  #pragma GCC unroll 4
  for (int i = 0; i < NX; ++i) _mm512_storeu_ps(y + i * ldy, acc[i]);
}

template <DType T>
using TileKFn = void (*)(const PackedK16*, int64_t, const ActQ8K* const*, float*, int64_t);

template <DType T>
TileKFn<T> tile_k_fn(int nx) {
  switch (nx) {
    case 1: return tile_k<T, 1>;
    case 2: return tile_k<T, 2>;
    case 3: return tile_k<T, 3>;
    default: return tile_k<T, 4>;
  }
}

// The K-quant type T for run_groups16 (interleave16.h).
template <DType T>
struct KQuantKernel {
  using Packed = PackedK16;
  using Act = ActQ8K;
  static constexpr int kMaxX = kMaxXK;
  static constexpr int64_t kBlockValues = kQKK;
  static constexpr size_t kBytes = KShape<T>::kBytes;
  SLM_VNNI static void pack(const unsigned char* b, size_t stride, PackedK16& p) {
    if constexpr (T == DType::Q6_K) pack_q6k(b, stride, p);
    else pack_q45k<T == DType::Q5_K>(b, stride, p);
  }
  static void pass(int nx, const PackedK16* p, int64_t nb, const ActQ8K* const* x, float* y, int64_t ldy) {
    tile_k_fn<T>(nx)(p, nb, x, y, ldy);
  }
};

// Decoding (one activation row) reads each weight row in place instead: repacking 16 rows for a
// single use cost more than it saved, and 16 rows side by side read a matrix larger than the
// caches slower than one row after the other (s110m Q4_K, 1 thread: 216-241 -> 260-275 tokens/s
// with the block-per-lane kernels). The integer super-block sums are the tile's exactly (integer
// sums in any order), and the float steps per super-block are the tile's, in the same order, so
// a decoded row equals the same row in a batch bit for bit (test InterleavedRowsEqualDecodeBitwise).
// Q4_K: 32 bytes of qs hold values 64k..64k+31 (low nibbles, sub-block 2k) and 64k+32..+63 (high,
// sub-block 2k+1): broadcast to both halves of a vector, shifted by 0 / 4 per half, they line up
// with the activation bytes 64k..64k+63, and lanes 0-7 / 8-15 of the vpdpbusd belong to the two
// sub-blocks, so the scales are applied per lane before one horizontal sum.
SLM_VNNI float decode_row_q4k(const BlockQ4_K* w, const ActQ8K* x, int64_t nb) {
  const __m512i nibble_shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  float acc = 0.0f;
  for (int64_t j = 0; j < nb; ++j) {
    const BlockQ4_K& b = w[j];
    const ActQ8K& a = x[j];
    // k_scale_min (core/quant_kernels.h) on 8 lanes at once: scalar stores read back as a vector
    // would stall store-to-load forwarding once per super-block (2x slower)
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));  // 12 bytes + 4 of qs
    const __m128i q0 = _mm_cvtepu8_epi32(q), q1 = _mm_cvtepu8_epi32(_mm_srli_si128(q, 4)),
                  q2 = _mm_cvtepu8_epi32(_mm_srli_si128(q, 8));
    const __m128i six = _mm_set1_epi32(63), four = _mm_set1_epi32(15);
    const __m256i sc = _mm256_set_m128i(_mm_or_si128(_mm_and_si128(q2, four), _mm_slli_epi32(_mm_srli_epi32(q0, 6), 4)),
                                        _mm_and_si128(q0, six));
    const __m256i mn = _mm256_set_m128i(_mm_or_si128(_mm_srli_epi32(q2, 4), _mm_slli_epi32(_mm_srli_epi32(q1, 6), 4)),
                                        _mm_and_si128(q1, six));
    const __m256i pair_sums = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums)),
                                                _mm256_set1_epi16(1));
    const __m256i mins8 = _mm256_mullo_epi32(mn, pair_sums);
    const __m128i mins4 = _mm_add_epi32(_mm256_castsi256_si128(mins8), _mm256_extracti128_si256(mins8, 1));
    const __m128i mins2 = _mm_add_epi32(mins4, _mm_shuffle_epi32(mins4, 0x4E));
    const int32_t mins = _mm_cvtsi128_si32(_mm_add_epi32(mins2, _mm_shuffle_epi32(mins2, 0xB1)));
    const __m512i scv = _mm512_castsi256_si512(sc);
    __m512i tot = _mm512_setzero_si512();
    #pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * k)));
      const __m512i lv = _mm512_and_si512(_mm512_srlv_epi64(v, nibble_shift), low4);
      const __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lv, _mm512_loadu_si512(a.qs + 64 * k));
      const __m512i lane_sc = _mm512_permutexvar_epi32(
          _mm512_set_epi32(2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                           2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k), scv);
      tot = _mm512_add_epi32(tot, _mm512_mullo_epi32(dp, lane_sc));
    }
    const float dx = a.d;
    acc = std::fma(fp16_to_fp32(b.d) * dx, static_cast<float>(_mm512_reduce_add_epi32(tot)), acc);
    acc = std::fma(-(fp16_to_fp32(b.dmin) * dx), static_cast<float>(mins), acc);
  }
  return acc;
}

// Q6_K: 64 bytes of ql hold values 128h + 0..63 (low nibbles) and 128h + 64..127 (high), with their
// two high bits in qh (32 bytes, shifts 0 / 2 and 4 / 6 for the two halves of each vector); lanes
// 4s..4s+3 of each vpdpbusd belong to sub-block 8h + s (lo) or 8h + 4 + s (hi).
SLM_VNNI float decode_row_q6k(const BlockQ6_K* w, const ActQ8K* x, int64_t nb) {
  const __m512i shift_lo = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
  const __m512i shift_hi = _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4);
  const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(3);
  float acc = 0.0f;
  for (int64_t j = 0; j < nb; ++j) {
    const BlockQ6_K& b = w[j];
    const ActQ8K& a = x[j];
    const __m512i sc16 = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    const __m256i off8 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales))),
                                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums)));
    const __m128i off4 = _mm_add_epi32(_mm256_castsi256_si128(off8), _mm256_extracti128_si256(off8, 1));
    const __m128i off2 = _mm_add_epi32(off4, _mm_shuffle_epi32(off4, 0x4E));
    const int32_t offset = _mm_cvtsi128_si32(_mm_add_epi32(off2, _mm_shuffle_epi32(off2, 0xB1)));
    __m512i tot = _mm512_setzero_si512();
    #pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b.ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h)));
      const __m512i lo = _mm512_or_si512(_mm512_and_si512(ql, low4),
                                         _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(qh, shift_lo), low2), 4));
      const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                         _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(qh, shift_hi), low2), 4));
      const __m512i dlo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(a.qs + 128 * h));
      const __m512i dhi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, _mm512_loadu_si512(a.qs + 128 * h + 64));
      const int s0 = 8 * h;
      const __m512i idx_lo = _mm512_set_epi32(s0 + 3, s0 + 3, s0 + 3, s0 + 3, s0 + 2, s0 + 2, s0 + 2, s0 + 2,
                                              s0 + 1, s0 + 1, s0 + 1, s0 + 1, s0, s0, s0, s0);
      const __m512i idx_hi = _mm512_add_epi32(idx_lo, _mm512_set1_epi32(4));
      tot = _mm512_add_epi32(tot, _mm512_mullo_epi32(dlo, _mm512_permutexvar_epi32(idx_lo, sc16)));
      tot = _mm512_add_epi32(tot, _mm512_mullo_epi32(dhi, _mm512_permutexvar_epi32(idx_hi, sc16)));
    }
    acc = std::fma(fp16_to_fp32(b.d) * a.d, static_cast<float>(_mm512_reduce_add_epi32(tot) - 32 * offset), acc);
  }
  return acc;
}

}  // namespace

int64_t matmul_rows_interleaved_k_vnni(const MatmulTask& t, int64_t r0, int64_t r1) {
  if (t.m == 1 && t.w.type != DType::Q5_K) {
    const int64_t end = r0 + (r1 - r0) / kRows * kRows;
    const auto* x = static_cast<const ActQ8K*>(t.x);
    const int64_t nb = t.w.cols / kQKK;
    const unsigned char* base = static_cast<const unsigned char*>(t.w.data);
    // Once per call: row_stride() looks the type up (two calls out of line), which took 10% of
    // s110m Q4_K's decode time when asked per row.
    const size_t stride = t.w.row_stride();
    if (t.w.type == DType::Q4_K) {
      for (int64_t r = r0; r < end; ++r)
        t.y[r] = decode_row_q4k(reinterpret_cast<const BlockQ4_K*>(base + static_cast<size_t>(r) * stride), x, nb);
    } else {
      for (int64_t r = r0; r < end; ++r)
        t.y[r] = decode_row_q6k(reinterpret_cast<const BlockQ6_K*>(base + static_cast<size_t>(r) * stride), x, nb);
    }
    return end;
  }
  switch (t.w.type) {
    case DType::Q4_K: return run_groups16<KQuantKernel<DType::Q4_K>>(t, r0, r1);
    case DType::Q5_K: return run_groups16<KQuantKernel<DType::Q5_K>>(t, r0, r1);
    case DType::Q6_K: return run_groups16<KQuantKernel<DType::Q6_K>>(t, r0, r1);
    default: return r0;
  }
}

}  // namespace slm
