// Training's float matrix product (core/gemm.h): the built-in AVX-512 kernels and the system BLAS
// against a double-precision product written the obvious way, over shapes that exercise every
// edge of the blocking (partial micro-tiles in m and n, k split into several blocks), all four
// transpose cases, leading dimensions wider than the matrices, alpha and beta; and the built-in
// kernels' promise that results do not depend on the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/gemm_kernels.h"
#include "core/thread_pool.h"
#include "test_util.h"

namespace slm {
namespace {

using test::KernelSwitch;

struct Problem {
  bool ta, tb;
  int64_t m, n, k;
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c;

  Problem(bool ta_, bool tb_, int64_t m_, int64_t n_, int64_t k_, uint32_t seed)
      : ta(ta_), tb(tb_), m(m_), n(n_), k(k_) {
    // Padded strides catch a kernel that assumes rows are packed.
    lda = (ta ? m : k) + 3;
    ldb = (tb ? k : n) + 5;
    ldc = n + 7;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    a.resize(static_cast<size_t>((ta ? k : m) * lda));
    b.resize(static_cast<size_t>((tb ? n : k) * ldb));
    c.resize(static_cast<size_t>(m * ldc));
    for (float& x : a) x = u(rng);
    for (float& x : b) x = u(rng);
    for (float& x : c) x = u(rng);
  }
  float op_a(int64_t i, int64_t p) const { return ta ? a[p * lda + i] : a[i * lda + p]; }
  float op_b(int64_t p, int64_t j) const { return tb ? b[j * ldb + p] : b[p * ldb + j]; }
};

// C after the product, in double, and a bound on float rounding for each element.
void reference(const Problem& pr, float alpha, float beta, std::vector<double>& want, std::vector<double>& tol) {
  want.assign(pr.c.size(), 0.0);
  tol.assign(pr.c.size(), 0.0);
  for (int64_t i = 0; i < pr.m; ++i)
    for (int64_t j = 0; j < pr.n; ++j) {
      double acc = 0.0, mag = 0.0;
      for (int64_t p = 0; p < pr.k; ++p) {
        const double t = double(pr.op_a(i, p)) * pr.op_b(p, j);
        acc += t;
        mag += std::fabs(t);
      }
      const double c0 = pr.c[i * pr.ldc + j];
      want[i * pr.ldc + j] = alpha * acc + (beta == 0.0f ? 0.0 : beta * c0);
      tol[i * pr.ldc + j] = 4e-7 * (double(pr.k) + 4) * (std::fabs(alpha) * mag + std::fabs(beta * c0)) + 1e-30;
    }
}

void expect_matches_reference(ThreadPool* pool, const Problem& pr, float alpha, float beta) {
  std::vector<double> want, tol;
  reference(pr, alpha, beta, want, tol);
  std::vector<float> c = pr.c;
  if (pool && alpha == 1.0f)
    gemm(*pool, pr.ta, pr.tb, pr.m, pr.n, pr.k, pr.a.data(), pr.lda, pr.b.data(), pr.ldb, beta, c.data(), pr.ldc);
  else
    gemm_serial(pr.ta, pr.tb, pr.m, pr.n, pr.k, pr.a.data(), pr.lda, pr.b.data(), pr.ldb, beta, c.data(), pr.ldc, alpha);
  int bad = 0;
  for (int64_t i = 0; i < pr.m; ++i) {
    for (int64_t j = 0; j < pr.n; ++j) {
      const size_t at = static_cast<size_t>(i * pr.ldc + j);
      if (std::fabs(c[at] - want[at]) > tol[at] && ++bad <= 5)
        ADD_FAILURE() << "C[" << i << "][" << j << "] = " << c[at] << ", want " << want[at] << " (ta "
                      << pr.ta << " tb " << pr.tb << " m " << pr.m << " n " << pr.n << " k " << pr.k
                      << " alpha " << alpha << " beta " << beta << ")";
    }
    // The padding between rows of C is never written.
    for (int64_t j = pr.n; j < pr.ldc && i + 1 < pr.m; ++j)
      ASSERT_EQ(c[i * pr.ldc + j], pr.c[i * pr.ldc + j]) << "padding of row " << i << " written";
  }
  EXPECT_EQ(bad, 0);
}

class GemmBackend : public ::testing::TestWithParam<bool> {};

// Sizes around the micro-tile (12 x 32), the k block (384) and the task split.
const std::vector<std::tuple<int64_t, int64_t, int64_t>> kShapes = {
    {1, 1, 1},     {1, 33, 7},    {13, 1, 5},     {12, 32, 16},  {11, 31, 17},  {25, 65, 100},
    {37, 95, 385}, {100, 40, 769}, {240, 64, 48}, {250, 300, 60}, {7, 500, 300}, {513, 29, 33}};

TEST_P(GemmBackend, MatchesDoubleReference) {
  const bool own = GetParam();
  if (own && !cpu_features().avx512f) GTEST_SKIP() << "no AVX-512F on this CPU";
  const KernelSwitch sw(set_use_own_gemm, own);
  ThreadPool pool2(2), pool3(3);
  uint32_t seed = 1;
  for (const auto& [m, n, k] : kShapes)
    for (int t = 0; t < 4; ++t) {
      const Problem pr(t & 1, t & 2, m, n, k, seed++);
      expect_matches_reference(nullptr, pr, 1.0f, 0.0f);
      expect_matches_reference(nullptr, pr, 0.5f, 1.0f);
      expect_matches_reference(nullptr, pr, -2.0f, 0.25f);
      expect_matches_reference(&pool2, pr, 1.0f, 1.0f);
      expect_matches_reference(&pool3, pr, 1.0f, 0.0f);
    }
}

// beta = 0 must overwrite C without reading it: NaN in C does not leak into the result.
TEST_P(GemmBackend, BetaZeroIgnoresOldC) {
  const bool own = GetParam();
  if (own && !cpu_features().avx512f) GTEST_SKIP() << "no AVX-512F on this CPU";
  const KernelSwitch sw(set_use_own_gemm, own);
  Problem pr(false, true, 30, 70, 20, 7);
  std::fill(pr.c.begin(), pr.c.end(), std::nanf(""));
  ThreadPool pool(2);
  gemm(pool, pr.ta, pr.tb, pr.m, pr.n, pr.k, pr.a.data(), pr.lda, pr.b.data(), pr.ldb, 0.0f, pr.c.data(), pr.ldc);
  for (int64_t i = 0; i < pr.m; ++i)
    for (int64_t j = 0; j < pr.n; ++j) ASSERT_FALSE(std::isnan(pr.c[i * pr.ldc + j])) << i << "," << j;
}

INSTANTIATE_TEST_SUITE_P(Backends, GemmBackend, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "BuiltIn" : "Blas"; });

// The built-in kernels give the same bits at 1, 2 and 3 threads (training runs are reproducible
// whatever the thread count).
TEST(GemmBuiltIn, SameBitsAtEveryThreadCount) {
  if (!cpu_features().avx512f) GTEST_SKIP() << "no AVX-512F on this CPU";
  const KernelSwitch sw(set_use_own_gemm, true);
  ThreadPool pool1(1), pool2(2), pool3(3);
  for (const auto& [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{300, 96, 800}, {20, 700, 64}, {2048, 33, 9}})
    for (int t = 0; t < 4; ++t) {
      const Problem pr(t & 1, t & 2, m, n, k, 100 + t);
      std::vector<std::vector<float>> out;
      for (ThreadPool* pool : {&pool1, &pool2, &pool3}) {
        std::vector<float> c = pr.c;
        gemm(*pool, pr.ta, pr.tb, m, n, k, pr.a.data(), pr.lda, pr.b.data(), pr.ldb, 1.0f, c.data(), pr.ldc);
        out.push_back(std::move(c));
      }
      EXPECT_EQ(out[0], out[1]) << m << "x" << n << "x" << k << " t" << t;
      EXPECT_EQ(out[0], out[2]) << m << "x" << n << "x" << k << " t" << t;
    }
}

}  // namespace
}  // namespace slm
