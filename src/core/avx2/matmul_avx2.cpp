// AVX2/FMA/F16C row kernels (compiled with -mavx2 -mfma -mf16c; called only when use_avx2()).
// Float weights: a register-blocked dot-product micro-kernel, NR weight rows x NX activation rows
// per pass (3 x 4 for prefill: 12 accumulators + 3 weight vectors + 1 activation = 16 registers);
// decode (m = 1) takes one row after the other (one sequential stream for the hardware
// prefetcher; long F32 rows with AVX-512: 8 at a time), with each row's sum bit for bit the one
// the prefill tiles give it.
// Where the CPU has AVX-512F (use_avx512f()), prefill takes 4 x 6 tiles on 512-bit vectors instead
// (float_block_zmm, functions marked SLM_AVX512F).
// Quantized weights: each weight block is unpacked once into bytes and multiplied with up to 4
// activation rows by _mm256_maddubs_epi16 (unsigned weight levels x signed 8-bit activations) and
// _mm256_madd_epi16; offsets (-8, -16, -32) and mins are applied through the activation block
// sums, so the inner loops never subtract.
// Where the CPU has AVX-512 VNNI (use_avx512_vnni()), functions marked SLM_VNNI replace the legacy
// and Q8_0 kernels: vpdpbusd does maddubs + madd in one instruction, Q4_0 / Q8_0 take two blocks
// per 512-bit vector, and the 32 registers allow 4 x 4 prefill tiles and 8-row decode.
// With VNNI, legacy quants go to the row-interleaved kernels of matmul_interleaved_vnni.cpp instead
// (prefill 3-5x, decode 1.2-1.9x faster); the block-per-lane kernels here serve the rows those
// leave over (fewer than 16 at the end of the matrix) and CPUs without VNNI.
// Loop order for prefill: weight rows in tiles of about 64 KiB (stay in L2) x activation rows in
// groups of 4 (stay in L1) x rows of the tile, so each weight byte is read from memory once per call.
// The AVX-512 float path prefetches its weight rows two blocks ahead: a product of a few rows
// (speculative verification, m = 2..8) is otherwise memory-bound and compute-bound in turn.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/cpu.h"
#include "core/fp16.h"
#include "core/matmul_kernels.h"
#include "core/quant.h"

namespace slm {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// Four horizontal sums at once: {sum a[0], sum a[1], sum a[2], sum a[3]}.
inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// ---------------------------------------------------------------------------------------------
// Activation quantization (bit-identical to quantize_act_scalar: same d, 1/d, x * (1/d), and
// round-half-even conversion).

// 32 floats times id, rounded, packed to 32 int8 in order; also returns the 4 int32 vectors.
inline __m256i round_pack32(const float* x, __m256 id, __m256i v[4]) {
  #pragma GCC unroll 16
  for (int k = 0; k < 4; ++k) v[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id));
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline float absmax(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---------------------------------------------------------------------------------------------
// Float weights.

struct LoadF32 {
  using T = float;
  static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static float load1(const float* p) { return *p; }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float load1(const uint16_t* p) { return half(*p); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 load8(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static float load1(const uint16_t* p) { return bf16_to_fp32(*p); }
};

// One 8-column step of a tile: acc[i][r] += w[r][c..c+8) * x[i][c..c+8). XL loads the
// activations: LoadF32, or LoadF16 for the halves of F16 decode (ActKind::F16).
template <class L, int NR, int NX, class XL = LoadF32>
inline void ymm_step(const typename L::T* const* w, const typename XL::T* const* x, int64_t c,
                     __m256 (&acc)[NX][NR]) {
  __m256 wv[NR];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) wv[r] = L::load8(w[r] + c);
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
    const __m256 xv = XL::load8(x[i] + c);
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_fmadd_ps(wv[r], xv, acc[i][r]);
  }
}

// y[i * ldy + r] = dot(w[r], x[i]) for r < NR, i < NX, in one order whatever the tile (as
// float_block_zmm below, on 8-column steps): F16 / BF16 in two chains (even and odd steps,
// added), F32 in one; then the scalar rest. Decode (1 x 1) runs both chains in one loop; prefill
// tiles (3 x 4: 12 accumulators of the 16 registers) in two passes per 512-column chunk.
template <class L, int NR, int NX, class XL = LoadF32>
void float_block(const typename L::T* const* w, const typename XL::T* const* x, int64_t cols, float* y,
                 int64_t ldy) {
  constexpr bool kTwoChains = sizeof(typename L::T) == 2;
  const int64_t steps = cols / 8;
  __m256 acc[NX][NR];
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_setzero_ps();
  if constexpr (!kTwoChains) {
    for (int64_t s = 0; s < steps; ++s) ymm_step<L, NR, NX, XL>(w, x, 8 * s, acc);
  } else if constexpr (2 * NR * NX <= 8) {
    __m256 odd[NX][NR];
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i)
      #pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) odd[i][r] = _mm256_setzero_ps();
    int64_t s = 0;
    for (; s + 2 <= steps; s += 2) {
      ymm_step<L, NR, NX, XL>(w, x, 8 * s, acc);
      ymm_step<L, NR, NX, XL>(w, x, 8 * s + 8, odd);
    }
    if (s < steps) ymm_step<L, NR, NX, XL>(w, x, 8 * s, acc);
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i)
      #pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_add_ps(acc[i][r], odd[i][r]);
  } else {
    constexpr int64_t kChunk = 64;  // steps: 512 columns; even, so a chunk starts on an even step
    alignas(32) float even[NX][NR][8] = {}, odd[NX][NR][8] = {};
    auto run = [&](float (&buf)[NX][NR][8], int64_t s, int64_t s1) {
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i)
        #pragma GCC unroll 16
        for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_load_ps(buf[i][r]);
      for (; s < s1; s += 2) ymm_step<L, NR, NX, XL>(w, x, 8 * s, acc);
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i)
        #pragma GCC unroll 16
        for (int r = 0; r < NR; ++r) _mm256_store_ps(buf[i][r], acc[i][r]);
    };
    for (int64_t s0 = 0; s0 < steps; s0 += kChunk) {
      const int64_t s1 = std::min(steps, s0 + kChunk);
      run(even, s0, s1);
      run(odd, s0 + 1, s1);
    }
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i)
      #pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_add_ps(_mm256_load_ps(even[i][r]), _mm256_load_ps(odd[i][r]));
  }
  const int64_t c = 8 * steps;
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      float s = hsum(acc[i][r]);
      for (int64_t k = c; k < cols; ++k) s += L::load1(w[r] + k) * XL::load1(x[i] + k);
      y[i * ldy + r] = s;
    }
  }
}

template <class L, class XL = LoadF32>
using FloatBlockFn = void (*)(const typename L::T* const*, const typename XL::T* const*, int64_t, float*, int64_t);

template <class L, int NR, class XL = LoadF32>
FloatBlockFn<L, XL> float_block_nx(int nx) {
  switch (nx) {
    case 1: return float_block<L, NR, 1, XL>;
    case 2: return float_block<L, NR, 2, XL>;
    case 3: return float_block<L, NR, 3, XL>;
    default: return float_block<L, NR, 4, XL>;
  }
}

template <class L, class XL = LoadF32>
FloatBlockFn<L, XL> float_block_fn(int nr, int nx) {
  switch (nr) {
    case 1: return float_block_nx<L, 1, XL>(nx);
    case 2: return float_block_nx<L, 2, XL>(nx);
    case 3: return float_block_nx<L, 3, XL>(nx);
    default: return float_block_nx<L, 4, XL>(nx);
  }
}

// Prefill with AVX-512F (only called when use_avx512f()): the same dot-product tiles on 512-bit
// vectors, 4 weight rows x up to 6 activation rows (24 accumulators + 4 weight vectors + 1
// activation = 29 of the 32 zmm registers), so each 16-column step does 24 FMAs for 10 loads
// (F16 / BF16: in two passes, one per chain of float_block_zmm's fixed order; 4 x 3 tiles of
// both chains in one pass were 10-40% slower).
// Columns past the last multiple of 16 take one 8-wide step (zero-extended into the zmm
// accumulators) and then scalar products, as the AVX2 kernel does.
#define SLM_AVX512F __attribute__((target("avx512f")))
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() (a self-initialized variable) as the
// unused merge operand, which -Wuninitialized reports at every use; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// 8 halves in the low 128 bits, zeros above (they convert to +0.0f).
inline __m256i lo8(const uint16_t* p) {
  return _mm256_inserti128_si256(_mm256_setzero_si256(), _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), 0);
}

// load16: 16 weights as floats; load8z: 8 weights in the low lanes, zeros above.
template <class L>
struct Zmm;
template <>
struct Zmm<LoadF32> {
  SLM_AVX512F static __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
  SLM_AVX512F static __m512 load8z(const float* p) { return _mm512_maskz_loadu_ps(0xff, p); }
};
template <>
struct Zmm<LoadF16> {
  SLM_AVX512F static __m512 load16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  SLM_AVX512F static __m512 load8z(const uint16_t* p) { return _mm512_cvtph_ps(lo8(p)); }
};
template <>
struct Zmm<LoadBF16> {
  SLM_AVX512F static __m512 load16(const uint16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  SLM_AVX512F static __m512 load8z(const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(lo8(p)), 16));
  }
};

// One 16-column step of a tile: acc[i][r] += w[r][c..c+16) * x[i][c..c+16) (XL as in ymm_step).
template <class L, int NR, int NX, class XL = LoadF32>
SLM_AVX512F inline void zmm_step(const typename L::T* const* w, const typename XL::T* const* x, int64_t c,
                                 __m512 (&acc)[NX][NR]) {
  __m512 wv[NR];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) wv[r] = Zmm<L>::load16(w[r] + c);
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
    const __m512 xv = Zmm<XL>::load16(x[i] + c);
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_fmadd_ps(wv[r], xv, acc[i][r]);
  }
}

template <int NR, int NX>
SLM_AVX512F inline void zmm_zero(__m512 (&acc)[NX][NR]) {
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
}

template <int NR, int NX>
SLM_AVX512F inline void zmm_store(float (&buf)[NX][NR][16], const __m512 (&acc)[NX][NR]) {
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) _mm512_store_ps(buf[i][r], acc[i][r]);
}

template <int NR, int NX>
SLM_AVX512F inline void zmm_load(__m512 (&acc)[NX][NR], const float (&buf)[NX][NR][16]) {
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_load_ps(buf[i][r]);
}

// y[i * ldy + r] = dot(w[r], x[i]) for r < NR, i < NX.
// Every (row, activation row) pair sums in one order, whatever the tile: for F16 / BF16 two
// accumulators, one over the even 16-column steps and one over the odd ones, added (F32: one);
// then the 8-column step and the scalar rest. Two chains, because one chain of FMAs (4 cycles
// each) over a long row holds decode to 32 bytes of F16 weights per 4 cycles, below what one
// core streams from memory (q500m's 4864-column rows: 21.6 -> 28.2 GB/s in a one-row-at-a-time
// loop over the bench file). Small tiles (decode) run both chains in one loop; large ones
// (prefill: 4 x 6 tiles, 24 accumulators) take the even steps, then the odd ones, in two passes.
// pf != 0: also prefetch (into L2), spread over the steps, as many bytes as the block reads,
// from address pf on (stopping at end): the caller points it at the block it will read two
// blocks later.
template <class L, int NR, int NX, class XL = LoadF32>
SLM_AVX512F void float_block_zmm(const typename L::T* const* w, const typename XL::T* const* x, int64_t cols,
                                 float* y, int64_t ldy, uintptr_t pf, uintptr_t end) {
  constexpr int kStep = NR * 16 * static_cast<int>(sizeof(typename L::T));  // weight bytes per step
  const bool prefetch = pf != 0;
  auto fetch_step = [&] {  // a step's worth of bytes, so a whole block over the block's steps
    if (!prefetch) return;
    #pragma GCC unroll 16
    for (int k = 0; k < kStep; k += 64)
      if (pf + k < end) _mm_prefetch(reinterpret_cast<const char*>(pf + k), _MM_HINT_T1);
    pf += kStep;
  };
  // F32 keeps one chain: its decode reads 8 rows at a time (8 chains), and its prefill tiles
  // were 10% slower in two passes (a chunk's 4 weight and 6 activation rows of 64 full lines
  // each do not stay in L1 between the passes).
  constexpr bool kTwoChains = sizeof(typename L::T) == 2;
  const int64_t steps = cols / 16;
  __m512 acc[NX][NR];
  zmm_zero<NR, NX>(acc);
  if constexpr (!kTwoChains) {
    for (int64_t s = 0; s < steps; ++s) {
      fetch_step();
      zmm_step<L, NR, NX, XL>(w, x, 16 * s, acc);
    }
  } else if constexpr (2 * NR * NX <= 16) {
    __m512 odd[NX][NR];
    zmm_zero<NR, NX>(odd);
    int64_t s = 0;
    for (; s + 2 <= steps; s += 2) {
      fetch_step();
      zmm_step<L, NR, NX, XL>(w, x, 16 * s, acc);
      fetch_step();
      zmm_step<L, NR, NX, XL>(w, x, 16 * s + 16, odd);
    }
    if (s < steps) {
      fetch_step();
      zmm_step<L, NR, NX, XL>(w, x, 16 * s, acc);
    }
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i)
      #pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_add_ps(acc[i][r], odd[i][r]);
  } else {
    // Both chains kept in memory between chunks of 32 steps (512 columns), each chunk read in
    // two passes: the activation and weight rows of a chunk (16 KiB for 6 x 512 floats and 4
    // x 512 halves) stay in L1 for the second pass. matmul_bench, q500m's down projection
    // ([896 x 4864] F16, m128, GFLOP/s): one chain in one pass 135-152; two passes over whole
    // rows 116; chunks of 128 steps 74, 64 steps 91-116, 32 steps 141-146.
    // The prefetches go on through both passes: the first pass, which brings the block in,
    // would otherwise also have to wait for the next blocks' bytes with half the FMAs to hide it.
    constexpr int64_t kChunk = 32;  // even, so a chunk's first step is an even one
    alignas(64) float even[NX][NR][16], odd[NX][NR][16];
    zmm_store<NR, NX>(even, acc);
    zmm_store<NR, NX>(odd, acc);
    for (int64_t s0 = 0; s0 < steps; s0 += kChunk) {
      const int64_t s1 = std::min(steps, s0 + kChunk);
      zmm_load<NR, NX>(acc, even);
      for (int64_t s = s0; s < s1; s += 2) {
        fetch_step();
        zmm_step<L, NR, NX, XL>(w, x, 16 * s, acc);
      }
      zmm_store<NR, NX>(even, acc);
      zmm_load<NR, NX>(acc, odd);
      for (int64_t s = s0 + 1; s < s1; s += 2) {
        fetch_step();
        zmm_step<L, NR, NX, XL>(w, x, 16 * s, acc);
      }
      zmm_store<NR, NX>(odd, acc);
    }
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i)
      #pragma GCC unroll 16
      for (int r = 0; r < NR; ++r)
        acc[i][r] = _mm512_add_ps(_mm512_load_ps(even[i][r]), _mm512_load_ps(odd[i][r]));
  }
  int64_t c = 16 * steps;
  if (c + 8 <= cols) {
    __m512 wv[NR];
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) wv[r] = Zmm<L>::load8z(w[r] + c);
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      const __m512 xv = Zmm<XL>::load8z(x[i] + c);
      #pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_fmadd_ps(wv[r], xv, acc[i][r]);
    }
    c += 8;
  }
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
    __m256 h[NR];
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r)  // low + high 256 bits (the shuffle swaps the halves)
      h[r] = _mm512_castps512_ps256(_mm512_add_ps(acc[i][r], _mm512_shuffle_f32x4(acc[i][r], acc[i][r], 0x4e)));
    float s[NR];
    // Every row in hsum4's order, also the last rows of a matrix (NR < 4), so that a row's sum
    // does not depend on the kernel that computed it (float_decode_seq uses the same order).
    if constexpr (NR % 4 == 0) {
      #pragma GCC unroll 4
      for (int r = 0; r < NR; r += 4) _mm_storeu_ps(s + r, hsum4(h[r], h[r + 1], h[r + 2], h[r + 3]));
    } else {
      #pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) s[r] = _mm_cvtss_f32(hsum4(h[r], h[r], h[r], h[r]));
    }
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      for (int64_t k = c; k < cols; ++k) s[r] += L::load1(w[r] + k) * XL::load1(x[i] + k);
      y[i * ldy + r] = s[r];
    }
  }
}

template <class L, class XL = LoadF32>
using ZmmBlockFn = void (*)(const typename L::T* const*, const typename XL::T* const*, int64_t, float*, int64_t, uintptr_t,
                            uintptr_t);

template <class L, int NR, class XL = LoadF32>
ZmmBlockFn<L, XL> float_block_zmm_nx(int nx) {
  switch (nx) {
    case 1: return float_block_zmm<L, NR, 1, XL>;
    case 2: return float_block_zmm<L, NR, 2, XL>;
    case 3: return float_block_zmm<L, NR, 3, XL>;
    case 4: return float_block_zmm<L, NR, 4, XL>;
    case 5: return float_block_zmm<L, NR, 5, XL>;
    default: return float_block_zmm<L, NR, 6, XL>;
  }
}

template <class L, class XL = LoadF32>
ZmmBlockFn<L, XL> float_block_zmm_fn(int nr, int nx) {
  switch (nr) {
    case 1: return float_block_zmm_nx<L, 1, XL>(nx);
    case 2: return float_block_zmm_nx<L, 2, XL>(nx);
    case 3: return float_block_zmm_nx<L, 3, XL>(nx);
    default: return float_block_zmm_nx<L, 4, XL>(nx);
  }
}

#pragma GCC diagnostic pop

// Decode of short F32 rows, row after row: fetch (into L1) the row's bytes kDecodeAhead
// further on, stopping at end (the thread's last row). The hardware prefetcher alone fell behind
// on s15m's 288-column rows (one cache line in 18 ends a row): a bare loop over its output head
// (32000 x 288 F32, 1 thread, medians of 30 passes) read 32-36 GB/s without, 41-43 with 8-24 KiB
// ahead, 39-40 at 64 KiB. Elsewhere it gained nothing or cost time, so only these rows take it:
// longer F32 rows (the 8-row kernel, s110m / q500m: level to -10%), F16 rows (s110m 1 thread:
// -17%), and the AVX2 kernel's rows (8-column steps, SLM_NO_AVX512=1: s15m F32 decode -22%).
constexpr size_t kDecodeAhead = 12 << 10;
inline void prefetch_row_ahead(const void* row, size_t row_bytes, uintptr_t end) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(row) + kDecodeAhead;
  for (size_t k = 0; k < row_bytes && p + k < end; k += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + k), _MM_HINT_T0);
}

// Decode (m = 1) of F16 / BF16 rows (and short F32 rows) on AVX-512: one row after the other
// (float_block_zmm with one row and one activation row, so a row's sum is bit for bit the one it
// has in a product of several rows). The thread's rows are then one sequential stream, which the
// hardware prefetcher follows without software prefetches, where the former kernel's 4
// interleaved row streams (with prefetches into L2, 16 columns a step, 8 accumulators) fell behind
// on Zen 5. Alternating decode steps in one process (medians, ms per token, F16 bench models):
// s110m 10.7 -> 8.9 at 1 thread, 5.8 -> 4.6 at 2; q500m 37.0 -> 32.5; s15m 1.05 -> 0.91.
// F16 / BF16 rows take float_block_zmm's two chains (even and odd steps); with one, rows
// overlapped in the out-of-order window only while they were short, and matmul_bench decode
// (m1, 1 thread) was 28 GB/s of F16 weights on [4864 x 896] and [896 x 4864], now 47-50.
template <class L, class XL>
SLM_AVX512F void float_decode_seq(const typename L::T* w, const typename XL::T* x, int64_t cols, int64_t nrows,
                                  float* y) {
  const typename XL::T* xr[1] = {x};
  const size_t row_bytes = static_cast<size_t>(cols) * sizeof(typename L::T);
  const uintptr_t end = reinterpret_cast<uintptr_t>(w) + static_cast<size_t>(nrows) * row_bytes;
  for (int64_t r = 0; r < nrows; ++r) {
    const typename L::T* wr[1] = {w + r * cols};
    if constexpr (std::is_same_v<L, LoadF32>) prefetch_row_ahead(wr[0], row_bytes, end);
    float_block_zmm<L, 1, 1, XL>(wr, xr, cols, y + r, 1, 0, 0);
  }
}

template <class L>
void rows_float(const MatmulTask& t, int64_t r0, int64_t r1) {
  using T = typename L::T;
  const int64_t cols = t.w.cols, rows = t.w.rows, m = t.m;
  const T* base = static_cast<const T*>(t.w.data);
  // The activations: halves for F16 weights (ActKind::F16), floats otherwise.
  using XL = std::conditional_t<std::is_same_v<L, LoadF16>, LoadF16, LoadF32>;
  using XT = typename XL::T;
  const XT* x = static_cast<const XT*>(t.x);
  if (m == 1) {
    // Every decode kernel gives a row the sum, bit for bit, that the prefill kernels give it (the
    // same accumulation and reduction order), so that a product of several rows (speculative
    // verification, batched decoding) equals the rows' own decode steps.
    if (!use_avx512f()) {
      // AVX2: row after row, in float_block's chains (F16 / BF16: two). On this Zen 5 with
      // AVX-512 switched off, alternating decode steps: F32 9-10% faster and F16 level (1-4%
      // slower) than 4 interleaved rows with 8 accumulators and prefetches, which did not give the
      // prefill tiles' sums; 4 interleaved rows with one accumulator each were 1.3-2x slower.
      // Two chains for F16 (SLM_NO_AVX512=1 matmul_bench m1, GFLOP/s): [4864 x 896] 21 -> 37,
      // [896 x 4864] 14 -> 27, [32000 x 768] 21 -> 35; prefill (m128) level to -7%.
      const XT* xr[1] = {x};
      for (int64_t r = r0; r < r1; ++r) {
        const T* wr[1] = {base + r * cols};
        float_block<L, 1, 1, XL>(wr, xr, cols, t.y + r, 1);
      }
      return;
    }
    int64_t r = r0;
    if constexpr (std::is_same_v<L, LoadF32>) {
      // F32 rows of 512 columns or more: 8 rows at a time, 512-bit loads, no software prefetch:
      // 8 row streams of full-line loads keep up with the hardware prefetcher for long F32 rows
      // (alternating decode steps: s110m F32 19.5 / 23.1 vs 23.1 / 23.5 ms per token at 1 thread
      // against the former 4-row kernel, 9.4 / 9.6 vs 10.4 / 10.6 at 2; row after row was level on
      // s110m and 3-6% slower on q500m). Shorter rows (s15m: its 32000 x 288 output head and the
      // 288-column projections) go row after row: s15m F32 decode 2.6 -> 2.2 ms per token at 1
      // thread, level at 2.
      if (cols >= 512) {
        const float* xr[1] = {x};
        for (; r + 8 <= r1; r += 8) {
          const float* wr[8];
          for (int k = 0; k < 8; ++k) wr[k] = base + (r + k) * cols;
          float_block_zmm<L, 8, 1>(wr, xr, cols, t.y + r, 1, 0, 0);
        }
      }
    }
    float_decode_seq<L, XL>(base + r * cols, x, cols, r1 - r, t.y + r);
    return;
  }
  // AVX2: 3 weight rows x 4 activation rows; AVX-512F: 4 x 6 (see float_block_zmm).
  const bool zmm = use_avx512f();
  const int max_nr = zmm ? 4 : 3, max_nx = zmm ? 6 : 4;
  const size_t row_bytes = static_cast<size_t>(cols) * sizeof(T);
  // Tiles of about 256 KiB of weight rows, which stay in a 1 MiB L2 beside the activation rows
  // that every tile reads again. Larger tiles mean fewer passes over the activations: with 64 KiB,
  // a 128-token prefill of [896 x 4864] F16 (4 rows a tile) streamed its 2.5 MB of activations
  // from L3 once per 4 weight rows, and q500m F16/F32 prefill at 2 threads was 10-20% slower
  // (slm bench, alternating runs). A whole number of max_nr-row blocks per tile, so that only
  // the thread's last tile has a narrower (slower) block.
  const int64_t tile =
      std::max<int64_t>(1, static_cast<int64_t>((256 << 10) / std::max<size_t>(row_bytes, 1)) / max_nr) * max_nr;
  // Prefetch (AVX-512 path): a block that is about to stream from memory is fetched two blocks
  // ahead, so that the few-row products of speculative verification and short prefills overlap
  // the weight stream with their FMAs (without it they wait for memory, then compute). Only the
  // first activation group of a tile reads the tile from memory; later groups find it in L2.
  const uintptr_t at = reinterpret_cast<uintptr_t>(base), wrow = static_cast<uintptr_t>(row_bytes);
  const uintptr_t end = at + static_cast<uintptr_t>(r1) * wrow;
  // Activation rows in equal groups of at most max_nx (8 rows: 4 + 4, not 6 + 2, whose narrow
  // second pass does few FMAs per weight load). A row's sums do not depend on its group's size.
  const int64_t groups = (m + max_nx - 1) / max_nx, gx = (m + groups - 1) / groups;
  for (int64_t rt = r0; rt < r1; rt += tile) {
    const int64_t re = std::min(r1, rt + tile);
    for (int64_t i = 0; i < m; i += gx) {
      const int nx = static_cast<int>(std::min<int64_t>(gx, m - i));
      const XT* xr[6];
      for (int k = 0; k < nx; ++k) xr[k] = x + (i + k) * cols;
      for (int64_t r = rt; r < re; r += max_nr) {
        const int nr = static_cast<int>(std::min<int64_t>(max_nr, re - r));
        const T* wr[4];
        for (int k = 0; k < nr; ++k) wr[k] = base + (r + k) * cols;
        if (zmm) {
          const uintptr_t pf = i == 0 && nr == max_nr ? at + static_cast<uintptr_t>(r + 2 * max_nr) * wrow : 0;
          float_block_zmm_fn<L, XL>(nr, nx)(wr, xr, cols, t.y + i * rows + r, rows, pf, end);
        } else {
          float_block_fn<L, XL>(nr, nx)(wr, xr, cols, t.y + i * rows + r, rows);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Quantized weights. Every kernel is dot<NR, NX>(NR weight rows, NX activation rows, blocks per
// row, out[NX * NR]): decode uses NR = 4 (8 with VNNI), NX = 1 (independent accumulator chains,
// each activation block loaded once for all rows); prefill uses tiles of NR = 2 (4 with VNNI)
// x NX = 4 for legacy quants and Q8_0 (each weight block unpacked once for four activation rows,
// each activation block loaded once for the NR rows), NR = 1 x NX = 4 for K-quants and leftovers.


template <int NR, int NX>
inline void store_sums(const __m256 (&acc)[NX][NR], const float (&extra)[NX][NR], float* out) {
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
    if constexpr (NR % 4 == 0) {
      #pragma GCC unroll 16
      for (int r = 0; r < NR; r += 4) {
        const __m128 s = hsum4(acc[i][r], acc[i][r + 1], acc[i][r + 2], acc[i][r + 3]);
        _mm_storeu_ps(out + NR * i + r, _mm_add_ps(s, _mm_loadu_ps(extra[i] + r)));
      }
    } else {
      #pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) out[i * NR + r] = hsum(acc[i][r]) + extra[i][r];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Legacy quants x ActQ8.

inline __m256i nibbles32(const uint8_t* qs) {  // bytes 0..15 = low nibbles, 16..31 = high nibbles
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

// Byte j = 0x10 where bit j of qh is set (the fifth bit of value j of a Q5 block).
inline __m256i high_bits32(const uint8_t* qh4) {
  uint32_t bits;
  std::memcpy(&bits, qh4, 4);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i mask = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, mask), mask), _mm256_set1_epi8(0x10));
}

inline __m256i dot_u8_i8(__m256i u, const int8_t* s) {  // 8 int32 lanes summing u * s
  const __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// Levels of one legacy block as unsigned bytes plus its float scale / min.
struct Q4_0K {
  using B = BlockQ4_0;
  static constexpr int kOffsetTimes8 = 1;  // offset 8 = 8 lanes x sum
  static constexpr bool kMin = false;
  static __m256i levels(const B& b) { return nibbles32(b.qs); }
  static float min(const B&) { return 0; }
};
struct Q4_1K {
  using B = BlockQ4_1;
  static constexpr int kOffsetTimes8 = 0;
  static constexpr bool kMin = true;
  static __m256i levels(const B& b) { return nibbles32(b.qs); }
  static float min(const B& b) { return half(b.m); }
};
struct Q5_0K {
  using B = BlockQ5_0;
  static constexpr int kOffsetTimes8 = 2;  // offset 16
  static constexpr bool kMin = false;
  static __m256i levels(const B& b) { return _mm256_or_si256(nibbles32(b.qs), high_bits32(b.qh)); }
  static float min(const B&) { return 0; }
};
struct Q5_1K {
  using B = BlockQ5_1;
  static constexpr int kOffsetTimes8 = 0;
  static constexpr bool kMin = true;
  static __m256i levels(const B& b) { return _mm256_or_si256(nibbles32(b.qs), high_bits32(b.qh)); }
  static float min(const B& b) { return half(b.m); }
};


template <class K, int NR, int NX>
void dot_legacy(const void* const* wrows, const void* const* xrows, int64_t nb, float* out) {
  using B = typename K::B;
  const B* w[NR];
  const ActQ8* x[NX];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) w[r] = static_cast<const B*>(wrows[r]);
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) x[i] = static_cast<const ActQ8*>(xrows[i]);
  __m256 acc[NX][NR];
  float mins[NX][NR];
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      acc[i][r] = _mm256_setzero_ps();
      mins[i][r] = 0;
    }
  for (int64_t j = 0; j < nb; ++j) {
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const B& b = w[r][j];
      const __m256i q = K::levels(b);
      const float d = half(b.d);
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) {
        const ActQ8& a = x[i][j];
        __m256i p = dot_u8_i8(q, a.qs);
        // Sum over 8 lanes of (p - k * sum) = dot - 8k * sum: the level offset, in integers.
        if constexpr (K::kOffsetTimes8 != 0) p = _mm256_sub_epi32(p, _mm256_set1_epi32(K::kOffsetTimes8 * a.sum));
        acc[i][r] = _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(p), acc[i][r]);
        if constexpr (K::kMin) mins[i][r] += K::min(b) * a.s;
      }
    }
  }
  store_sums<NR, NX>(acc, mins, out);
}

template <int NR, int NX>
void dot_q8_0(const void* const* wrows, const void* const* xrows, int64_t nb, float* out) {
  const BlockQ8_0* w[NR];
  const ActQ8* x[NX];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) w[r] = static_cast<const BlockQ8_0*>(wrows[r]);
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) x[i] = static_cast<const ActQ8*>(xrows[i]);
  __m256 acc[NX][NR];
  float zero[NX][NR];
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      acc[i][r] = _mm256_setzero_ps();
      zero[i][r] = 0;
    }
  for (int64_t j = 0; j < nb; ++j) {
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const BlockQ8_0& b = w[r][j];
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
      const __m256i aq = _mm256_abs_epi8(q);
      const float d = half(b.d);
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) {
        const ActQ8& a = x[i][j];
        // |q| * (x * sign(q)) = q * x, so maddubs (unsigned x signed) serves signed weights.
        const __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)), q);
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, xs), _mm256_set1_epi16(1));
        acc[i][r] = _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(p), acc[i][r]);
      }
    }
  }
  store_sums<NR, NX>(acc, zero, out);
}

// ---------------------------------------------------------------------------------------------
// Legacy quants and Q8_0 with AVX-512 VNNI (only called when use_avx512_vnni()): vpdpbusd sums
// four u8 x s8 products into each int32 lane in one instruction, replacing maddubs + madd, and
// its accumulator input takes the level offset (-k * sum(x) per lane, so -8k * sum(x) over the 8
// lanes), replacing the subtraction. Still 256-bit vectors: the AVX-512VL forms, and the same
// summation order as the AVX2 kernels above.
#define SLM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

template <class K, int NR, int NX>
SLM_VNNI void dot_legacy_vnni(const void* const* wrows, const void* const* xrows, int64_t nb, float* out) {
  using B = typename K::B;
  const B* w[NR];
  const ActQ8* x[NX];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) w[r] = static_cast<const B*>(wrows[r]);
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) x[i] = static_cast<const ActQ8*>(xrows[i]);
  __m256 acc[NX][NR];
  float mins[NX][NR];
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      acc[i][r] = _mm256_setzero_ps();
      mins[i][r] = 0;
    }
  for (int64_t j = 0; j < nb; ++j) {
    __m256i offs[NX];
    __m256 da[NX];
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      offs[i] = _mm256_set1_epi32(-K::kOffsetTimes8 * x[i][j].sum);
      da[i] = _mm256_set1_ps(x[i][j].d);
    }
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const B& b = w[r][j];
      const __m256i q = K::levels(b);
      const __m256 dw = _mm256_set1_ps(half(b.d));
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) {
        const __m256i p =
            _mm256_dpbusd_epi32(offs[i], q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i][j].qs)));
        acc[i][r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, da[i]), _mm256_cvtepi32_ps(p), acc[i][r]);
        if constexpr (K::kMin) mins[i][r] += K::min(b) * x[i][j].s;
      }
    }
  }
  store_sums<NR, NX>(acc, mins, out);
}

template <int NR, int NX>
SLM_VNNI void dot_q8_0_vnni(const void* const* wrows, const void* const* xrows, int64_t nb, float* out) {
  const BlockQ8_0* w[NR];
  const ActQ8* x[NX];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) w[r] = static_cast<const BlockQ8_0*>(wrows[r]);
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) x[i] = static_cast<const ActQ8*>(xrows[i]);
  __m256 acc[NX][NR];
  float zero[NX][NR];
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      acc[i][r] = _mm256_setzero_ps();
      zero[i][r] = 0;
    }
  for (int64_t j = 0; j < nb; ++j) {
    __m256 da[NX];
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) da[i] = _mm256_set1_ps(x[i][j].d);
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const BlockQ8_0& b = w[r][j];
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
      const __m256i aq = _mm256_abs_epi8(q);
      const __m256 dw = _mm256_set1_ps(half(b.d));
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) {
        // |q| * (x * sign(q)) = q * x: unsigned x signed, as vpdpbusd wants.
        const __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i][j].qs)), q);
        const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aq, xs);
        acc[i][r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, da[i]), _mm256_cvtepi32_ps(p), acc[i][r]);
      }
    }
  }
  store_sums<NR, NX>(acc, zero, out);
}

// Prefill tile for Q4_0 with 512-bit VNNI: 4 weight rows x 4 activation rows, two blocks per
// vector (lanes 0-7 block j, 8-15 block j + 1). Where 512-bit instructions run as two 256-bit
// halves (Zen 4) this halves the instruction count of the 256-bit kernel rather than the work.
// GCC 12's 512-bit insert / shuffle intrinsics pass an "undefined" vector as the masked-off
// source, which -Wmaybe-uninitialized reports at every use (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
SLM_VNNI inline __m512i q4_0_levels2(const BlockQ4_0& a, const BlockQ4_0& b) {
  // [a.qs | b.qs] and the same >> 4, reordered to a low, a high, b low, b high nibbles.
  const __m256i t = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs)), 1);
  const __m512i z = _mm512_inserti64x4(_mm512_zextsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
  return _mm512_and_si512(_mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0F));
}

SLM_VNNI inline __m512 pair_ps(float a, float b) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_zextpd256_pd512(_mm256_castps_pd(_mm256_set1_ps(a))),
                                             _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

struct Q4_0Z {
  using B = BlockQ4_0;
  static constexpr bool kSigned = false;
  SLM_VNNI static __m512i levels2(const B& a, const B& b) { return q4_0_levels2(a, b); }
  SLM_VNNI static __m256i levels(const B& a) { return Q4_0K::levels(a); }
};
struct Q8_0Z {
  using B = BlockQ8_0;
  static constexpr bool kSigned = true;  // levels are signed: |q| x (x * sign(q))
  SLM_VNNI static __m512i levels2(const B& a, const B& b) {
    return _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs))),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)), 1);
  }
  SLM_VNNI static __m256i levels(const B& a) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)); }
};

// NR weight rows x NX activation rows; out[i * NR + r]. Used for prefill (4 x 4) and decode (8 x 1).
template <class K, int NR, int NX>
SLM_VNNI void dot_zmm(const void* const* wrows, const void* const* xrows, int64_t nb, float* out) {
  using B = typename K::B;
  const B* w[NR];
  const ActQ8* x[NX];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) w[r] = static_cast<const B*>(wrows[r]);
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) x[i] = static_cast<const ActQ8*>(xrows[i]);
  __m512 acc[NX][NR];
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 2 <= nb; j += 2) {
    __m512i xv[NX], off[NX];
    __m512 da[NX];
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      const ActQ8& a = x[i][j];
      const ActQ8& b = x[i][j + 1];
      xv[i] = _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs))),
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)), 1);
      if constexpr (!K::kSigned)
        off[i] = _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_set1_epi32(-a.sum)), _mm256_set1_epi32(-b.sum), 1);
      da[i] = pair_ps(a.d, b.d);
    }
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const __m512i q = K::levels2(w[r][j], w[r][j + 1]);
      const __m512 dw = pair_ps(half(w[r][j].d), half(w[r][j + 1].d));
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) {
        __m512i p;
        if constexpr (K::kSigned) {
          const __m512i xs = _mm512_mask_sub_epi8(xv[i], _mm512_movepi8_mask(q), _mm512_setzero_si512(), xv[i]);
          p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(q), xs);
        } else {
          p = _mm512_dpbusd_epi32(off[i], q, xv[i]);
        }
        acc[i][r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, da[i]), _mm512_cvtepi32_ps(p), acc[i][r]);
      }
    }
  }
  __m256 acc2[NX][NR];
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r)
      acc2[i][r] = _mm256_add_ps(_mm512_castps512_ps256(acc[i][r]),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i][r]), 1)));
  for (; j < nb; ++j) {  // odd block count: the last block on 256-bit vectors
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const __m256i q = K::levels(w[r][j]);
      const __m256 dw = _mm256_set1_ps(half(w[r][j].d));
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) {
        const ActQ8& a = x[i][j];
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs));
        const __m256i p = K::kSigned
                              ? _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(q), _mm256_sign_epi8(xq, q))
                              : _mm256_dpbusd_epi32(_mm256_set1_epi32(-a.sum), q, xq);
        acc2[i][r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d)), _mm256_cvtepi32_ps(p), acc2[i][r]);
      }
    }
  }
  float zero[NX][NR] = {};
  store_sums<NR, NX>(acc2, zero, out);
}
#pragma GCC diagnostic pop

// ---------------------------------------------------------------------------------------------
// K-quants x ActQ8K.

// K-quants x ActQ8K.

// 8 six-bit scales then 8 six-bit mins of a Q4_K/Q5_K super-block, as 16 bytes. Packing: bytes
// 0-3 hold scales 0-3 (low 6 bits) and the top 2 bits of scales 4-7; bytes 4-7 mins 0-3 and the top
// bits of mins 4-7; bytes 8-11 the low nibbles of scales 4-7 (low) and mins 4-7 (high).
inline __m128i unpack_k4_scales(const uint8_t* s) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, s, 4);
  std::memcpy(&w1, s + 4, 4);
  std::memcpy(&w2, s + 8, 4);
  const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, low2 = 0x03030303;
  const uint32_t sc03 = w0 & low6, mn03 = w1 & low6;
  const uint32_t sc47 = (w2 & low4) | (((w0 >> 6) & low2) << 4);
  const uint32_t mn47 = ((w2 >> 4) & low4) | (((w1 >> 6) & low2) << 4);
  return _mm_setr_epi32(static_cast<int>(sc03), static_cast<int>(sc47), static_cast<int>(mn03),
                        static_cast<int>(mn47));
}

// Shuffle masks that broadcast int16 lane j of a 128-bit half to all 8 lanes.
inline __m256i broadcast_i16(__m256i v, int j) {
  const int lo = 2 * j, hi = 2 * j + 1;
  const int pair = lo | (hi << 8);
  return _mm256_shuffle_epi8(v, _mm256_set1_epi16(static_cast<short>(pair)));
}

template <bool Q5, int NR, int NX>
void dot_q45_k(const void* const* wrows, const void* const* xrows, int64_t nb, float* out) {
  using B = std::conditional_t<Q5, BlockQ5_K, BlockQ4_K>;
  const B* w[NR];
  const ActQ8K* x[NX];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) w[r] = static_cast<const B*>(wrows[r]);
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) x[i] = static_cast<const ActQ8K*>(xrows[i]);
  __m256 acc[NX][NR];
  float mins[NX][NR];
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      acc[i][r] = _mm256_setzero_ps();
      mins[i][r] = 0;
    }
  const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  for (int64_t j = 0; j < nb; ++j) {
    // Per activation row: the sums of x over each sub-block of 32 (pairs of the 16-value sums).
    __m128i xsum32[NX];
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i][j].bsums));
      const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i][j].bsums + 8));
      xsum32[i] = _mm_hadd_epi16(lo, hi);
    }
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const B& b = w[r][j];
      const float d = half(b.d), dmin = half(b.dmin);
      const __m128i sm = unpack_k4_scales(b.scales);
      const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));  // scales, both halves
      const __m128i mn16 = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));             // mins as int16
      __m256i isum[NX];
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) isum[i] = _mm256_setzero_si256();
      __m256i qh = _mm256_setzero_si256();
      if constexpr (Q5) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
      #pragma GCC unroll 16
      for (int k = 0; k < 4; ++k) {
        const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * k));
        __m256i lo = _mm256_and_si256(qv, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4);
        if constexpr (Q5) {
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, one), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), one), 4));
          qh = _mm256_srli_epi16(qh, 2);
        }
        const __m256i s_lo = broadcast_i16(sc16, 2 * k), s_hi = broadcast_i16(sc16, 2 * k + 1);
        #pragma GCC unroll 16
        for (int i = 0; i < NX; ++i) {
          const int8_t* xq = x[i][j].qs + 64 * k;
          const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
          const __m256i p_hi =
              _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32)));
          isum[i] = _mm256_add_epi32(isum[i],
                                     _mm256_add_epi32(_mm256_madd_epi16(p_lo, s_lo), _mm256_madd_epi16(p_hi, s_hi)));
        }
      }
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) {
        __m128i ms = _mm_madd_epi16(xsum32[i], mn16);
        ms = _mm_add_epi32(ms, _mm_shuffle_epi32(ms, _MM_SHUFFLE(1, 0, 3, 2)));
        ms = _mm_add_epi32(ms, _mm_shuffle_epi32(ms, _MM_SHUFFLE(2, 3, 0, 1)));
        const float xd = x[i][j].d;
        acc[i][r] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd), _mm256_cvtepi32_ps(isum[i]), acc[i][r]);
        mins[i][r] -= dmin * xd * static_cast<float>(_mm_cvtsi128_si32(ms));
      }
    }
  }
  store_sums<NR, NX>(acc, mins, out);
}

template <int NR, int NX>
void dot_q6_k(const void* const* wrows, const void* const* xrows, int64_t nb, float* out) {
  const BlockQ6_K* w[NR];
  const ActQ8K* x[NX];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) w[r] = static_cast<const BlockQ6_K*>(wrows[r]);
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) x[i] = static_cast<const ActQ8K*>(xrows[i]);
  __m256 acc[NX][NR];
  float zero[NX][NR];
  #pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      acc[i][r] = _mm256_setzero_ps();
      zero[i][r] = 0;
    }
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
  for (int64_t j = 0; j < nb; ++j) {
    #pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const BlockQ6_K& b = w[r][j];
      const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
      __m256i isum[NX];
      {
        // The -32 level offset: 32 * sum over sub-blocks of scale * (sum of x), in integers.
        const __m256i sc_all = _mm256_cvtepi8_epi16(sc8);
        #pragma GCC unroll 16
        for (int i = 0; i < NX; ++i) {
          const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i][j].bsums));
          isum[i] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc_all, bs), 5));
        }
      }
      #pragma GCC unroll 16
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = b.ql + 64 * h;
        const __m256i qla = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
        const __m256i qlb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
        const __m256i qhv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(qla, m4), _mm256_slli_epi16(_mm256_and_si256(qhv, m3), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(qlb, m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 2), m3), 4));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qla, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 4), m3), 4));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qlb, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 6), m3), 4));
        // Scales of this half in both 128-bit lanes; run c uses scale 2c for its values 0-15 (low
        // lane of the maddubs result) and 2c + 1 for values 16-31 (high lane).
        const __m256i sc_h = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h == 0 ? sc8 : _mm_unpackhi_epi64(sc8, sc8)));
        #pragma GCC unroll 16
        for (int c = 0; c < 4; ++c) {
          const __m256i s = _mm256_blend_epi32(broadcast_i16(sc_h, 2 * c), broadcast_i16(sc_h, 2 * c + 1), 0xF0);
          #pragma GCC unroll 16
          for (int i = 0; i < NX; ++i) {
            const int8_t* xq = x[i][j].qs + 128 * h + 32 * c;
            const __m256i p = _mm256_maddubs_epi16(q[c], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
            isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(p, s));
          }
        }
      }
      const float d = half(b.d);
      #pragma GCC unroll 16
      for (int i = 0; i < NX; ++i)
        acc[i][r] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[i][j].d), _mm256_cvtepi32_ps(isum[i]), acc[i][r]);
    }
  }
  store_sums<NR, NX>(acc, zero, out);
}

using QuantDotFn = void (*)(const void* const*, const void* const*, int64_t, float*);

// The kernels a type needs: [0] = 4 rows x 1 activation row (decode), [k] = 1 row x k activation
// rows; tile = kTileRows rows x 4 activation rows (prefill), when the type has one.
struct QuantKernels {
  QuantDotFn fn[5] = {nullptr};
  int decode_rows = 4;  // rows of fn[0]
  QuantDotFn tile = nullptr;
  int tile_rows = 1;
};

template <template <int, int> class Dot>
QuantKernels kernels_of(int tile_rows = 0, int decode_rows = 4) {
  QuantKernels k;
  k.fn[0] = decode_rows == 8 ? Dot<8, 1>::fn : Dot<4, 1>::fn;
  k.decode_rows = decode_rows;
  k.fn[1] = Dot<1, 1>::fn;
  k.fn[2] = Dot<1, 2>::fn;
  k.fn[3] = Dot<1, 3>::fn;
  k.fn[4] = Dot<1, 4>::fn;
  if (tile_rows == 2) k.tile = Dot<2, 4>::fn;
  if (tile_rows == 4) k.tile = Dot<4, 4>::fn;
  if (k.tile) k.tile_rows = tile_rows;
  return k;
}
template <class K> struct LegacyDot {
  template <int NR, int NX> struct At { static constexpr QuantDotFn fn = dot_legacy<K, NR, NX>; };
};
template <class K> struct LegacyDotVnni {
  template <int NR, int NX> struct At { static constexpr QuantDotFn fn = dot_legacy_vnni<K, NR, NX>; };
};
template <int NR, int NX> struct Q8_0Dot { static constexpr QuantDotFn fn = dot_q8_0<NR, NX>; };
template <int NR, int NX> struct Q8_0DotVnni { static constexpr QuantDotFn fn = dot_q8_0_vnni<NR, NX>; };
template <int NR, int NX> struct Q4KDot { static constexpr QuantDotFn fn = dot_q45_k<false, NR, NX>; };
template <int NR, int NX> struct Q5KDot { static constexpr QuantDotFn fn = dot_q45_k<true, NR, NX>; };
template <int NR, int NX> struct Q6KDot { static constexpr QuantDotFn fn = dot_q6_k<NR, NX>; };

// Q4_0 and Q8_0 with VNNI: the two-blocks-per-vector kernels for the 8-row decode and 4 x 4 tiles.
template <class K>
QuantKernels with_zmm(QuantKernels k) {
  k.fn[0] = dot_zmm<K, 8, 1>;
  k.decode_rows = 8;
  k.tile = dot_zmm<K, 4, 4>;
  k.tile_rows = 4;
  return k;
}

// AVX2 has 16 vector registers: 2 x 4 tiles (8 accumulators); AVX-512VL code has 32: 4 x 4.
constexpr int kTileAvx2 = 2, kTileVnni = 4;
// Decode rows per call: 8 with VNNI (8 accumulators, each activation block loaded once for 8 rows).
constexpr int kDecodeVnni = 8;

const QuantKernels& quant_kernels(DType t) {
  static const QuantKernels q4_0 = kernels_of<LegacyDot<Q4_0K>::At>(kTileAvx2),
                            q4_1 = kernels_of<LegacyDot<Q4_1K>::At>(kTileAvx2),
                            q5_0 = kernels_of<LegacyDot<Q5_0K>::At>(kTileAvx2),
                            q5_1 = kernels_of<LegacyDot<Q5_1K>::At>(kTileAvx2),
                            q8_0 = kernels_of<Q8_0Dot>(kTileAvx2), q4_k = kernels_of<Q4KDot>(),
                            q5_k = kernels_of<Q5KDot>(), q6_k = kernels_of<Q6KDot>();
  static const QuantKernels v4_0 = with_zmm<Q4_0Z>(kernels_of<LegacyDotVnni<Q4_0K>::At>(kTileVnni, kDecodeVnni)),
                            v4_1 = kernels_of<LegacyDotVnni<Q4_1K>::At>(kTileVnni, kDecodeVnni),
                            v5_0 = kernels_of<LegacyDotVnni<Q5_0K>::At>(kTileVnni, kDecodeVnni),
                            v5_1 = kernels_of<LegacyDotVnni<Q5_1K>::At>(kTileVnni, kDecodeVnni),
                            v8_0 = with_zmm<Q8_0Z>(kernels_of<Q8_0DotVnni>(kTileVnni, kDecodeVnni));
  const bool vnni = use_avx512_vnni();
  switch (t) {
    case DType::Q4_0: return vnni ? v4_0 : q4_0;
    case DType::Q4_1: return vnni ? v4_1 : q4_1;
    case DType::Q5_0: return vnni ? v5_0 : q5_0;
    case DType::Q5_1: return vnni ? v5_1 : q5_1;
    case DType::Q4_K: return q4_k;
    case DType::Q5_K: return q5_k;
    case DType::Q6_K: return q6_k;
    default: return vnni ? v8_0 : q8_0;  // matmul_rows_avx2 sends only quantized types here
  }
}

void rows_quant(const MatmulTask& t, int64_t r0, int64_t r1) {
  if (use_avx512_vnni() && use_interleaved() && interleaved_vnni_supports(t.w.type)) {
    r0 = matmul_rows_interleaved_vnni(t, r0, r1);
    if (r0 == r1) return;
  }
  const int64_t nb = t.w.cols / dtype_info(t.w.type).block_size;
  const size_t stride = t.w.row_stride();
  const unsigned char* base = static_cast<const unsigned char*>(t.w.data);
  const unsigned char* x = static_cast<const unsigned char*>(t.x);
  const int64_t rows = t.w.rows, m = t.m;
  const QuantKernels& k = quant_kernels(t.w.type);
  // A whole number of 8-row blocks (a multiple of the decode and prefill tile heights) per tile.
  const int64_t tile = std::max<int64_t>(1, static_cast<int64_t>((64 << 10) / std::max<size_t>(stride, 1)) / 8) * 8;
  for (int64_t rt = r0; rt < r1; rt += tile) {
    const int64_t re = std::min(r1, rt + tile);
    for (int64_t i = 0; i < m; i += 4) {
      const int nx = static_cast<int>(std::min<int64_t>(4, m - i));
      const void* xr[4];
      for (int c = 0; c < nx; ++c) xr[c] = x + (i + c) * t.x_stride;
      float out[16];
      int64_t r = rt;
      if (nx == 1) {
        const int dr = k.decode_rows;
        // The dr rows are one contiguous region read as dr interleaved streams, which the
        // hardware prefetcher follows late; so fetch the group after next ahead of time.
        const unsigned char* const limit = base + static_cast<size_t>(r1) * stride;
        const size_t group = static_cast<size_t>(dr) * stride;
        for (; r + dr <= re; r += dr) {
          const void* wr[8];
          for (int c = 0; c < dr; ++c) wr[c] = base + static_cast<size_t>(r + c) * stride;
          const unsigned char* pf = base + static_cast<size_t>(r + 2 * dr) * stride;
          for (size_t off = 0; off < group && pf + off < limit; off += 64)
            _mm_prefetch(reinterpret_cast<const char*>(pf + off), _MM_HINT_T0);
          k.fn[0](wr, xr, nb, t.y + i * rows + r);  // i = 0: out[c] is y[r + c]
        }
      }
      if (nx == 4 && k.tile) {
        const int tr = k.tile_rows;
        for (; r + tr <= re; r += tr) {
          const void* wr[4];
          for (int c = 0; c < tr; ++c) wr[c] = base + static_cast<size_t>(r + c) * stride;
          k.tile(wr, xr, nb, out);  // out[i * tr + c]
          for (int i2 = 0; i2 < 4; ++i2)
            for (int c = 0; c < tr; ++c) t.y[(i + i2) * rows + r + c] = out[i2 * tr + c];
        }
      }
      for (; r < re; ++r) {
        const void* wr[1] = {base + static_cast<size_t>(r) * stride};
        k.fn[nx](wr, xr, nb, out);
        for (int c = 0; c < nx; ++c) t.y[(i + c) * rows + r] = out[c];
      }
    }
  }
}

}  // namespace

namespace {
// 8 floats saturated to the F16 range (NaN passes: max / min return their second operand then)
// and rounded to nearest even halves.
inline __m128i to_f16_8(const float* x) {
  __m256 v = _mm256_max_ps(_mm256_set1_ps(-65504.0f), _mm256_loadu_ps(x));
  v = _mm256_min_ps(_mm256_set1_ps(65504.0f), v);
  return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
}  // namespace

void quantize_act_avx2(ActKind k, const float* x, int64_t n, void* dst) {
  if (k == ActKind::F16) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), to_f16_8(x + i));
    if (i < n) quantize_act_scalar(k, x + i, n - i, h + i);
    return;
  }
  const int bs = k == ActKind::Q8 ? 32 : 256;
  __m256i v[4];
  for (int64_t b = 0; b < n / bs; ++b) {
    const float* xb = x + b * bs;
    const float d = absmax(xb, bs) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 idv = _mm256_set1_ps(id);
    if (k == ActKind::Q8) {
      ActQ8& a = static_cast<ActQ8*>(dst)[b];
      a.d = d;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.qs), round_pack32(xb, idv, v));
      a.sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3])));
      a.s = d * static_cast<float>(a.sum);
    } else {
      ActQ8K& a = static_cast<ActQ8K*>(dst)[b];
      a.d = d;
      #pragma GCC unroll 16
      for (int c = 0; c < 8; ++c) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.qs + 32 * c), round_pack32(xb + 32 * c, idv, v));
        a.bsums[2 * c] = static_cast<int16_t>(hsum_i32(_mm256_add_epi32(v[0], v[1])));
        a.bsums[2 * c + 1] = static_cast<int16_t>(hsum_i32(_mm256_add_epi32(v[2], v[3])));
      }
    }
  }
}

void matmul_rows_avx2(const MatmulTask& t, int64_t r0, int64_t r1) {
  switch (t.w.type) {
    case DType::F32: return rows_float<LoadF32>(t, r0, r1);
    case DType::F16: return rows_float<LoadF16>(t, r0, r1);
    case DType::BF16: return rows_float<LoadBF16>(t, r0, r1);
    default: return rows_quant(t, r0, r1);
  }
}

}  // namespace slm
