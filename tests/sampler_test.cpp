// Sampler: greedy, determinism by seed, penalties against hand-computed logits, and the candidate
// sets of top-k / top-p / min-p checked by drawing many times from hand-made distributions and
// comparing the frequencies with the hand-derived renormalised probabilities (chi-square).
#include "generate/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace slm {
namespace {

SamplerParams greedy_params() {
  SamplerParams p;
  p.temperature = 0.0f;
  return p;
}

// Params with every filter off: a plain softmax draw at temperature t.
SamplerParams plain(float t, uint64_t seed = 1) {
  SamplerParams p;
  p.temperature = t;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

// Logits whose softmax is `probs` (up to the normaliser).
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

// Draws n tokens (fresh copy of logits each time) and returns the counts per id.
std::map<int32_t, int> draw(Sampler& s, const std::vector<float>& logits, int n) {
  std::map<int32_t, int> counts;
  for (int i = 0; i < n; ++i) {
    std::vector<float> row = logits;
    ++counts[s.sample(row, {})];
  }
  return counts;
}

// Fails if any draw falls outside `expected` (id -> probability) or if the chi-square statistic
// exceeds df + 6 sqrt(2 df) + 10: loose for the right distribution (the seed is fixed anyway),
// but a wrong candidate set or wrong renormalisation gives statistics in the hundreds or more.
void expect_distribution(const std::map<int32_t, int>& counts,
                         const std::map<int32_t, double>& expected, int n) {
  double total_p = 0.0;
  for (const auto& [id, p] : expected) total_p += p;
  ASSERT_NEAR(total_p, 1.0, 1e-9) << "test bug: expected probabilities must sum to 1";
  for (const auto& [id, c] : counts)
    EXPECT_TRUE(expected.count(id)) << "token " << id << " drawn " << c << " times, outside the expected set";
  double chi2 = 0.0;
  for (const auto& [id, p] : expected) {
    const double e = p * n;
    const auto it = counts.find(id);
    const double o = it == counts.end() ? 0.0 : it->second;
    chi2 += (o - e) * (o - e) / e;
    // A token missing from the sampler's set adds only ~e to chi2; catch it directly
    // (P(no draw) = exp(-e) < 1e-5 for e >= 12).
    if (e >= 12.0) {
      EXPECT_GT(o, 0.0) << "token " << id << " (expected " << e << " draws) never drawn";
    }
  }
  const double df = static_cast<double>(expected.size()) - 1.0;
  EXPECT_LT(chi2, df + 6.0 * std::sqrt(2.0 * std::max(df, 1.0)) + 10.0) << "chi-square over " << expected.size() << " cells";
}

// The six-token distribution most tests draw from; ids shuffled so that order != id.
// id:    0     1     2     3     4     5
// p:   0.10  0.40  0.04  0.25  0.06  0.15
const std::vector<double> kProbs = {0.10, 0.40, 0.04, 0.25, 0.06, 0.15};

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  Sampler s(greedy_params());
  std::vector<float> l = {0.5f, 3.0f, -1.0f, 2.9f};
  EXPECT_EQ(s.sample(l, {}), 1);
  std::vector<float> tie = {1.0f, 7.0f, 7.0f, -3.0f};
  EXPECT_EQ(s.sample(tie, {}), 1);
  std::vector<float> neg = {-5.0f, -2.0f, -9.0f};
  EXPECT_EQ(s.sample(neg, {}), 1);
}

TEST(Sampler, TopK1EqualsGreedy) {
  std::mt19937 gen(7);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> l(1000);
    for (float& x : l) x = nd(gen);
    SamplerParams p;
    p.top_k = 1;
    p.temperature = 1.5f;
    p.seed = trial;
    Sampler s(p);
    std::vector<float> a = l, b = l;
    EXPECT_EQ(s.sample(a, {}), Sampler(greedy_params()).sample(b, {}));
  }
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDiffers) {
  const std::vector<float> l = logits_of({0.2, 0.2, 0.2, 0.2, 0.2});
  auto run = [&](uint64_t seed) {
    Sampler s(plain(1.0f, seed));
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) {
      std::vector<float> row = l;
      out.push_back(s.sample(row, {}));
    }
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));  // 200 draws over 5 equiprobable tokens: equal only by accident
}

TEST(Sampler, PenaltiesMatchHandComputedLogits) {
  SamplerParams p;
  p.repeat_penalty = 2.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  p.repeat_last_n = 4;
  const std::vector<int32_t> history = {4, 0, 1, 1, 3};  // window of 4: {0, 1, 1, 3}
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
  apply_penalties(l, history, p);
  // id0: 2/2 - 1*0.5 - 0.25 = 0.25; id1: -1*2 - 2*0.5 - 0.25 = -3.25; id2: untouched;
  // id3: 3/2 - 0.5 - 0.25 = 0.75; id4: outside the window, untouched.
  EXPECT_FLOAT_EQ(l[0], 0.25f);
  EXPECT_FLOAT_EQ(l[1], -3.25f);
  EXPECT_FLOAT_EQ(l[2], 0.5f);
  EXPECT_FLOAT_EQ(l[3], 0.75f);
  EXPECT_FLOAT_EQ(l[4], -2.0f);

  p.repeat_last_n = -1;  // whole history: id4 too (-2*2 - 0.5 - 0.25)
  std::vector<float> all = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
  apply_penalties(all, history, p);
  EXPECT_FLOAT_EQ(all[4], -4.75f);

  p.repeat_last_n = 0;  // off
  std::vector<float> off = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
  apply_penalties(off, history, p);
  EXPECT_EQ(off, (std::vector<float>{2.0f, -1.0f, 0.5f, 3.0f, -2.0f}));
}

TEST(Sampler, PenaltiesComeBeforeGreedy) {
  SamplerParams p = greedy_params();
  p.repeat_penalty = 4.0f;  // 3.0 -> 0.75 < 1.0
  Sampler s(p);
  std::vector<float> l = {1.0f, 3.0f, 0.2f};
  const std::vector<int32_t> history = {1};
  EXPECT_EQ(s.sample(l, history), 0);
}

TEST(Sampler, PlainSoftmaxWithTemperature) {
  // Temperature 0.5 squares the probabilities before renormalising.
  const int n = 40000;
  Sampler s(plain(0.5f, 3));
  double z = 0.0;
  for (double p : kProbs) z += p * p;
  std::map<int32_t, double> expected;
  for (size_t i = 0; i < kProbs.size(); ++i) expected[static_cast<int32_t>(i)] = kProbs[i] * kProbs[i] / z;
  expect_distribution(draw(s, logits_of(kProbs), n), expected, n);
}

TEST(Sampler, TopPKeepsTheTokenThatCrossesP) {
  // Descending: 0.40 (id1), 0.25 (id3), 0.15 (id5), 0.10, ... Cumulative 0.40, 0.65, 0.80:
  // top_p = 0.7 keeps {1, 3, 5}, renormalised over 0.80.
  SamplerParams p = plain(1.0f, 5);
  p.top_p = 0.7f;
  Sampler s(p);
  const int n = 30000;
  expect_distribution(draw(s, logits_of(kProbs), n), {{1, 0.5}, {3, 0.3125}, {5, 0.1875}}, n);
}

TEST(Sampler, TopPAfterTopKUsesTheRenormalisedTopKSet) {
  // top_k = 4 keeps {1, 3, 5, 0} (mass 0.9); renormalised: 0.444, 0.278, 0.167, 0.111, cumulative
  // 0.444, 0.722, 0.889: top_p = 0.85 keeps three. (Without top-k, 0.85 would keep four.)
  SamplerParams p = plain(1.0f, 6);
  p.top_k = 4;
  p.top_p = 0.85f;
  Sampler s(p);
  const int n = 30000;
  expect_distribution(draw(s, logits_of(kProbs), n), {{1, 0.5}, {3, 0.3125}, {5, 0.1875}}, n);

  SamplerParams q = plain(1.0f, 6);
  q.top_p = 0.85f;
  Sampler s2(q);
  expect_distribution(draw(s2, logits_of(kProbs), n),
                      {{1, 0.4 / 0.9}, {3, 0.25 / 0.9}, {5, 0.15 / 0.9}, {0, 0.10 / 0.9}}, n);
}

TEST(Sampler, MinPKeepsTokensAboveAFractionOfTheMax) {
  // min_p = 0.5: keep p >= 0.2 -> {1, 3}.
  SamplerParams p = plain(1.0f, 8);
  p.min_p = 0.5f;
  Sampler s(p);
  const int n = 20000;
  expect_distribution(draw(s, logits_of(kProbs), n), {{1, 0.4 / 0.65}, {3, 0.25 / 0.65}}, n);
}

TEST(Sampler, TemperatureAppliesAfterTheFilters) {
  // min_p = 0.2 keeps p >= 0.08 -> {1, 3, 5, 0}, decided on the raw distribution; then
  // temperature 2 takes square roots of those four probabilities.
  SamplerParams p = plain(2.0f, 9);
  p.min_p = 0.2f;
  Sampler s(p);
  const std::vector<int32_t> ids = {1, 3, 5, 0};
  double z = 0.0;
  for (int32_t id : ids) z += std::sqrt(kProbs[id]);
  std::map<int32_t, double> expected;
  for (int32_t id : ids) expected[id] = std::sqrt(kProbs[id]) / z;
  const int n = 40000;
  expect_distribution(draw(s, logits_of(kProbs), n), expected, n);
}

TEST(Sampler, TopKAloneKeepsTheKLargest) {
  SamplerParams p = plain(1.0f, 10);
  p.top_k = 2;
  Sampler s(p);
  const int n = 20000;
  expect_distribution(draw(s, logits_of(kProbs), n), {{1, 0.4 / 0.65}, {3, 0.25 / 0.65}}, n);
}

TEST(Sampler, LargeVocabTopPWithManyTies) {
  // 20000 tokens: 600 equal at logit 0 (ids 7000..7599), the rest at -30 (negligible mass,
  // ~5e-11). top_p = 0.5008 keeps 301 of the 600 (cumulative 301/600 = 0.5017 is the first
  // >= 0.5008), the lowest ids on ties.
  std::vector<float> l(20000, -30.0f);
  for (int i = 7000; i < 7600; ++i) l[i] = 0.0f;
  SamplerParams p = plain(1.0f, 11);
  p.top_p = 0.5008f;
  Sampler s(p);
  const int n = 301 * 10;
  std::map<int32_t, double> expected;
  for (int i = 7000; i < 7301; ++i) expected[i] = 1.0 / 301;
  expect_distribution(draw(s, l, n), expected, n);
}

// The kept set and its renormalised probabilities (temperature 1) the slow, obvious way: a full
// sort of the vocabulary, then top-k, top-p and min-p exactly as sampler.h documents them.
std::map<int32_t, double> reference_distribution(const std::vector<float>& l, int top_k,
                                                 float top_p, float min_p) {
  std::vector<int32_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  if (top_k > 0 && static_cast<size_t>(top_k) < order.size()) order.resize(top_k);
  const double mx = l[order[0]];
  double z = 0.0;
  for (int32_t id : order) z += std::exp(l[id] - mx);
  std::vector<int32_t> kept;
  double cum = 0.0;
  for (int32_t id : order) {
    kept.push_back(id);
    cum += std::exp(l[id] - mx) / z;
    if (cum >= top_p) break;
  }
  std::map<int32_t, double> out;
  double kz = 0.0;
  for (int32_t id : kept)
    if (std::exp(l[id] - mx) >= min_p) kz += std::exp(l[id] - mx);
  for (int32_t id : kept)
    if (std::exp(l[id] - mx) >= min_p) out[id] = std::exp(l[id] - mx) / kz;
  return out;
}

TEST(Sampler, LargeVocabMatchesAFullSortReference) {
  // 150000 tokens: a bulk around 0 and 40 peaks around 12 at random ids, so that top-p and min-p
  // both bind inside the peaks. Each sampler path (min-p pre-filter with top-k off, nth_element
  // for a large top-k, the heap for a small one) must reproduce the reference distribution.
  std::mt19937 gen(12);
  std::normal_distribution<float> bulk(0.0f, 1.0f), peak(12.0f, 0.7f);
  std::uniform_int_distribution<int32_t> pick(0, 149999);
  std::vector<float> l(150000);
  for (float& x : l) x = bulk(gen);
  for (int i = 0; i < 40; ++i) l[pick(gen)] = peak(gen);
  const int n = 800;
  struct Case { int top_k; float top_p, min_p; };
  for (const Case c : {Case{0, 0.8f, 0.05f}, Case{2000, 0.8f, 0.05f}, Case{1000, 0.8f, 0.05f},
                       Case{0, 1.0f, 0.3f}, Case{12, 0.95f, 0.0f}, Case{0, 0.5f, 0.0f}}) {
    const std::map<int32_t, double> expected = reference_distribution(l, c.top_k, c.top_p, c.min_p);
    ASSERT_GT(expected.size(), 1u) << "test bug: the case should keep several tokens";
    SamplerParams p = plain(1.0f, 13);
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    Sampler s(p);
    SCOPED_TRACE("top_k " + std::to_string(c.top_k) + " top_p " + std::to_string(c.top_p) +
                 " min_p " + std::to_string(c.min_p) + ": " + std::to_string(expected.size()) +
                 " tokens kept");
    expect_distribution(draw(s, l, n), expected, n);
  }
}

TEST(Sampler, InvalidParamsThrow) {
  auto bad = [](auto mutate) {
    SamplerParams p;
    mutate(p);
    EXPECT_THROW(Sampler{p}, Error);
  };
  bad([](SamplerParams& p) { p.top_p = 0.0f; });
  bad([](SamplerParams& p) { p.top_p = 1.5f; });
  bad([](SamplerParams& p) { p.top_p = std::nanf(""); });
  bad([](SamplerParams& p) { p.min_p = -0.1f; });
  bad([](SamplerParams& p) { p.min_p = 1.1f; });
  bad([](SamplerParams& p) { p.top_k = -1; });
  bad([](SamplerParams& p) { p.repeat_penalty = 0.0f; });
  bad([](SamplerParams& p) { p.repeat_penalty = std::numeric_limits<float>::infinity(); });
  bad([](SamplerParams& p) { p.frequency_penalty = std::nanf(""); });
  bad([](SamplerParams& p) { p.presence_penalty = -std::numeric_limits<float>::infinity(); });
  bad([](SamplerParams& p) { p.temperature = std::nanf(""); });
  bad([](SamplerParams& p) { p.temperature = std::numeric_limits<float>::infinity(); });
  bad([](SamplerParams& p) { p.repeat_last_n = -2; });
  SamplerParams edge;
  edge.top_p = 1.0f;
  edge.min_p = 1.0f;
  edge.top_k = 0;
  EXPECT_NO_THROW(Sampler{edge});
}

TEST(Sampler, BadInputsThrow) {
  SamplerParams p;
  p.repeat_penalty = 1.1f;
  Sampler s(p);
  std::vector<float> l = {1.0f, 2.0f};
  const std::vector<int32_t> out_of_range = {5};
  EXPECT_THROW(s.sample(l, out_of_range), Error);
  std::vector<float> empty;
  EXPECT_THROW(s.sample(empty, {}), Error);
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> dead = {ninf, ninf};
  EXPECT_THROW(s.sample(dead, {}), Error);
}

TEST(Sampler, NegativeInfinityIsNeverDrawn) {
  const float ninf = -std::numeric_limits<float>::infinity();
  Sampler s(plain(1.0f, 14));
  for (int i = 0; i < 500; ++i) {
    std::vector<float> l = {ninf, 0.0f, ninf, 0.0f};
    const int32_t t = s.sample(l, {});
    ASSERT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(Sampler, LogSoftmaxAndTopLogits) {
  const std::vector<float> l = {0.0f, static_cast<float>(std::log(3.0))};
  const std::vector<float> ls = log_softmax(l);
  EXPECT_NEAR(ls[0], std::log(0.25), 1e-6);
  EXPECT_NEAR(ls[1], std::log(0.75), 1e-6);
  // Large values must not overflow.
  const std::vector<float> big = log_softmax(std::vector<float>{1000.0f, 1000.0f});
  EXPECT_NEAR(big[0], std::log(0.5), 1e-6);

  const std::vector<float> v = {1.0f, 3.0f, 3.0f, 2.0f, -1.0f};
  using P = std::vector<std::pair<int32_t, float>>;
  EXPECT_EQ(top_logits(v, 3), (P{{1, 3.0f}, {2, 3.0f}, {3, 2.0f}}));
  EXPECT_EQ(top_logits(v, 10).size(), 5u);
  EXPECT_EQ(top_logits(v, 10).back(), (std::pair<int32_t, float>{4, -1.0f}));
  EXPECT_TRUE(top_logits(v, 0).empty());
  EXPECT_EQ(argmax(v), 1);
}

// ---- distribution() and draw(): the exact distribution sample() draws from ------------------

struct DistCase {
  const char* name;
  float temperature;
  int top_k;
  float top_p, min_p, repeat_penalty;
};

const DistCase kDistCases[] = {
    {"greedy", 0.0f, 40, 0.95f, 0.05f, 1.0f},
    {"plain t=0.7", 0.7f, 0, 1.0f, 0.0f, 1.0f},
    {"plain t=1.5", 1.5f, 0, 1.0f, 0.0f, 1.0f},
    {"top-k 5", 1.0f, 5, 1.0f, 0.0f, 1.0f},
    {"top-p 0.8", 1.0f, 0, 0.8f, 0.0f, 1.0f},
    {"min-p 0.1", 0.9f, 0, 1.0f, 0.1f, 1.0f},
    {"all filters t=1.3", 1.3f, 10, 0.9f, 0.05f, 1.0f},
    {"defaults + repeat penalty", 0.8f, 40, 0.95f, 0.05f, 1.3f},
};

SamplerParams params_of(const DistCase& c, uint64_t seed) {
  SamplerParams p;
  p.temperature = c.temperature;
  p.top_k = c.top_k;
  p.top_p = c.top_p;
  p.min_p = c.min_p;
  p.repeat_penalty = c.repeat_penalty;
  p.repeat_last_n = -1;
  p.seed = seed;
  return p;
}

// Chi-square of counts against probabilities, cells with expected count < 5 pooled into one.
// Returns (statistic, degrees of freedom).
std::pair<double, double> pooled_chi2(const std::map<int32_t, int>& counts,
                                      const std::map<int32_t, double>& probs, int n) {
  double chi2 = 0.0, pool_e = 0.0, pool_o = 0.0;
  int cells = 0;
  for (const auto& [id, p] : probs) {
    const auto it = counts.find(id);
    const double o = it == counts.end() ? 0.0 : it->second, e = p * n;
    if (e < 5.0) {
      pool_e += e;
      pool_o += o;
      continue;
    }
    chi2 += (o - e) * (o - e) / e;
    ++cells;
  }
  if (pool_e > 0.0) {
    chi2 += (pool_o - pool_e) * (pool_o - pool_e) / std::max(pool_e, 1.0);
    ++cells;
  }
  return {chi2, static_cast<double>(std::max(cells - 1, 1))};
}

TEST(SamplerDistribution, MatchesABruteForceReference) {
  std::mt19937 gen(21);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_int_distribution<int32_t> pick(0, 59);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> l(60);
    for (float& x : l) x = normal(gen);
    std::vector<int32_t> history;
    for (int i = 0; i < 8; ++i) history.push_back(pick(gen));
    for (const DistCase& c : kDistCases) {
      SCOPED_TRACE(std::string(c.name) + ", trial " + std::to_string(trial));
      std::map<int32_t, double> want;  // id -> probability, the tokens the referee keeps
      const std::vector<double> ref = test::reference_sampler_probs(l, history, params_of(c, 1));
      for (size_t id = 0; id < ref.size(); ++id)
        if (ref[id] > 0.0) want[static_cast<int32_t>(id)] = ref[id];
      Sampler s(params_of(c, 1));
      std::vector<float> row = l;
      const auto got = s.distribution(row, history);
      double total = 0.0;
      std::map<int32_t, double> got_map;
      for (const auto& [id, p] : got) {
        EXPECT_TRUE(got_map.emplace(id, p).second) << "id " << id << " listed twice";
        total += p;
      }
      EXPECT_NEAR(total, 1.0, 1e-5);
      ASSERT_EQ(got_map.size(), want.size()) << "different kept sets";
      for (const auto& [id, p] : want) {
        ASSERT_TRUE(got_map.count(id)) << "token " << id << " missing";
        EXPECT_NEAR(got_map[id], p, 2e-6 + 1e-5 * p) << "token " << id;
      }
      // Like sample(), the penalties are applied to the row in place.
      std::vector<float> penalised = l;
      apply_penalties(penalised, history, params_of(c, 1));
      EXPECT_EQ(row, penalised);
    }
  }
}

TEST(SamplerDistribution, SampleFrequenciesMatchIt) {
  // sample() must draw from exactly what distribution() reports: 20000 draws per parameter set,
  // chi-square with a fixed seed against a loose bound (a shifted candidate set or a wrong
  // temperature gives statistics far above it).
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<float> l(40);
  for (float& x : l) x = normal(gen);
  const std::vector<int32_t> history = {3, 7, 7, 11};
  const int n = 20000;
  for (const DistCase& c : kDistCases) {
    SCOPED_TRACE(c.name);
    Sampler s(params_of(c, 77));
    std::vector<float> row = l;
    std::map<int32_t, double> probs;
    for (const auto& [id, p] : s.distribution(row, history)) probs[id] = p;
    std::map<int32_t, int> counts;
    for (int i = 0; i < n; ++i) {
      row = l;
      const int32_t id = s.sample(row, history);
      ASSERT_TRUE(probs.count(id)) << "drew token " << id << " outside the distribution";
      ++counts[id];
    }
    const auto [chi2, df] = pooled_chi2(counts, probs, n);
    EXPECT_LT(chi2, df + 6.0 * std::sqrt(2.0 * df) + 10.0) << "chi-square, df " << df;
  }
}

TEST(SamplerDistribution, DrawFollowsTheWeights) {
  Sampler s(plain(1.0f, 9));
  const std::vector<std::pair<int32_t, float>> sparse = {{7, 0.5f}, {2, 0.0f}, {4, 1.5f}, {9, 2.0f}};
  const std::vector<float> dense = {0.0f, 3.0f, 1.0f, 0.0f, 4.0f};
  const int n = 20000;
  std::map<int32_t, int> cs, cd;
  for (int i = 0; i < n; ++i) {
    ++cs[s.draw(sparse)];
    ++cd[s.draw_weights(dense)];
  }
  const auto [x1, df1] = pooled_chi2(cs, {{7, 0.125}, {4, 0.375}, {9, 0.5}}, n);
  EXPECT_EQ(cs.count(2), 0u) << "a zero weight was drawn";
  EXPECT_LT(x1, df1 + 6.0 * std::sqrt(2.0 * df1) + 10.0);
  const auto [x2, df2] = pooled_chi2(cd, {{1, 0.375}, {2, 0.125}, {4, 0.5}}, n);
  EXPECT_EQ(cd.count(0) + cd.count(3), 0u) << "a zero weight was drawn";
  EXPECT_LT(x2, df2 + 6.0 * std::sqrt(2.0 * df2) + 10.0);

  EXPECT_THROW(s.draw(std::vector<std::pair<int32_t, float>>{{1, 0.0f}}), Error);
  EXPECT_THROW(s.draw(std::vector<std::pair<int32_t, float>>{{1, -1.0f}, {2, 2.0f}}), Error);
  EXPECT_THROW(s.draw_weights(std::vector<float>{0.0f, 0.0f}), Error);
  EXPECT_THROW(s.draw_weights(std::vector<float>{}), Error);
}

TEST(SamplerDistribution, DistributionDoesNotTouchTheRng) {
  // Asking for the distribution must not shift the random stream sample() uses.
  SamplerParams p = plain(1.0f, 3);
  Sampler a(p), b(p);
  std::vector<float> l = logits_of(kProbs);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> r1 = l, r2 = l, r3 = l;
    (void)b.distribution(r3, {});
    EXPECT_EQ(a.sample(r1, {}), b.sample(r2, {}));
  }
}

}  // namespace
}  // namespace slm
