// Internal to core/avx2/: reading 16 weight rows at once with the rows across the lanes of a
// 512-bit vector (lane r = row r), for the interleaved VNNI kernels of legacy quants
// (matmul_interleaved_vnni.cpp) and K-quants (matmul_interleaved_k_vnni.cpp).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#define SLM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// GCC 12's AVX-512 intrinsics pass an "undefined" (self-initialized) vector as the unused merge
// operand, which -W(maybe-)uninitialized reports at every use; the values are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace slm {
namespace interleave16 {

constexpr int kRows = 16;  // weight rows read together: one per 32-bit lane of a zmm

// One small field (scale, min: 2 bytes; qh: 4 bytes) of the 16 rows, lane r = row r. Scalar loads
// through a stack array: a 16-lane gather cost a third of the repacking.
template <class T>
SLM_VNNI inline __m512i field16(const unsigned char* p, size_t stride) {
  alignas(64) T v[kRows];
  #pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) std::memcpy(&v[r], p + r * stride, sizeof(T));
  if constexpr (sizeof(T) == 2) return _mm512_cvtepu16_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(v)));
  else return _mm512_load_si512(v);
}

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

}  // namespace interleave16
}  // namespace slm
