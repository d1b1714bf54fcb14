// Legacy quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) times several activation rows (prefill, batched
// decode, speculative verification) with AVX-512 VNNI, output rows across the vector lanes.
//
// The block-per-lane kernels in matmul_avx2.cpp put the 32 values of a block across the lanes, so
// every (weight row, activation row, block) ends in its own int -> float conversion and scaled
// FMA: three float instructions per vpdpbusd. Here 16 weight rows are first repacked (once per
// call, into a buffer that stays in L1/L2; 16-byte loads and an in-register transpose) so that 32-bit lane r of vector g holds levels
// 4g..4g+3 of row r as unsigned bytes. One vpdpbusd with four activation bytes broadcast then
// advances 16 rows at once, a block's 8 of them sum exactly in integers, and the float work is one
// conversion and one FMA per block for 16 outputs. Per activation row and block that is 8 vpdpbusd
// plus 3 float instructions for 512 products, against 32 instructions in the block-per-lane 4 x 4
// tile. The repacking costs about as much as the products of a few activation rows, so the
// dispatcher uses this only from kInterleavedMinRows rows on.
//
// Level offsets: Q4_0 levels are q - 8, Q5_0 q - 16, Q8_0 (stored signed) is made unsigned by
// flipping the sign bit (q + 128); the integer sum starts at -offset * sum(x), so the loop never
// subtracts. Q4_1 / Q5_1 add min * d_x * sum(x) per block in float.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/matmul_kernels.h"
#include "core/quant.h"

#define SLM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// GCC 12's AVX-512 intrinsics pass an "undefined" (self-initialized) vector as the unused merge
// operand, which -W(maybe-)uninitialized reports at every use; the values are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace slm {
namespace {

constexpr int kRows = 16;  // weight rows per repacked block: one per 32-bit lane of a zmm
constexpr int kMaxX = 8;   // activation rows per pass (8 int + 8 float accumulators)

struct alignas(64) Packed16 {
  uint8_t lv[8][64];  // lane r (bytes 4r..4r+3) of lv[g]: levels 4g..4g+3 of row r, unsigned
  float d[kRows];     // scales as floats
  float m[kRows];     // Q4_1 / Q5_1 mins (unused otherwise)
};

// Where the fields of one block are, and how its levels become unsigned bytes.
struct BlockLayout {
  size_t bytes;
  int d_off, m_off, qh_off, qs_off;  // -1: the type has no such field
  int offset;                        // level = byte - offset
  bool q8;                           // 32 signed bytes (Q8_0) instead of nibbles
};

BlockLayout layout_of(DType t) {
  switch (t) {
    case DType::Q4_0: return {sizeof(BlockQ4_0), 0, -1, -1, 2, 8, false};
    case DType::Q4_1: return {sizeof(BlockQ4_1), 0, 2, -1, 4, 0, false};
    case DType::Q5_0: return {sizeof(BlockQ5_0), 0, -1, 2, 6, 16, false};
    case DType::Q5_1: return {sizeof(BlockQ5_1), 0, 2, 4, 8, 0, false};
    default: return {sizeof(BlockQ8_0), 0, -1, -1, 2, 128, true};
  }
}

// Bits 0..3 of each 32-bit lane to bit 4 of its bytes 0..3 (the fifth bit of four Q5 levels):
// t * 0x00204081 places bit k at bit 8k (the four shifted copies do not overlap, so no carries).
SLM_VNNI inline __m512i spread_high_bits(__m512i h) {
  const __m512i t = _mm512_and_si512(h, _mm512_set1_epi32(0xF));
  return _mm512_slli_epi32(_mm512_and_si512(_mm512_mullo_epi32(t, _mm512_set1_epi32(0x00204081)),
                                            _mm512_set1_epi32(0x01010101)),
                           4);
}

// 32-bit gathers from the 16 rows (scales, mins, qh: one field per row, so a gather is the
// cheapest way); every gathered dword lies inside its block (each such field is followed by at
// least two more bytes of the block).
SLM_VNNI inline __m512i gather16(__m512i idx, const unsigned char* p) { return _mm512_i32gather_epi32(idx, p, 1); }

SLM_VNNI inline __m512 halves16(__m512i idx, const unsigned char* p) {
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gather16(idx, p)));
}

// 16 bytes from each of the 16 rows (at p + r * stride) as four vectors: dword g of row r in lane r
// of out[g]. Rows 4q + k go to 128-bit lane q of vector k, then a 4 x 4 dword transpose inside each
// 128-bit lane (unpack 32, unpack 64) puts the rows in order.
SLM_VNNI inline void transpose16x4(const unsigned char* p, size_t stride, __m512i out[4]) {
  __m512i z[4];
  #pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const auto row = [&](int r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + r * stride)); };
    __m512i v = _mm512_castsi128_si512(row(k));
    v = _mm512_inserti32x4(v, row(4 + k), 1);
    v = _mm512_inserti32x4(v, row(8 + k), 2);
    z[k] = _mm512_inserti32x4(v, row(12 + k), 3);
  }
  const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpacklo_epi32(z[2], z[3]);
  const __m512i t2 = _mm512_unpackhi_epi32(z[0], z[1]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t1);
  out[1] = _mm512_unpackhi_epi64(t0, t1);
  out[2] = _mm512_unpacklo_epi64(t2, t3);
  out[3] = _mm512_unpackhi_epi64(t2, t3);
}

SLM_VNNI void pack16(const BlockLayout& L, const unsigned char* row0, size_t stride, int64_t nb, Packed16* out) {
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int>(stride)));
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int64_t j = 0; j < nb; ++j) {
    const unsigned char* b = row0 + static_cast<size_t>(j) * L.bytes;
    Packed16& p = out[j];
    // The 16 rows are one contiguous region read as 16 interleaved streams, which the hardware
    // prefetcher follows late (a matrix larger than the caches was read at 11 instead of 15 GB/s):
    // fetch the next 16 rows meanwhile, 16 * L.bytes bytes per block. Prefetches never fault, so
    // the region after the last rows needs no check.
    const unsigned char* next = row0 + kRows * stride + static_cast<size_t>(j) * kRows * L.bytes;
    for (size_t off = 0; off < kRows * L.bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(next + off), _MM_HINT_T0);
    _mm512_store_ps(p.d, halves16(idx, b + L.d_off));
    if (L.m_off >= 0) _mm512_store_ps(p.m, halves16(idx, b + L.m_off));
    __m512i q[4];
    transpose16x4(b + L.qs_off, stride, q);
    if (L.q8) {
      const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
      __m512i q2[4];
      transpose16x4(b + L.qs_off + 16, stride, q2);
      #pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        _mm512_store_si512(p.lv[g], _mm512_xor_si512(q[g], flip));
        _mm512_store_si512(p.lv[g + 4], _mm512_xor_si512(q2[g], flip));
      }
      continue;
    }
    // Nibbles: byte k of qs holds level k (low) and level k + 16 (high).
    const __m512i qh = L.qh_off >= 0 ? gather16(idx, b + L.qh_off) : _mm512_setzero_si512();
    #pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
      __m512i lo = _mm512_and_si512(q[g], low4), hi = _mm512_and_si512(_mm512_srli_epi32(q[g], 4), low4);
      if (L.qh_off >= 0) {
        lo = _mm512_or_si512(lo, spread_high_bits(_mm512_srli_epi32(qh, 4 * g)));
        hi = _mm512_or_si512(hi, spread_high_bits(_mm512_srli_epi32(qh, 16 + 4 * g)));
      }
      _mm512_store_si512(p.lv[g], lo);
      _mm512_store_si512(p.lv[g + 4], hi);
    }
  }
}

// y[i * ldy + r] = dot(W[r], x[i]) for the 16 packed rows r and NX activation rows i.
template <int NX, bool kMin>
SLM_VNNI void tile16(const Packed16* p, int64_t nb, const ActQ8* const* x, int offset, float* y, int64_t ldy) {
  __m512 acc[NX];
  #pragma GCC unroll 8
  for (int i = 0; i < NX; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t j = 0; j < nb; ++j) {
    const Packed16& b = p[j];
    __m512i s[NX];
    #pragma GCC unroll 8
    for (int i = 0; i < NX; ++i) s[i] = _mm512_set1_epi32(-offset * x[i][j].sum);
    #pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      const __m512i w = _mm512_load_si512(b.lv[g]);
      #pragma GCC unroll 8
      for (int i = 0; i < NX; ++i) {
        int32_t four;
        std::memcpy(&four, x[i][j].qs + 4 * g, 4);
        s[i] = _mm512_dpbusd_epi32(s[i], w, _mm512_set1_epi32(four));
      }
    }
    const __m512 dw = _mm512_load_ps(b.d);
    #pragma GCC unroll 8
    for (int i = 0; i < NX; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(x[i][j].d)), _mm512_cvtepi32_ps(s[i]), acc[i]);
    if constexpr (kMin) {
      const __m512 mw = _mm512_load_ps(b.m);
      #pragma GCC unroll 8
      for (int i = 0; i < NX; ++i) acc[i] = _mm512_fmadd_ps(mw, _mm512_set1_ps(x[i][j].s), acc[i]);
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < NX; ++i) _mm512_storeu_ps(y + i * ldy, acc[i]);
}

using TileFn = void (*)(const Packed16*, int64_t, const ActQ8* const*, int, float*, int64_t);

template <bool kMin>
TileFn tile_fn(int nx) {
  switch (nx) {
    case 1: return tile16<1, kMin>;
    case 2: return tile16<2, kMin>;
    case 3: return tile16<3, kMin>;
    case 4: return tile16<4, kMin>;
    case 5: return tile16<5, kMin>;
    case 6: return tile16<6, kMin>;
    case 7: return tile16<7, kMin>;
    default: return tile16<8, kMin>;
  }
}

}  // namespace

bool interleaved_vnni_supports(DType t) {
  switch (t) {
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
      return true;
    default:
      return false;
  }
}

int64_t matmul_rows_interleaved_vnni(const MatmulTask& t, int64_t r0, int64_t r1) {
  const BlockLayout L = layout_of(t.w.type);
  const int64_t nb = t.w.cols / kQK;
  const size_t stride = t.w.row_stride();
  const bool with_min = L.m_off >= 0;
  const unsigned char* base = static_cast<const unsigned char*>(t.w.data);
  const unsigned char* x = static_cast<const unsigned char*>(t.x);
  thread_local std::vector<Packed16> packed;
  if (packed.size() < static_cast<size_t>(nb)) packed.resize(static_cast<size_t>(nb));
  const int64_t end = r0 + (r1 - r0) / kRows * kRows;
  for (int64_t r = r0; r < end; r += kRows) {
    pack16(L, base + static_cast<size_t>(r) * stride, stride, nb, packed.data());
    for (int64_t i = 0; i < t.m; i += kMaxX) {
      const int nx = static_cast<int>(std::min<int64_t>(kMaxX, t.m - i));
      const ActQ8* xr[kMaxX];
      for (int c = 0; c < nx; ++c) xr[c] = reinterpret_cast<const ActQ8*>(x + (i + c) * t.x_stride);
      const TileFn fn = with_min ? tile_fn<true>(nx) : tile_fn<false>(nx);
      fn(packed.data(), nb, xr, L.offset, t.y + i * t.w.rows + r, t.w.rows);
    }
  }
  return end;
}

}  // namespace slm
