// Internal to core/avx2/: reading 16 weight rows at once with the rows across the lanes of a
// 512-bit vector (lane r = row r), for the interleaved VNNI kernels of legacy quants
// (matmul_interleaved_vnni.cpp) and K-quants (matmul_interleaved_k_vnni.cpp).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/matmul_kernels.h"

#define SLM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// GCC 12's AVX-512 intrinsics pass an "undefined" (self-initialized) vector as the unused merge
// operand, which -W(maybe-)uninitialized reports at every use; the values are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace slm {
namespace interleave16 {

constexpr int kRows = 16;  // weight rows read together: one per 32-bit lane of a zmm

// A 4-byte field (the qh bits of a Q5 block) of the 16 rows, lane r = row r. Scalar loads through
// a stack array, here and in halves16: a 16-lane gather cost a third of the repacking.
SLM_VNNI inline __m512i dwords16(const unsigned char* p, size_t stride) {
  alignas(64) uint32_t v[kRows];
  #pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) std::memcpy(&v[r], p + r * stride, 4);
  return _mm512_load_si512(v);
}

// A 2-byte half-precision field (scale, min) of the 16 rows as floats.
SLM_VNNI inline __m512 halves16(const unsigned char* p, size_t stride) {
  alignas(32) uint16_t v[kRows];
  #pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) std::memcpy(&v[r], p + r * stride, 2);
  return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(v)));
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

// The 16 rows are one contiguous region read as 16 interleaved streams, which the hardware
// prefetcher follows late (a matrix larger than the caches was read at 11 instead of 15 GB/s): at
// block j, fetch block j's share of the next 16 rows (16 * block_bytes bytes). Prefetches never fault,
// so the region after the last rows needs no check.
inline void prefetch_next16(const unsigned char* row0, size_t stride, int64_t j, size_t block_bytes) {
  const unsigned char* next = row0 + kRows * stride + static_cast<size_t>(j) * kRows * block_bytes;
  #pragma GCC unroll 16
  for (size_t off = 0; off < kRows * block_bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(next + off), _MM_HINT_T0);
}

// The shared loop of the interleaved kernels over the 16-row groups of [r0, r1) (the largest
// multiple of 16 rows from r0; returns its end, the caller does the rest). Each group is repacked
// once into a per-thread buffer (K::pack on each block, with the next group prefetched), then
// multiplied with the activation rows in passes of at most K::kMaxX (K::pass). K describes a
// type: Packed (one repacked block of 16 rows), Act (activation block), kMaxX, kBlockValues,
// kBytes (bytes of one weight block), pack(block of row 0, stride, Packed&) and
// pass(nx, packed, nb, activation rows, y, ldy).
template <class K>
SLM_VNNI int64_t run_groups16(const MatmulTask& t, int64_t r0, int64_t r1) {
  const int64_t nb = t.w.cols / K::kBlockValues;
  const size_t stride = t.w.row_stride();
  const unsigned char* base = static_cast<const unsigned char*>(t.w.data);
  const unsigned char* x = static_cast<const unsigned char*>(t.x);
  thread_local std::vector<typename K::Packed> packed;
  if (packed.size() < static_cast<size_t>(nb)) packed.resize(static_cast<size_t>(nb));
  const int64_t end = r0 + (r1 - r0) / kRows * kRows;
  for (int64_t r = r0; r < end; r += kRows) {
    const unsigned char* row0 = base + static_cast<size_t>(r) * stride;
    for (int64_t j = 0; j < nb; ++j) {
      prefetch_next16(row0, stride, j, K::kBytes);
      K::pack(row0 + static_cast<size_t>(j) * K::kBytes, stride, packed[static_cast<size_t>(j)]);
    }
    for (int64_t i = 0; i < t.m; i += K::kMaxX) {
      const int nx = static_cast<int>(std::min<int64_t>(K::kMaxX, t.m - i));
      const typename K::Act* xr[K::kMaxX];
      for (int c = 0; c < nx; ++c) xr[c] = reinterpret_cast<const typename K::Act*>(x + (i + c) * t.x_stride);
      K::pass(nx, packed.data(), nb, xr, t.y + i * t.w.rows + r, t.w.rows);
    }
  }
  return end;
}

}  // namespace interleave16
}  // namespace slm
