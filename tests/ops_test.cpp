// Layer math (core/ops.h) against hand-derived values and naive double-precision references
// written here, and the AVX2 attention kernels against the scalar ones.
#include "core/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/fp16.h"

namespace slm {
namespace {

std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(Ops, RmsnormHandValues) {
  // Row 0: mean of squares (1 + 4 + 9 + 16) / 4 = 7.5. Row 1: all 2 -> mean 4, scale 1/2.
  const std::vector<float> x = {1, 2, 3, 4, 2, 2, 2, 2};
  const std::vector<float> w = {1, 1, 1, 2};
  std::vector<float> out(8);
  rmsnorm(x.data(), w.data(), 2, 4, 0.0f, out.data());
  const float r = 1.0f / std::sqrt(7.5f);
  EXPECT_NEAR(out[0], 1 * r, 1e-6);
  EXPECT_NEAR(out[1], 2 * r, 1e-6);
  EXPECT_NEAR(out[2], 3 * r, 1e-6);
  EXPECT_NEAR(out[3], 8 * r, 1e-6);
  EXPECT_NEAR(out[4], 1.0f, 1e-6);
  EXPECT_NEAR(out[7], 2.0f, 1e-6);
  // eps enters under the root: x = 0 row gives 0, x = [1] with eps = 3 gives 1 / 2.
  const float one = 1.0f, wone = 1.0f;
  float o = 0;
  rmsnorm(&one, &wone, 1, 1, 3.0f, &o);
  EXPECT_NEAR(o, 0.5f, 1e-6);
  // In place.
  std::vector<float> y = x;
  rmsnorm(y.data(), w.data(), 2, 4, 0.0f, y.data());
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(y[i], out[i]);
}

TEST(Ops, SoftmaxHandValues) {
  std::vector<float> x = {1, 2, 3};
  softmax(x.data(), 3);
  const double s = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(x[0], std::exp(1.0) / s, 1e-7);
  EXPECT_NEAR(x[1], std::exp(2.0) / s, 1e-7);
  EXPECT_NEAR(x[2], std::exp(3.0) / s, 1e-7);
  // Large values must not overflow (max is subtracted).
  std::vector<float> big = {1000, 1000};
  softmax(big.data(), 2);
  EXPECT_FLOAT_EQ(big[0], 0.5f);
  EXPECT_FLOAT_EQ(big[1], 0.5f);
  std::vector<float> one = {-7};
  softmax(one.data(), 1);
  EXPECT_FLOAT_EQ(one[0], 1.0f);
}

TEST(Ops, SiluMulAddBiasAdd) {
  std::vector<float> g = {0, 1, -2};
  const std::vector<float> u = {5, 3, 2};
  silu_mul(g.data(), u.data(), 3);
  EXPECT_FLOAT_EQ(g[0], 0.0f);
  EXPECT_NEAR(g[1], 3.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(g[2], 2.0 * -2.0 / (1.0 + std::exp(2.0)), 1e-6);

  std::vector<float> y = {1, 2, 3, 4, 5, 6};
  const std::vector<float> b = {10, 20, 30};
  add_bias(y.data(), b.data(), 2, 3);
  EXPECT_EQ(y, (std::vector<float>{11, 22, 33, 14, 25, 36}));
  add_inplace(y.data(), b.data(), 3);
  EXPECT_EQ(y, (std::vector<float>{21, 42, 63, 14, 25, 36}));
}

TEST(Ops, RopeInvFreqAndAngles) {
  float inv[2];
  rope_inv_freq(4, 10000.0f, inv);
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_FLOAT_EQ(inv[1], 0.01f);  // 10000^(-2/4)
  float cs[4];
  rope_cos_sin(3, inv, 4, cs);
  EXPECT_NEAR(cs[0], std::cos(3.0), 1e-7);
  EXPECT_NEAR(cs[1], std::sin(3.0), 1e-7);
  EXPECT_NEAR(cs[2], std::cos(0.03), 1e-7);
  EXPECT_NEAR(cs[3], std::sin(0.03), 1e-7);
}

TEST(Ops, RopePairsAdjacentAndNeox) {
  // head_dim 4, position 3: pair 0 turns by 3 rad, pair 1 by 0.03 rad.
  float inv[2], cs[4];
  rope_inv_freq(4, 10000.0f, inv);
  rope_cos_sin(3, inv, 4, cs);
  const double c0 = std::cos(3.0), s0 = std::sin(3.0), c1 = std::cos(0.03), s1 = std::sin(0.03);
  const float x[4] = {1, 2, 3, 4};

  float a[4] = {1, 2, 3, 4};  // adjacent: pairs (x0, x1), (x2, x3)
  rope(a, 1, 4, cs, false);
  EXPECT_NEAR(a[0], x[0] * c0 - x[1] * s0, 1e-6);
  EXPECT_NEAR(a[1], x[0] * s0 + x[1] * c0, 1e-6);
  EXPECT_NEAR(a[2], x[2] * c1 - x[3] * s1, 1e-6);
  EXPECT_NEAR(a[3], x[2] * s1 + x[3] * c1, 1e-6);

  float b[8] = {1, 2, 3, 4, 1, 2, 3, 4};  // neox: pairs (x0, x2), (x1, x3); two heads
  rope(b, 2, 4, cs, true);
  for (int h = 0; h < 2; ++h) {
    EXPECT_NEAR(b[4 * h + 0], x[0] * c0 - x[2] * s0, 1e-6);
    EXPECT_NEAR(b[4 * h + 2], x[0] * s0 + x[2] * c0, 1e-6);
    EXPECT_NEAR(b[4 * h + 1], x[1] * c1 - x[3] * s1, 1e-6);
    EXPECT_NEAR(b[4 * h + 3], x[1] * s1 + x[3] * c1, 1e-6);
  }

  // Position 0 is the identity.
  rope_cos_sin(0, inv, 4, cs);
  float z[4] = {1, 2, 3, 4};
  rope(z, 1, 4, cs, true);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(z[i], x[i]);
}

TEST(Ops, RopeDotDependsOnlyOnOffset) {
  // The property RoPE exists for: <R(m) q, R(n) k> depends on m - n only.
  const int64_t hd = 64;
  std::vector<float> inv(hd / 2), cs(hd);
  rope_inv_freq(hd, 10000.0f, inv.data());
  const auto q = random_vector(hd, 1), k = random_vector(hd, 2);
  for (bool neox : {false, true}) {
    auto dot_at = [&](int64_t m, int64_t n) {
      std::vector<float> qq = q, kk = k;
      rope_cos_sin(m, inv.data(), hd, cs.data());
      rope(qq.data(), 1, hd, cs.data(), neox);
      rope_cos_sin(n, inv.data(), hd, cs.data());
      rope(kk.data(), 1, hd, cs.data(), neox);
      double d = 0;
      for (int64_t i = 0; i < hd; ++i) d += double(qq[i]) * kk[i];
      return d;
    };
    EXPECT_NEAR(dot_at(7, 3), dot_at(104, 100), 1e-4);
    EXPECT_NEAR(dot_at(5, 5), dot_at(0, 0), 1e-4);
    EXPECT_GT(std::abs(dot_at(7, 3) - dot_at(3, 7)), 1e-3);  // it does depend on the offset
  }
}

// Naive attention in double over F32 rows.
std::vector<double> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, int64_t stride, int64_t n_ctx,
                                    int64_t hd, double scale) {
  std::vector<double> s(n_ctx);
  double mx = -1e300;
  for (int64_t t = 0; t < n_ctx; ++t) {
    double d = 0;
    for (int64_t i = 0; i < hd; ++i) d += double(q[i]) * k[t * stride + i];
    s[t] = d * scale;
    mx = std::max(mx, s[t]);
  }
  double sum = 0;
  for (auto& x : s) sum += (x = std::exp(x - mx));
  std::vector<double> out(hd, 0.0);
  for (int64_t t = 0; t < n_ctx; ++t)
    for (int64_t i = 0; i < hd; ++i) out[i] += s[t] / sum * v[t * stride + i];
  return out;
}

TEST(Ops, AttentionHeadMatchesNaive) {
  for (bool avx : {false, true}) {
    const bool prev = set_use_avx2(avx);
    for (int64_t hd : {5, 8, 40, 64, 72, 128}) {
      for (int64_t n_ctx : {1, 3, 17}) {
        const int64_t stride = hd * 3 + 1;  // rows hold other heads too
        const auto q = random_vector(hd, 10 + hd);
        const auto k = random_vector(stride * n_ctx, 20 + n_ctx);
        const auto v = random_vector(stride * n_ctx, 30 + n_ctx);
        const double scale = 1.0 / std::sqrt(double(hd));
        const auto ref = naive_attention(q, k, v, stride, n_ctx, hd, scale);
        std::vector<float> scores(n_ctx), out(hd);
        attention_head(q.data(), k.data(), v.data(), stride, DType::F32, n_ctx, hd, float(scale),
                       scores.data(), out.data());
        for (int64_t i = 0; i < hd; ++i)
          EXPECT_NEAR(out[i], ref[i], 1e-5) << "avx=" << avx << " hd=" << hd << " n=" << n_ctx;

        // F16 rows: the reference sees the same half-rounded values.
        std::vector<uint16_t> kh(k.size()), vh(v.size());
        std::vector<float> kr(k.size()), vr(v.size());
        store_row(k.data(), kh.data(), DType::F16, int64_t(k.size()));
        store_row(v.data(), vh.data(), DType::F16, int64_t(v.size()));
        for (size_t i = 0; i < k.size(); ++i) kr[i] = fp16_to_fp32(kh[i]);
        for (size_t i = 0; i < v.size(); ++i) vr[i] = fp16_to_fp32(vh[i]);
        EXPECT_EQ(kh[0], fp32_to_fp16(k[0]));
        const auto ref16 = naive_attention(q, kr, vr, stride, n_ctx, hd, scale);
        attention_head(q.data(), kh.data(), vh.data(), stride, DType::F16, n_ctx, hd, float(scale),
                       scores.data(), out.data());
        for (int64_t i = 0; i < hd; ++i)
          EXPECT_NEAR(out[i], ref16[i], 1e-5) << "f16 avx=" << avx << " hd=" << hd << " n=" << n_ctx;
      }
    }
    set_use_avx2(prev);
  }
}

TEST(Ops, Avx2AttentionKernelsMatchScalar) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (!cpu_features().avx2) GTEST_SKIP() << "CPU has no AVX2";
  for (DType t : {DType::F32, DType::F16}) {
    for (int64_t hd : {3, 8, 16, 24, 32, 48, 64, 80, 128}) {
      const int64_t n_ctx = 33, stride = hd + 8;
      const auto q = random_vector(hd, 1), p = random_vector(n_ctx, 2);
      const auto kf = random_vector(stride * n_ctx, 3);
      std::vector<uint16_t> kh(kf.size());
      store_row(kf.data(), kh.data(), DType::F16, int64_t(kf.size()));
      const void* k = t == DType::F32 ? static_cast<const void*>(kf.data()) : kh.data();
      std::vector<float> s1(n_ctx), s2(n_ctx);
      scalar::attention_scores(q.data(), k, stride, t, n_ctx, hd, 0.5f, s1.data());
      avx2::attention_scores(q.data(), k, stride, t, n_ctx, hd, 0.5f, s2.data());
      for (int64_t i = 0; i < n_ctx; ++i) EXPECT_NEAR(s1[i], s2[i], 1e-4 * (1 + std::abs(s1[i])));
      std::vector<float> o1(hd, 1.0f), o2(hd, 1.0f);  // accumulates onto existing values
      scalar::attention_mix(p.data(), k, stride, t, n_ctx, hd, o1.data());
      avx2::attention_mix(p.data(), k, stride, t, n_ctx, hd, o2.data());
      for (int64_t i = 0; i < hd; ++i) EXPECT_NEAR(o1[i], o2[i], 1e-4 * (1 + std::abs(o1[i])));
    }
  }
#else
  GTEST_SKIP() << "built without AVX2 kernels";
#endif
}

// A row's score does not depend on how many rows the call scores (rows go in groups of 4 with
// a shared transpose, leftovers one by one): position p of a batched forward must attend exactly
// as a decode step at p does. Referee: the same kernel called for that row alone.
TEST(Ops, Avx2AttentionScoresIndependentOfRowCount) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (!cpu_features().avx2) GTEST_SKIP() << "CPU has no AVX2";
  for (DType t : {DType::F32, DType::F16}) {
    for (int64_t hd : {8, 20, 24, 64, 72}) {
      const int64_t n_ctx = 23, stride = hd + 8;
      const auto q = random_vector(hd, 5);
      const auto kf = random_vector(stride * n_ctx, 6);
      std::vector<uint16_t> kh(kf.size());
      store_row(kf.data(), kh.data(), DType::F16, int64_t(kf.size()));
      const auto* k = t == DType::F32 ? static_cast<const unsigned char*>(static_cast<const void*>(kf.data()))
                                      : static_cast<const unsigned char*>(static_cast<const void*>(kh.data()));
      const size_t elem = t == DType::F32 ? 4 : 2;
      std::vector<float> all(n_ctx), one(1), ref(n_ctx);
      avx2::attention_scores(q.data(), k, stride, t, n_ctx, hd, 0.25f, all.data());
      scalar::attention_scores(q.data(), k, stride, t, n_ctx, hd, 0.25f, ref.data());
      for (int64_t i = 0; i < n_ctx; ++i) {
        avx2::attention_scores(q.data(), k + static_cast<size_t>(i * stride) * elem, stride, t, 1, hd, 0.25f,
                               one.data());
        EXPECT_EQ(all[i], one[0]) << "hd=" << hd << " row " << i;
        EXPECT_NEAR(all[i], ref[i], 1e-4 * (1 + std::abs(ref[i])));
      }
    }
  }
#else
  GTEST_SKIP() << "built without AVX2 kernels";
#endif
}

// rmsnorm, silu_mul and add_inplace: AVX2 against the scalar versions (which the hand-value tests
// above hold to the definitions), on lengths with and without vector tails.
TEST(Ops, Avx2ElementwiseMatchScalar) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (!cpu_features().avx2) GTEST_SKIP() << "CPU has no AVX2";
  for (int64_t dim : {1, 7, 8, 16, 33, 320, 867}) {
    const auto x = random_vector(static_cast<size_t>(3 * dim), 50 + uint32_t(dim), 3.0f);
    const auto w = random_vector(static_cast<size_t>(dim), 60 + uint32_t(dim));
    std::vector<float> a(x.size()), b(x.size());
    scalar::rmsnorm(x.data(), w.data(), 3, dim, 1e-5f, a.data());
    avx2::rmsnorm(x.data(), w.data(), 3, dim, 1e-5f, b.data());
    for (size_t j = 0; j < a.size(); ++j) EXPECT_NEAR(b[j], a[j], 1e-6 * (std::abs(a[j]) + 1e-6)) << dim;
    b = x;  // in place
    avx2::rmsnorm(b.data(), w.data(), 3, dim, 1e-5f, b.data());
    for (size_t j = 0; j < a.size(); ++j) EXPECT_NEAR(b[j], a[j], 1e-6 * (std::abs(a[j]) + 1e-6)) << dim;

    // silu over a wide range: large |g| saturates to g * up (g > 0) or to 0 (g < 0).
    auto g1 = random_vector(static_cast<size_t>(dim), 70 + uint32_t(dim), 20.0f);
    g1[0] = 0.0f;
    if (dim > 2) g1[1] = 200.0f, g1[2] = -200.0f;
    const auto up = random_vector(static_cast<size_t>(dim), 80 + uint32_t(dim));
    auto g2 = g1;
    scalar::silu_mul(g1.data(), up.data(), dim);
    avx2::silu_mul(g2.data(), up.data(), dim);
    for (int64_t j = 0; j < dim; ++j) EXPECT_NEAR(g2[j], g1[j], 1e-6 * std::abs(g1[j]) + 1e-30) << dim << " " << j;

    auto y1 = x, y2 = x;
    scalar::add_inplace(y1.data(), w.data(), dim);
    avx2::add_inplace(y2.data(), w.data(), dim);
    EXPECT_EQ(y1, y2);
  }
#else
  GTEST_SKIP() << "built without AVX2 kernels";
#endif
}

TEST(Ops, Avx2SoftmaxMatchesScalar) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (!cpu_features().avx2) GTEST_SKIP() << "CPU has no AVX2";
  for (int64_t n : {1, 7, 8, 9, 33, 300}) {
    // Wide range: differences to the max from 0 to about -120 (the exp underflows to ~0).
    auto x = random_vector(static_cast<size_t>(n), 100 + uint32_t(n), 30.0f);
    auto y = x;
    scalar::softmax(x.data(), n);
    avx2::softmax(y.data(), n);
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      EXPECT_NEAR(y[j], x[j], 1e-6 * x[j] + 1e-30) << "n=" << n << " j=" << j;
      sum += y[j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  // Both follow the definition on hand values.
  std::vector<float> h = {0, std::log(3.0f), -1e30f, 0, 0, 0, 0, 0, 0};  // e^x: 1, 3, 0, 1 x 6
  avx2::softmax(h.data(), 9);
  EXPECT_NEAR(h[0], 0.1f, 1e-7);
  EXPECT_NEAR(h[1], 0.3f, 1e-7);
  EXPECT_NEAR(h[2], 0.0f, 1e-30);
  EXPECT_NEAR(h[8], 0.1f, 1e-7);
#else
  GTEST_SKIP() << "built without AVX2 kernels";
#endif
}

TEST(Ops, RejectsOtherKvTypes) {
  float q = 1, s = 0, o = 0;
  const float kv = 1;
  EXPECT_THROW(attention_head(&q, &kv, &kv, 1, DType::Q8_0, 1, 1, 1.0f, &s, &o), Error);
  EXPECT_THROW(store_row(&q, &o, DType::BF16, 1), Error);
}

}  // namespace
}  // namespace slm
