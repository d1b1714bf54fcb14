// matmul for every weight type, scalar and AVX2 kernels, 1-3 threads, against matmul_reference
// (dequantized rows, double accumulation) on quantize_row'd random weights.
//
// Tolerances:
// - Float weights: the kernels sum in float with 8 partial sums (lanes), so each output's rounding
//   error is below about (cols/8 + 4) * 2^-24 * sum_c |w_c x_c|; for cols <= 1024 that is < 1e-5.
// - Quantized weights: activations are quantized to 8 bits (d = max|x|/127 per block), then the
//   products are exact integers times float scales. Against the reference run on those rounded
//   activations (activation_roundtrip) the same 1e-5 * sum |w x| bound holds. Against the reference
//   on the original x the extra error is at most sum_c |w_c| |x_c - round(x_c)| (checked exactly)
//   and, on Gaussian data, about 0.3 % of |y| in RMS (checked below 2 %).
// - F16 weights take activations rounded to F16 (relative error <= 2^-11 each, as llama.cpp):
//   the same two bounds, and on Gaussian data about 2^-11 / sqrt(3) = 0.03 % of |y| in RMS
//   (checked below 0.1 %).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/matmul.h"
#include "core/matmul_kernels.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "test_util.h"

namespace slm {
using test::KernelSwitch;
namespace {

struct Weights {
  std::vector<unsigned char> bytes;
  WeightView view;
};

Weights make_weights(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Weights w;
  const size_t stride = row_bytes(t, cols);
  w.bytes.resize(stride * static_cast<size_t>(rows) + 1);
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.5f + static_cast<float>(r % 5);  // rows of different magnitudes
    for (auto& v : row) v = dist(rng) * scale;
    quantize_row(t, row.data(), w.bytes.data() + static_cast<size_t>(r) * stride, cols);
  }
  w.view = {t, w.bytes.data(), rows, cols};
  return w;
}

std::vector<float> make_input(int64_t m, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * cols));
  for (auto& v : x) v = dist(rng);
  // An outlier per row, as activations have: widens the 8-bit activation range.
  for (int64_t i = 0; i < m; ++i) x[static_cast<size_t>(i * cols + (i * 7) % cols)] = 6.0f;
  return x;
}

// sum_c |w[r, c] * x[i, c]| and sum_c |w[r, c]| * |x[i, c] - xq[i, c]| for every (i, r).
void magnitudes(const WeightView& w, const std::vector<float>& x, const std::vector<float>& xq, int64_t m,
                std::vector<double>& abs_wx, std::vector<double>& act_bound) {
  abs_wx.assign(static_cast<size_t>(m * w.rows), 0.0);
  act_bound.assign(static_cast<size_t>(m * w.rows), 0.0);
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    weight_row(w, r, row.data());
    for (int64_t i = 0; i < m; ++i) {
      double a = 0, b = 0;
      for (int64_t c = 0; c < w.cols; ++c) {
        const size_t k = static_cast<size_t>(i * w.cols + c);
        a += std::fabs(double(row[c]) * x[k]);
        b += std::fabs(double(row[c])) * std::fabs(double(x[k]) - xq[k]);
      }
      abs_wx[static_cast<size_t>(i * w.rows + r)] = a;
      act_bound[static_cast<size_t>(i * w.rows + r)] = b;
    }
  }
}

// Each row of an m-row product equals, bit for bit, that row's product on its own (m = 1).
void expect_rows_equal_decode(ThreadPool& pool, const WeightView& w, const std::vector<float>& x, int64_t m) {
  std::vector<float> y(static_cast<size_t>(m * w.rows)), one(static_cast<size_t>(w.rows));
  matmul(pool, w, x.data(), m, y.data());
  for (int64_t i = 0; i < m; ++i) {
    matmul(pool, w, x.data() + i * w.cols, 1, one.data());
    for (int64_t r = 0; r < w.rows; ++r) ASSERT_EQ(y[i * w.rows + r], one[r]) << "row " << i << " out " << r;
  }
}

const DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                           DType::Q5_1, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

struct Shape {
  int64_t rows, cols;
};

class MatmulTypes : public ::testing::TestWithParam<DType> {};

void check_type(DType t, bool avx2) {
  const KernelSwitch sw(set_use_avx2, avx2);
  const bool quantized = is_quantized(t);
  std::vector<Shape> shapes = {{1, 256}, {7, 256}, {37, 512}, {50, 768}};
  if (!quantized) shapes.push_back({19, 13});  // columns not a multiple of the vector width
  // An odd number of 32-blocks per row: the kernels that take blocks in pairs end on a single one.
  if (dtype_info(t).block_size == 32) shapes.push_back({21, 288});
  ThreadPool pools[3] = {ThreadPool(1), ThreadPool(2), ThreadPool(3)};
  uint32_t seed = 1;
  double err2 = 0, ref2 = 0;  // over all outputs of all shapes: one output alone can be near 0
  for (const Shape& s : shapes) {
    const Weights w = make_weights(t, s.rows, s.cols, seed++);
    for (int64_t m : {1, 3, 17}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(t) << (avx2 ? " avx2" : " scalar") << " rows=" << s.rows
                                        << " cols=" << s.cols << " m=" << m);
      const auto x = make_input(m, s.cols, seed++);
      std::vector<float> xq(x.size());
      for (int64_t i = 0; i < m; ++i) activation_roundtrip(t, x.data() + i * s.cols, s.cols, xq.data() + i * s.cols);
      std::vector<float> ref(static_cast<size_t>(m * s.rows)), ref_q(ref.size());
      matmul_reference(w.view, x.data(), m, ref.data());
      matmul_reference(w.view, xq.data(), m, ref_q.data());
      std::vector<double> abs_wx, act_bound;
      magnitudes(w.view, x, xq, m, abs_wx, act_bound);

      std::vector<float> y1;
      for (int p = 0; p < 3; ++p) {
        std::vector<float> y(ref.size(), std::nanf(""));
        matmul(pools[p], w.view, x.data(), m, y.data());
        if (p == 0) {
          y1 = y;
          for (size_t k = 0; k < y.size(); ++k) {
            const double tol = 1e-5 * abs_wx[k] + 1e-30;
            ASSERT_NEAR(y[k], ref_q[k], tol) << "output " << k;
            ASSERT_NEAR(y[k], ref[k], act_bound[k] + tol) << "output " << k;
            err2 += (double(y[k]) - ref[k]) * (double(y[k]) - ref[k]);
            ref2 += double(ref[k]) * ref[k];
          }
          if (activation_kind(t) == ActKind::Float) {
            EXPECT_EQ(ref, ref_q);  // F32 / BF16 weights take x as it is
          } else if (t == DType::F16) {
            EXPECT_NE(ref, ref_q);  // rounded to F16
          }
        } else {
          // Each output is computed by the same code whatever the split: bit-identical.
          ASSERT_EQ(y, y1) << "threads " << (p + 1);
        }
      }
    }
  }
  if (quantized) {
    EXPECT_LT(std::sqrt(err2 / ref2), 0.02) << dtype_name(t);
  } else if (t == DType::F16) {
    EXPECT_LT(std::sqrt(err2 / ref2), 1e-3) << dtype_name(t);
  } else {
    EXPECT_LT(std::sqrt(err2 / ref2), 1e-6) << dtype_name(t);
  }
}

TEST_P(MatmulTypes, Scalar) { check_type(GetParam(), false); }

TEST_P(MatmulTypes, Avx2) {
  const KernelSwitch avx2(set_use_avx2, true);
  if (!use_avx2()) GTEST_SKIP() << "this CPU or build has no AVX2 kernels";
  check_type(GetParam(), true);
}

// Where the CPU has AVX-512 VNNI the Avx2 test above runs the VNNI variants of the legacy and
// Q8_0 kernels; this one runs the plain AVX2 ones (on any AVX2 CPU).
TEST_P(MatmulTypes, Avx2WithoutVnni) {
  const KernelSwitch avx2(set_use_avx2, true);
  if (!use_avx2()) GTEST_SKIP() << "this CPU or build has no AVX2 kernels";
  const KernelSwitch vnni(set_use_avx512_vnni, false);
  const KernelSwitch zmm(set_use_avx512f, false);  // and the 256-bit float-weight prefill kernel
  check_type(GetParam(), true);
}

TEST_P(MatmulTypes, Avx512VnniMatchesAvx2) {
  const DType t = GetParam();
  const KernelSwitch avx2(set_use_avx2, true), vnni(set_use_avx512_vnni, true);
  if (!use_avx2() || !use_avx512_vnni()) GTEST_SKIP() << "no AVX-512 VNNI kernels";
  ThreadPool pool(2);
  const Weights w = make_weights(t, 67, 1024, 97);
  for (int64_t m : {1, 4, 9}) {
    const auto x = make_input(m, 1024, 96);
    std::vector<float> yv(static_cast<size_t>(m * 67)), ya(yv.size());
    matmul(pool, w.view, x.data(), m, yv.data());
    {
      const KernelSwitch avx2_only(set_use_avx512_vnni, false);
      matmul(pool, w.view, x.data(), m, ya.data());
    }
    // The same integer products, summed and scaled in another order: agreement to float rounding.
    std::vector<float> xq(x.size());
    for (int64_t i = 0; i < m; ++i) activation_roundtrip(t, x.data() + i * 1024, 1024, xq.data() + i * 1024);
    std::vector<double> abs_wx, act_bound;
    magnitudes(w.view, x, xq, m, abs_wx, act_bound);
    for (size_t k = 0; k < ya.size(); ++k) ASSERT_NEAR(yv[k], ya[k], 2e-5 * abs_wx[k]) << "m=" << m << " " << k;
  }
}

// The AVX-512F float-weight prefill kernel (4 x 6 tiles of zmm accumulators) agrees with the
// AVX2 one and with the scalar reference within float rounding: tile edges in both directions
// (rows not a multiple of 4, m not a multiple of 6) and columns with an 8-wide and a scalar tail.
TEST(Matmul, Avx512FloatMatchesAvx2) {
  const KernelSwitch avx2(set_use_avx2, true), zmm(set_use_avx512f, true);
  if (!use_avx2() || !use_avx512f()) GTEST_SKIP() << "no AVX-512F kernels";
  ThreadPool pool(2);
  uint32_t seed = 200;
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    for (const Shape& s : {Shape{23, 72}, Shape{37, 288}, Shape{9, 44}, Shape{66, 768}}) {
      const Weights w = make_weights(t, s.rows, s.cols, seed++);
      for (int64_t m : {4, 5, 9, 17}) {
        SCOPED_TRACE(::testing::Message() << dtype_name(t) << " rows=" << s.rows << " cols=" << s.cols << " m=" << m);
        const auto x = make_input(m, s.cols, seed++);
        std::vector<float> yz(static_cast<size_t>(m * s.rows), std::nanf("")), ya(yz.size(), std::nanf("")),
            ref(yz.size());
        matmul(pool, w.view, x.data(), m, yz.data());
        {
          const KernelSwitch ymm(set_use_avx512f, false);
          matmul(pool, w.view, x.data(), m, ya.data());
        }
        std::vector<float> xq(x.size());  // F16 weights: activations rounded to F16
        for (int64_t i = 0; i < m; ++i) activation_roundtrip(t, x.data() + i * s.cols, s.cols, xq.data() + i * s.cols);
        matmul_reference(w.view, xq.data(), m, ref.data());
        std::vector<double> abs_wx, act_bound;
        magnitudes(w.view, x, xq, m, abs_wx, act_bound);
        for (size_t k = 0; k < yz.size(); ++k) {
          ASSERT_NEAR(yz[k], ya[k], 1e-5 * abs_wx[k]) << "output " << k;
          ASSERT_NEAR(yz[k], ref[k], 1e-5 * abs_wx[k]) << "output " << k;
        }
      }
    }
  }
}
// Several weights sharing the input in one call (Q/K/V, gate/up): each output is bit for bit what
// a call of its own gives, with weights of different types (each activation form made once) and
// row counts that are not multiples of 16, at 1 to 3 threads; mismatched shapes are refused.
TEST(Matmul, MultiEqualsSeparateCallsBitwise) {
  const int64_t cols = 512;
  const Weights a = make_weights(DType::Q8_0, 37, cols, 11), b = make_weights(DType::Q4_K, 50, cols, 12),
                c = make_weights(DType::F16, 16, cols, 13);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t m : {1, 3, 8, 17}) {
      SCOPED_TRACE(::testing::Message() << "m=" << m << " threads=" << threads);
      const auto x = make_input(m, cols, static_cast<uint32_t>(m));
      std::vector<float> ya(static_cast<size_t>(m * 37)), yb(static_cast<size_t>(m * 50)), yc(static_cast<size_t>(m * 16));
      const WeightView ws[3] = {a.view, b.view, c.view};
      float* const ys[3] = {ya.data(), yb.data(), yc.data()};
      matmul_multi(pool, ws, x.data(), m, ys);
      std::vector<float> one(ya.size());
      matmul(pool, a.view, x.data(), m, one.data());
      EXPECT_EQ(ya, one);
      one.resize(yb.size());
      matmul(pool, b.view, x.data(), m, one.data());
      EXPECT_EQ(yb, one);
      one.resize(yc.size());
      matmul(pool, c.view, x.data(), m, one.data());
      EXPECT_EQ(yc, one);
    }
  }
  ThreadPool pool(2);
  const Weights narrow = make_weights(DType::Q8_0, 4, 256, 14);
  const auto x = make_input(1, cols, 1);
  std::vector<float> y1(64), y2(64);
  const WeightView mixed[2] = {a.view, narrow.view};
  float* const outs[2] = {y1.data(), y2.data()};
  EXPECT_THROW(matmul_multi(pool, mixed, x.data(), 1, outs), Error);
  float* const one_out[1] = {y1.data()};
  EXPECT_THROW(matmul_multi(pool, mixed, x.data(), 1, one_out), Error);
}



// With AVX-512F, a float-weight product of m rows gives each row exactly (bit for bit) what the
// decode kernel (m = 1) gives it, for any m and 1 or 2 threads, when rows are a multiple of 16:
// speculative decoding verifies k drafted tokens in one forward and must pick the same tokens as
// plain decoding would. Referee: the m = 1 product of each row on its own.
TEST(Matmul, Avx512FloatRowsEqualDecodeBitwise) {
  const KernelSwitch avx2(set_use_avx2, true), zmm(set_use_avx512f, true);
  if (!use_avx2() || !use_avx512f()) GTEST_SKIP() << "no AVX-512F kernels";
  uint32_t seed = 400;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (DType t : {DType::F32, DType::F16, DType::BF16}) {
      // cols: a multiple of 16, one with an 8-wide tail, one with a scalar tail, odd numbers of
      // 16-column steps (336, 216: the even-step chain has the last step); 37 and 13 rows: the
      // last rows of a matrix (narrower tiles, the 8-row decode's remainder).
      for (const Shape& s : {Shape{64, 320}, Shape{32, 864}, Shape{48, 72}, Shape{16, 44}, Shape{1040, 64},
                             Shape{37, 864}, Shape{13, 320}, Shape{37, 72}, Shape{37, 336}, Shape{21, 216},
                             Shape{9, 600}}) {
        const Weights w = make_weights(t, s.rows, s.cols, seed++);
        for (int64_t m : {2, 3, 5, 7, 8, 13}) {
          SCOPED_TRACE(::testing::Message() << dtype_name(t) << " rows=" << s.rows << " cols=" << s.cols
                                            << " m=" << m << " threads=" << threads);
          expect_rows_equal_decode(pool, w.view, make_input(m, s.cols, seed++), m);
        }
      }
    }
  }
}

// The same on CPUs without AVX-512 (the AVX2 float kernels): decode and prefill tiles give each
// row the same sum, bit for bit (speculative decoding's greedy identity rests on it).
TEST(Matmul, Avx2FloatRowsEqualDecodeBitwise) {
  const KernelSwitch avx2(set_use_avx2, true), ymm(set_use_avx512f, false);
  if (!use_avx2()) GTEST_SKIP() << "no AVX2 kernels";
  uint32_t seed = 500;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (DType t : {DType::F32, DType::F16, DType::BF16}) {
      // 864 and 600 columns: two 512-column chunks of the prefill tiles' two passes; 600 and 216:
      // odd numbers of 8-column steps.
      for (const Shape& s : {Shape{64, 320}, Shape{32, 864}, Shape{48, 72}, Shape{16, 44}, Shape{37, 864},
                             Shape{13, 320}, Shape{9, 600}, Shape{21, 216}}) {
        const Weights w = make_weights(t, s.rows, s.cols, seed++);
        for (int64_t m : {2, 3, 5, 8, 13}) {
          SCOPED_TRACE(::testing::Message() << dtype_name(t) << " rows=" << s.rows << " cols=" << s.cols
                                            << " m=" << m << " threads=" << threads);
          expect_rows_equal_decode(pool, w.view, make_input(m, s.cols, seed++), m);
        }
      }
    }
  }
}

// The row-interleaved VNNI kernels (legacy and K-quants) agree with the block-per-lane ones and with the
// reference on the same quantized activations: 16-row groups and 5 leftover rows (53 rows), decode
// (m = 1), every pass width 2..8 plus a second pass (m up to 17), an odd block count, 1 and 2
// threads.
TEST_P(MatmulTypes, InterleavedMatchesBlockwise) {
  const DType t = GetParam();
  if (!interleaved_vnni_supports(t)) GTEST_SKIP() << "no interleaved kernel for this type";
  const KernelSwitch avx2(set_use_avx2, true), vnni(set_use_avx512_vnni, true);
  if (!use_avx2() || !use_avx512_vnni()) GTEST_SKIP() << "no AVX-512 VNNI kernels";
  // An odd block count for the legacy quants (9 blocks of 32), 3 super-blocks for K-quants.
  const int64_t cols = dtype_info(t).block_size == 256 ? 768 : 288;
  const Weights w = make_weights(t, 53, cols, 300);
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (int64_t m = 1; m <= 17; ++m) {
      SCOPED_TRACE(::testing::Message() << dtype_name(t) << " m=" << m << " threads=" << threads);
      const auto x = make_input(m, cols, static_cast<uint32_t>(m));
      std::vector<float> yi(static_cast<size_t>(m * 53), std::nanf("")), yb(yi.size(), std::nanf("")),
          ref(yi.size());
      ASSERT_TRUE(use_interleaved());
      matmul(pool, w.view, x.data(), m, yi.data());
      {
        const KernelSwitch blockwise(set_use_interleaved, false);
        matmul(pool, w.view, x.data(), m, yb.data());
      }
      std::vector<float> xq(x.size());
      for (int64_t i = 0; i < m; ++i) activation_roundtrip(t, x.data() + i * cols, cols, xq.data() + i * cols);
      matmul_reference(w.view, xq.data(), m, ref.data());
      std::vector<double> abs_wx, act_bound;
      magnitudes(w.view, x, xq, m, abs_wx, act_bound);
      for (size_t k = 0; k < yi.size(); ++k) {
        ASSERT_NEAR(yi[k], yb[k], 2e-5 * abs_wx[k]) << "output " << k;
        ASSERT_NEAR(yi[k], ref[k], 1e-5 * abs_wx[k]) << "output " << k;
      }
    }
  }
}

// With the interleaved kernels, a product of m rows gives each row exactly (bit for bit) what the
// decode (m = 1) gives it, for rows a multiple of 16 and 1 or 2 threads: speculative decoding
// verifies drafted tokens in one forward and the server batches sequences, and both must pick
// the tokens plain decoding picks. Referee: the m = 1 product of each row on its own.
TEST_P(MatmulTypes, InterleavedRowsEqualDecodeBitwise) {
  const DType t = GetParam();
  if (!interleaved_vnni_supports(t)) GTEST_SKIP() << "no interleaved kernel for this type";
  const KernelSwitch avx2(set_use_avx2, true), vnni(set_use_avx512_vnni, true);
  if (!use_avx2() || !use_avx512_vnni()) GTEST_SKIP() << "no AVX-512 VNNI kernels";
  uint32_t seed = 500;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    const bool k = dtype_info(t).block_size == 256;
    for (const Shape& s : {Shape{64, k ? 512 : 288}, Shape{16, 1024}, Shape{1040, k ? 256 : 64}}) {
      const Weights w = make_weights(t, s.rows, s.cols, seed++);
      for (int64_t m : {2, 3, 8, 9, 13}) {
        SCOPED_TRACE(::testing::Message() << dtype_name(t) << " rows=" << s.rows << " cols=" << s.cols << " m=" << m
                                          << " threads=" << threads);
        expect_rows_equal_decode(pool, w.view, make_input(m, s.cols, seed++), m);
      }
    }
  }
}

// Q8_0 levels span the whole int8 range in a file (-128 included, which quantize_row never
// writes): the interleaved kernel's sign flip (q + 128 as an unsigned byte) and the scalar
// kernel agree exactly on integer data. Hand-built blocks: d = 1, every level -128 or 127.
TEST(Matmul, Q8_0ExtremeLevels) {
  const int64_t rows = 32, cols = 64, m = 3;
  std::vector<BlockQ8_0> blocks(static_cast<size_t>(rows * cols / 32));
  for (size_t b = 0; b < blocks.size(); ++b) {
    blocks[b].d = 0x3C00;  // 1.0
    for (int k = 0; k < 32; ++k) blocks[b].qs[k] = static_cast<int8_t>((b + k) % 3 == 0 ? -128 : 127);
  }
  const WeightView w{DType::Q8_0, blocks.data(), rows, cols};
  // x: integers in [-127, 127] with max |x| = 127 per block, so activations quantize exactly.
  std::vector<float> x(static_cast<size_t>(m * cols));
  for (size_t k = 0; k < x.size(); ++k) x[k] = k % 32 == 0 ? 127.0f : static_cast<float>(static_cast<int>(k * 37 % 255) - 127);
  std::vector<float> ref(static_cast<size_t>(m * rows)), y(ref.size());
  matmul_reference(w, x.data(), m, ref.data());
  ThreadPool pool(2);
  for (bool avx2 : {false, true}) {
    const KernelSwitch sw(set_use_avx2, avx2);
    std::fill(y.begin(), y.end(), std::nanf(""));
    matmul(pool, w, x.data(), m, y.data());
    for (size_t k = 0; k < y.size(); ++k) ASSERT_EQ(y[k], ref[k]) << (avx2 ? "avx2 " : "scalar ") << k;
  }
}

// The two kernel families agree within float rounding on the same quantized activations.
TEST_P(MatmulTypes, ScalarMatchesAvx2) {
  const DType t = GetParam();
  const KernelSwitch avx2(set_use_avx2, true);
  if (!use_avx2()) GTEST_SKIP() << "no AVX2 kernels";
  ThreadPool pool(2);
  const Weights w = make_weights(t, 67, 1024, 99);
  const int64_t m = 9;
  const auto x = make_input(m, 1024, 98);
  std::vector<float> ya(static_cast<size_t>(m * 67)), ys(ya.size());
  matmul(pool, w.view, x.data(), m, ya.data());
  {
    const KernelSwitch scalar(set_use_avx2, false);
    matmul(pool, w.view, x.data(), m, ys.data());
  }
  std::vector<float> xq(x.size());
  for (int64_t i = 0; i < m; ++i) activation_roundtrip(t, x.data() + i * 1024, 1024, xq.data() + i * 1024);
  std::vector<double> abs_wx, act_bound;
  magnitudes(w.view, x, xq, m, abs_wx, act_bound);
  for (size_t k = 0; k < ya.size(); ++k) ASSERT_NEAR(ya[k], ys[k], 2e-5 * abs_wx[k]) << k;
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTypes, ::testing::ValuesIn(kAllTypes),
                         [](const ::testing::TestParamInfo<DType>& i) { return std::string(dtype_name(i.param)); });

TEST(Matmul, ActivationQuantizationIsTheSameInBothKernels) {
  const auto x = make_input(1, 512, 5);
  for (ActKind k : {ActKind::Q8, ActKind::Q8K}) {
    std::vector<unsigned char> a(activation_row_bytes(k, 512)), b(a.size());
    quantize_act_scalar(k, x.data(), 512, a.data());
    if (!cpu_features().avx2) GTEST_SKIP() << "no AVX2";
#ifdef SLM_HAVE_AVX2_KERNELS
    quantize_act_avx2(k, x.data(), 512, b.data());
    EXPECT_EQ(a, b);
#endif
  }
  // Hand check of one Q8 block: max |x| = 127 gives d = 1 and q = round-half-even(x).
  std::vector<float> v(32, 0.0f);
  v[0] = 127.0f;
  v[1] = 2.5f;
  v[2] = -3.5f;
  ActQ8 blk;
  quantize_act_scalar(ActKind::Q8, v.data(), 32, &blk);
  EXPECT_EQ(blk.d, 1.0f);
  EXPECT_EQ(blk.qs[0], 127);
  EXPECT_EQ(blk.qs[1], 2);
  EXPECT_EQ(blk.qs[2], -4);
  EXPECT_EQ(blk.sum, 125);
}

// F16 activations (F16 weights): both kernels give the same halves, which stand for the values
// activation_roundtrip gives, also past the F16 range (saturated), for NaN, ties and subnormals; 21 values: the AVX2 version's
// 8-wide steps and a scalar rest.
TEST(Matmul, F16ActivationsAreTheSameInBothKernels) {
  const float nan = std::nanf("");
  std::vector<float> x = {1.0f + 0x1p-11f,        // a tie: to even, 1
                          1.0f + 3 * 0x1p-11f,    // 1.5 ulp: 1 + 2 ulp
                          65519.0f,               // rounds past 65504: saturates
                          -1e6f,
                          -INFINITY,
                          nan,
                          0x1p-25f,               // half the smallest subnormal: a tie, to 0
                          3 * 0x1p-25f,           // 1.5 subnormal steps: 2
                          -0.0f,
                          0.1f};
  const std::vector<float> want = {1.0f, 1.0f + 0x1p-9f, 65504.0f, -65504.0f, -65504.0f, nan, 0.0f, 0x1p-23f,
                                   -0.0f, 0.0999755859375f};
  const auto more = make_input(1, 11, 9);
  x.insert(x.end(), more.begin(), more.end());
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint16_t> hs(x.size()), ha(x.size());
  std::vector<float> fs(x.size());
  quantize_act_scalar(ActKind::F16, x.data(), n, hs.data());
  activation_roundtrip(DType::F16, x.data(), n, fs.data());
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(fs[i])) << i;
    } else {
      EXPECT_EQ(fs[i], want[i]) << i;
      EXPECT_EQ(std::signbit(fs[i]), std::signbit(want[i])) << i;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(fs[i]), std::bit_cast<uint32_t>(fp16_to_fp32(hs[i]))) << i;
    if (!std::isnan(x[i]) && std::fabs(x[i]) <= 65504.0f) {
      EXPECT_LE(std::fabs(fs[i] - x[i]), std::fabs(x[i]) * 0x1p-11f + 0x1p-25f) << i;
    }
  }
  if (!cpu_features().avx2) GTEST_SKIP() << "no AVX2";
#ifdef SLM_HAVE_AVX2_KERNELS
  quantize_act_avx2(ActKind::F16, x.data(), n, ha.data());
  EXPECT_EQ(hs, ha);
#endif
}

TEST(Matmul, KnownSmallProduct) {
  // W = [[1, 2, 3], [-1, 0.5, 4]] (f32), x = [[1, 1, 1], [2, 0, -1]]: y = [[6, 3.5], [-1, -6]].
  const float w[6] = {1, 2, 3, -1, 0.5f, 4};
  const float x[6] = {1, 1, 1, 2, 0, -1};
  ThreadPool pool(2);
  for (bool avx2 : {false, true}) {
    const KernelSwitch sw(set_use_avx2, avx2);
    float y[4];
    matmul(pool, {DType::F32, w, 2, 3}, x, 2, y);
    EXPECT_EQ(y[0], 6.0f);
    EXPECT_EQ(y[1], 3.5f);
    EXPECT_EQ(y[2], -1.0f);
    EXPECT_EQ(y[3], -6.0f);
  }
}

TEST(Matmul, WeightRowAndErrors) {
  const Weights w = make_weights(DType::Q4_K, 3, 256, 4);
  std::vector<float> a(256), b(256);
  weight_row(w.view, 2, a.data());
  dequantize_row(DType::Q4_K, w.bytes.data() + 2 * sizeof(BlockQ4_K), b.data(), 256);
  EXPECT_EQ(a, b);
  EXPECT_THROW(weight_row(w.view, 3, a.data()), Error);
  ThreadPool pool(1);
  std::vector<float> x(256, 1.0f), y(3);
  WeightView bad = w.view;
  bad.type = DType::Q2_K;
  EXPECT_THROW(matmul(pool, bad, x.data(), 1, y.data()), Error);
  bad = w.view;
  bad.cols = 100;
  EXPECT_THROW(matmul(pool, bad, x.data(), 1, y.data()), Error);
  matmul(pool, w.view, x.data(), 0, y.data());  // m = 0: nothing to do
}

}  // namespace
}  // namespace slm
