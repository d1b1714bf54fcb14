// Legacy quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) times activation rows with AVX-512 VNNI, output
// rows across the vector lanes.
//
// The block-per-lane kernels in matmul_avx2.cpp put the 32 values of a block across the lanes, so
// every (weight row, activation row, block) ends in its own int -> float conversion and scaled
// FMA: three float instructions per vpdpbusd, and a horizontal sum per output. Here 16 weight rows
// are read together (16-byte loads and an in-register 4 x 4 dword transpose) so that 32-bit lane
// r of vector g holds levels 4g..4g+3 of row r as unsigned bytes. One vpdpbusd with four
// activation bytes broadcast then advances 16 rows at once, a block's 8 of them sum exactly in
// integers, and the float work is one conversion and one FMA per block for 16 outputs: per
// activation row and block 8 vpdpbusd plus 3 float instructions for 512 products, against 32
// instructions in the block-per-lane 4 x 4 tile.
// - Several activation rows (prefill, batched decode, speculative verification): the 16 rows are
//   repacked once into a buffer that stays in L1/L2, then every activation row runs over it.
// - One activation row (decode): the same arithmetic straight from the registers.
// Both give each output bit for bit the same value (same integer sums, same float operations in
// the same order), whatever m, the pass width or the thread split: a row decoded alone and the
// same row in a batch agree exactly, as speculative decoding and the server need.
//
// Level offsets: Q4_0 levels are q - 8, Q5_0 q - 16, Q8_0 (stored signed) is made unsigned by
// flipping the sign bit (q + 128); the integer sum starts at -offset * sum(x), so the loop never
// subtracts. Q4_1 / Q5_1 add min * d_x * sum(x) per block in float.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "core/avx2/interleave16.h"
#include "core/matmul_kernels.h"
#include "core/quant.h"


namespace slm {
namespace {

using namespace interleave16;

constexpr int kMaxXLegacy = 8;  // activation rows per pass (8 int + 8 float accumulators)

struct alignas(64) Packed16 {
  uint8_t lv[8][64];  // lane r (bytes 4r..4r+3) of lv[g]: levels 4g..4g+3 of row r, unsigned
  float d[kRows];     // scales as floats
  float m[kRows];     // Q4_1 / Q5_1 mins (unused otherwise)
};

// Where the fields of one block are, and how its levels become unsigned bytes.
template <class B, int DOff, int MOff, int QhOff, int QsOff, int Offset>
struct Layout {
  static constexpr size_t kBytes = sizeof(B);
  static constexpr int kD = DOff, kM = MOff, kQh = QhOff, kQs = QsOff;  // -1: no such field
  static constexpr int kOffset = Offset;                                  // level = byte - offset
  static constexpr bool kQ8 = std::is_same_v<B, BlockQ8_0>;  // 32 signed bytes instead of nibbles
};
using LayoutQ4_0 = Layout<BlockQ4_0, 0, -1, -1, 2, 8>;
using LayoutQ4_1 = Layout<BlockQ4_1, 0, 2, -1, 4, 0>;
using LayoutQ5_0 = Layout<BlockQ5_0, 0, -1, 2, 6, 16>;
using LayoutQ5_1 = Layout<BlockQ5_1, 0, 2, 4, 8, 0>;
using LayoutQ8_0 = Layout<BlockQ8_0, 0, -1, -1, 2, 128>;

// Bits 0..3 of each 32-bit lane to bit 4 of its bytes 0..3 (the fifth bit of four Q5 levels):
// t * 0x00204081 places bit k at bit 8k (the four shifted copies do not overlap, so no carries).
SLM_VNNI inline __m512i spread_high_bits(__m512i h) {
  const __m512i t = _mm512_and_si512(h, _mm512_set1_epi32(0xF));
  return _mm512_slli_epi32(_mm512_and_si512(_mm512_mullo_epi32(t, _mm512_set1_epi32(0x00204081)),
                                            _mm512_set1_epi32(0x01010101)),
                           4);
}

// The 16 rows' block j (at b, rows stride apart) as unsigned levels lv[8], scales d and mins m.
template <class L>
SLM_VNNI inline void unpack16(const unsigned char* b, size_t stride, __m512i lv[8], __m512& d, __m512& m) {
  d = halves16(b + L::kD, stride);
  if constexpr (L::kM >= 0) m = halves16(b + L::kM, stride);
  transpose16x4(b + L::kQs, stride, lv);
  if constexpr (L::kQ8) {
    transpose16x4(b + L::kQs + 16, stride, lv + 4);
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    #pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) lv[g] = _mm512_xor_si512(lv[g], flip);
  } else {
    // Nibbles: byte k of qs holds level k (low) and level k + 16 (high).
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512i qh = _mm512_setzero_si512();
    if constexpr (L::kQh >= 0) qh = dwords16(b + L::kQh, stride);
    #pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
      const __m512i q = lv[g];
      lv[g] = _mm512_and_si512(q, low4);
      lv[g + 4] = _mm512_and_si512(_mm512_srli_epi32(q, 4), low4);
      if constexpr (L::kQh >= 0) {
        lv[g] = _mm512_or_si512(lv[g], spread_high_bits(_mm512_srli_epi32(qh, 4 * g)));
        lv[g + 4] = _mm512_or_si512(lv[g + 4], spread_high_bits(_mm512_srli_epi32(qh, 16 + 4 * g)));
      }
    }
  }
}

// One activation row (decode): the same arithmetic as tile16<1> straight from the unpacked
// registers, without the round trip through the buffer; y[r] for the 16 rows.
template <class L>
SLM_VNNI void decode16(const unsigned char* row0, size_t stride, int64_t nb, const ActQ8* x, float* y) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < nb; ++j) {
    prefetch_next16(row0, stride, j, L::kBytes);
    __m512i lv[8];
    __m512 d, m = _mm512_setzero_ps();
    unpack16<L>(row0 + static_cast<size_t>(j) * L::kBytes, stride, lv, d, m);
    __m512i s = _mm512_set1_epi32(-L::kOffset * x[j].sum);
    #pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      int32_t four;
      std::memcpy(&four, x[j].qs + 4 * g, 4);
      s = _mm512_dpbusd_epi32(s, lv[g], _mm512_set1_epi32(four));
    }
    acc = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(x[j].d)), _mm512_cvtepi32_ps(s), acc);
    if constexpr (L::kM >= 0) acc = _mm512_fmadd_ps(m, _mm512_set1_ps(x[j].s), acc);
  }
  _mm512_storeu_ps(y, acc);
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
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

namespace {

// The legacy type L for run_groups16 (interleave16.h).
template <class L>
struct LegacyKernel {
  using Packed = Packed16;
  using Act = ActQ8;
  static constexpr int kMaxX = kMaxXLegacy;
  static constexpr int64_t kBlockValues = kQK;
  static constexpr size_t kBytes = L::kBytes;
  SLM_VNNI static void pack(const unsigned char* b, size_t stride, Packed16& p) {
    __m512i lv[8];
    __m512 d, m = _mm512_setzero_ps();
    unpack16<L>(b, stride, lv, d, m);
    _mm512_store_ps(p.d, d);
    if constexpr (L::kM >= 0) _mm512_store_ps(p.m, m);
    #pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) _mm512_store_si512(p.lv[g], lv[g]);
  }
  static void pass(int nx, const Packed16* p, int64_t nb, const ActQ8* const* x, float* y, int64_t ldy) {
    tile_fn<(L::kM >= 0)>(nx)(p, nb, x, L::kOffset, y, ldy);
  }
};

template <class L>
int64_t rows_interleaved(const MatmulTask& t, int64_t r0, int64_t r1) {
  if (t.m > 1) return run_groups16<LegacyKernel<L>>(t, r0, r1);
  const size_t stride = t.w.row_stride();
  const unsigned char* base = static_cast<const unsigned char*>(t.w.data);
  const int64_t end = r0 + (r1 - r0) / kRows * kRows;
  for (int64_t r = r0; r < end; r += kRows)
    decode16<L>(base + static_cast<size_t>(r) * stride, stride, t.w.cols / kQK, static_cast<const ActQ8*>(t.x), t.y + r);
  return end;
}

}  // namespace

int64_t matmul_rows_interleaved_vnni(const MatmulTask& t, int64_t r0, int64_t r1) {
  switch (t.w.type) {
    case DType::Q4_0: return rows_interleaved<LayoutQ4_0>(t, r0, r1);
    case DType::Q4_1: return rows_interleaved<LayoutQ4_1>(t, r0, r1);
    case DType::Q5_0: return rows_interleaved<LayoutQ5_0>(t, r0, r1);
    case DType::Q5_1: return rows_interleaved<LayoutQ5_1>(t, r0, r1);
    case DType::Q8_0: return rows_interleaved<LayoutQ8_0>(t, r0, r1);
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return matmul_rows_interleaved_k_vnni(t, r0, r1);
    default: return r0;  // not a type of these kernels: the caller does every row
  }
}

}  // namespace slm
