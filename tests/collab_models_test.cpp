// The collaboration strategies of generate/collab_models.h against independent referees:
//   - uncertainty measures against hand-computed values;
//   - the token cascade: always escalating equals the large model alone, never equals the small one,
//     and with a scripted policy each step's logits equal the large or the small model's logits for
//     the same history (computed by separate full-sequence forwards), with exact counters;
//   - the request cascade: thresholds that force each branch, scores recomputed from the logits;
//   - contrastive decoding and proxy tuning: rows recomputed by hand from each model's own logits,
//     the plausibility mask, and greedy contrastive never picking an implausible token;
//   - `slm collab generate`: bad strategy, vocabulary mismatch, token cascade == slm generate.
// The model pairs are random models made by `slm init` with the bundled model's vocabulary (always
// available), and the trained pair under models/ when it is there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/collab_models.h"
#include "generate/generator.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "test_util.h"

namespace slm {
namespace {

namespace fs = std::filesystem;
using test::run_slm;
const float kNegInf = -std::numeric_limits<float>::infinity();


// ---- uncertainty -------------------------------------------------------------------------------

TEST(Uncertainty, HandComputedValues) {
  // p = (0.5, 0.3, 0.2), shifted by a constant (softmax ignores it).
  const std::vector<float> row = {std::log(0.3f) + 7, std::log(0.5f) + 7, std::log(0.2f) + 7};
  const TokenUncertainty u = token_uncertainty(row);
  EXPECT_NEAR(u.max_prob, 0.5, 1e-6);
  EXPECT_NEAR(u.margin, 0.2, 1e-6);
  EXPECT_NEAR(u.entropy, -(0.5 * std::log(0.5) + 0.3 * std::log(0.3) + 0.2 * std::log(0.2)), 1e-6);
  EXPECT_EQ(u.get(UncertaintyMetric::kMaxProb), u.max_prob);
  EXPECT_EQ(u.get(UncertaintyMetric::kMargin), u.margin);
  EXPECT_EQ(u.get(UncertaintyMetric::kEntropy), u.entropy);

  // Uniform over 4096: entropy ln 4096, max 1/4096, margin 0.
  const TokenUncertainty uni = token_uncertainty(std::vector<float>(4096, 1.5f));
  EXPECT_NEAR(uni.entropy, std::log(4096.0), 1e-9);
  EXPECT_NEAR(uni.max_prob, 1.0 / 4096, 1e-12);
  EXPECT_NEAR(uni.margin, 0.0, 1e-12);

  // -inf logits are probability 0; one finite logit: certain.
  const TokenUncertainty one = token_uncertainty(std::vector<float>{kNegInf, 3.0f, kNegInf});
  EXPECT_EQ(one.max_prob, 1.0);
  EXPECT_EQ(one.margin, 1.0);
  EXPECT_EQ(one.entropy, 0.0);
  const TokenUncertainty two = token_uncertainty(std::vector<float>{0.0f, kNegInf, 0.0f});
  EXPECT_NEAR(two.entropy, std::log(2.0), 1e-12);
  EXPECT_NEAR(two.margin, 0.0, 1e-12);
}

TEST(Uncertainty, RefusesBadRowsAndNames) {
  EXPECT_THROW(token_uncertainty(std::vector<float>{}), Error);
  EXPECT_THROW(token_uncertainty(std::vector<float>{1.0f, std::nanf("")}), Error);
  EXPECT_THROW(token_uncertainty(std::vector<float>{kNegInf, kNegInf}), Error);
  EXPECT_EQ(parse_uncertainty_metric("maxprob"), UncertaintyMetric::kMaxProb);
  EXPECT_EQ(parse_uncertainty_metric("margin"), UncertaintyMetric::kMargin);
  EXPECT_EQ(parse_uncertainty_metric("entropy"), UncertaintyMetric::kEntropy);
  try {
    parse_uncertainty_metric("perplexity");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("maxprob, margin or entropy"), std::string::npos) << e.what();
  }
}

TEST(Uncertainty, PolicyDirectionPerMetric) {
  const std::vector<float> row = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};  // H = 1.03 nats
  const std::vector<float> hidden;
  UncertaintyPolicy e_lo(UncertaintyMetric::kEntropy, 1.0), e_hi(UncertaintyMetric::kEntropy, 1.1);
  EXPECT_TRUE(e_lo.escalate(row, hidden));
  EXPECT_FALSE(e_hi.escalate(row, hidden));
  UncertaintyPolicy m_lo(UncertaintyMetric::kMaxProb, 0.45), m_hi(UncertaintyMetric::kMaxProb, 0.55);
  EXPECT_FALSE(m_lo.escalate(row, hidden));
  EXPECT_TRUE(m_hi.escalate(row, hidden));
  UncertaintyPolicy g_lo(UncertaintyMetric::kMargin, 0.15), g_hi(UncertaintyMetric::kMargin, 0.25);
  EXPECT_FALSE(g_lo.escalate(row, hidden));
  EXPECT_TRUE(g_hi.escalate(row, hidden));
  EXPECT_EQ(e_lo.describe(), "entropy>1");
  EXPECT_EQ(m_lo.describe(), "maxprob<0.45");
  EXPECT_EQ(g_hi.describe(), "margin<0.25");
}

// Weighed by the remaining share r: entropy * r > t, (1 - maxprob) * r > 1 - t, (1 - margin) * r >
// 1 - t; at r = 1 the plain rules. Row: H = 1.0297 nats, maxprob 0.5, margin 0.2.
TEST(Uncertainty, PolicyWeighedByTheRemainingShare) {
  const std::vector<float> row = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  const std::vector<float> hidden;
  UncertaintyPolicy e(UncertaintyMetric::kEntropy, 0.5, true);
  EXPECT_TRUE(e.escalate(row, hidden, 1.0));    // 1.03 > 0.5
  EXPECT_TRUE(e.escalate(row, hidden, 0.5));    // 0.515 > 0.5
  EXPECT_FALSE(e.escalate(row, hidden, 0.48));  // 0.494
  UncertaintyPolicy m(UncertaintyMetric::kMaxProb, 0.55, true);
  EXPECT_TRUE(m.escalate(row, hidden, 1.0));    // 0.5 > 0.45, as maxprob 0.5 < 0.55
  EXPECT_FALSE(m.escalate(row, hidden, 0.8));   // 0.4
  UncertaintyPolicy g(UncertaintyMetric::kMargin, 0.3, true);
  EXPECT_TRUE(g.escalate(row, hidden, 0.9));    // 0.8 * 0.9 = 0.72 > 0.7
  EXPECT_FALSE(g.escalate(row, hidden, 0.85));  // 0.68
  // Unweighed policies ignore r.
  UncertaintyPolicy plain(UncertaintyMetric::kEntropy, 0.5);
  EXPECT_TRUE(plain.escalate(row, hidden, 0.01));
  EXPECT_EQ(e.describe(), "entropy*rem>0.5");
  EXPECT_EQ(m.describe(), "(1-maxprob)*rem>0.45");
}

// ---- model pairs -------------------------------------------------------------------------------


// A loaded model with its runner and a fresh cache per use.
struct Runner {
  std::unique_ptr<Model> model;
  std::unique_ptr<Transformer> tr;
  explicit Runner(const fs::path& path, ThreadPool& pool)
      : model(Model::load(path.string())), tr(std::make_unique<Transformer>(*model, pool)) {}
  KvCache cache(int64_t capacity = 256) const { return KvCache(model->config(), capacity); }
  int64_t n_vocab() const { return model->config().n_vocab; }
  // Logits of every position of `seq` from a fresh cache: [seq.size()][n_vocab].
  std::vector<std::vector<float>> all_rows(const std::vector<int32_t>& seq) const {
    KvCache kv = cache();
    const std::vector<float> flat = tr->forward(seq, kv, true);
    std::vector<std::vector<float>> rows;
    for (size_t i = 0; i < seq.size(); ++i)
      rows.emplace_back(flat.begin() + i * n_vocab(), flat.begin() + (i + 1) * n_vocab());
    return rows;
  }
  GenerateResult generate_alone(const std::vector<int32_t>& prompt, const GenerateOptions& opt) const {
    KvCache kv = cache();
    return generate(*tr, kv, prompt, opt);
  }
};

struct PairPaths {
  std::string name;
  fs::path small, large;
};

// The pairs to test on: the init pair always, the trained pair when present.
std::vector<PairPaths> pairs() {
  std::vector<PairPaths> out;
  const test::InitPair& ip = test::init_pair(0);
  if (ip.error.empty()) out.push_back({"init pair", ip.small, ip.large});
  const fs::path m = fs::path(SLM_SOURCE_DIR) / "models";
  if (fs::exists(m / "slm-brown-small-1m.gguf") && fs::exists(m / "slm-brown-large-10m.gguf"))
    out.push_back({"trained pair", m / "slm-brown-small-1m.gguf", m / "slm-brown-large-10m.gguf"});
  return out;
}

#define REQUIRE_INIT_PAIR()                                              \
  const test::InitPair& ip = test::init_pair(0);                                  \
  ASSERT_TRUE(ip.error.empty()) << ip.error

GenerateOptions greedy(int n) {
  GenerateOptions o;
  o.max_tokens = n;
  o.sampler.temperature = 0.0f;
  o.stop_at_eog = false;
  return o;
}

GenerateOptions sampled(int n, uint64_t seed) {
  GenerateOptions o;
  o.max_tokens = n;
  o.sampler.temperature = 1.0f;
  o.sampler.top_k = 0;
  o.sampler.top_p = 1.0f;
  o.sampler.min_p = 0.0f;
  o.sampler.seed = seed;
  o.stop_at_eog = false;
  return o;
}

std::vector<int32_t> prompt_of(const Model& m, const std::string& text) {
  return m.tokenizer().encode(text, m.tokenizer().vocab().add_bos, false);
}

// Escalates at the chosen step indices (0 = the prefill's decision); records what it was shown.
class ScriptedPolicy : public EscalationPolicy {
 public:
  explicit ScriptedPolicy(std::set<int> steps) : steps_(std::move(steps)) {}
  using EscalationPolicy::escalate;
  bool escalate(std::span<const float> logits, std::span<const float> hidden, double remaining) override {
    hidden_sizes.push_back(hidden.size());
    logits_sizes.push_back(logits.size());
    remainings.push_back(remaining);
    return steps_.count(step_++) > 0;
  }
  std::string describe() const override { return "scripted"; }
  std::vector<size_t> hidden_sizes, logits_sizes;
  std::vector<double> remainings;

 private:
  std::set<int> steps_;
  int step_ = 0;
};

class ConstPolicy : public EscalationPolicy {
 public:
  explicit ConstPolicy(bool v) : v_(v) {}
  using EscalationPolicy::escalate;
  bool escalate(std::span<const float>, std::span<const float>, double) override { return v_; }
  std::string describe() const override { return v_ ? "always" : "never"; }

 private:
  bool v_;
};

// |a - b| <= tol * max(1, |b|) elementwise, with -inf == -inf.
void expect_rows_near(std::span<const float> a, std::span<const float> b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < a.size() && bad < 5; ++i) {
    if (std::isinf(b[i]) && a[i] == b[i]) continue;
    if (!(std::fabs(a[i] - b[i]) <= tol * std::max(1.0, std::fabs(double(b[i]))))) {
      ADD_FAILURE() << what << ": [" << i << "] " << a[i] << " vs " << b[i];
      ++bad;
    }
  }
}

// ---- token cascade -----------------------------------------------------------------------------

TEST(TokenCascade, AlwaysEqualsLargeNeverEqualsSmall) {
  const auto ps = pairs();
  ASSERT_FALSE(ps.empty());
  ThreadPool pool(2);
  for (const PairPaths& pp : ps) {
    SCOPED_TRACE(pp.name);
    Runner small(pp.small, pool), large(pp.large, pool);
    const std::vector<int32_t> prompt = prompt_of(*large.model, "The jury said");
    const int n = 24;
    const GenerateResult large_alone = large.generate_alone(prompt, greedy(n));
    const GenerateResult small_alone = small.generate_alone(prompt, greedy(n));
    ASSERT_EQ(large_alone.tokens.size(), size_t(n));
    const int64_t fed = static_cast<int64_t>(prompt.size()) + n - 1;  // the last token is not fed
    {
      KvCache skv = small.cache(), lkv = large.cache();
      ConstPolicy always(true);
      CascadeDecodeModel c(*small.tr, skv, *large.tr, lkv, always);
      const GenerateResult r = generate(c, prompt, greedy(n));
      EXPECT_EQ(r.tokens, large_alone.tokens);
      EXPECT_EQ(r.text, large_alone.text);
      EXPECT_EQ(c.stats().decided, n);
      EXPECT_EQ(c.stats().decided_large, n);
      EXPECT_EQ(c.stats().large_calls, n);
      EXPECT_EQ(c.stats().large_fed, fed);
      EXPECT_DOUBLE_EQ(c.stats().large_share(), 1.0);
      EXPECT_EQ(c.pending(), 0);
      EXPECT_EQ(skv.size(), fed);
      EXPECT_EQ(lkv.size(), fed);
    }
    {
      KvCache skv = small.cache(), lkv = large.cache();
      ConstPolicy never(false);
      CascadeDecodeModel c(*small.tr, skv, *large.tr, lkv, never);
      const GenerateResult r = generate(c, prompt, greedy(n));
      EXPECT_EQ(r.tokens, small_alone.tokens);
      EXPECT_EQ(c.stats().decided, n);
      EXPECT_EQ(c.stats().decided_large, 0);
      EXPECT_EQ(c.stats().large_calls, 0);
      EXPECT_EQ(c.stats().large_fed, 0);
      EXPECT_EQ(c.pending(), fed);
      EXPECT_EQ(lkv.size(), 0);  // the large model never ran
      EXPECT_EQ(c.room(), 256 - fed);
      c.sync();
      EXPECT_EQ(lkv.size(), fed);
      EXPECT_EQ(c.stats().large_calls, 1);
      EXPECT_EQ(c.stats().decided_large, 0);
    }
  }
}

TEST(TokenCascade, ScriptedStepsTakeTheRightModelsLogits) {
  const auto ps = pairs();
  ASSERT_FALSE(ps.empty());
  ThreadPool pool(2);
  for (const PairPaths& pp : ps) {
    SCOPED_TRACE(pp.name);
    Runner small(pp.small, pool), large(pp.large, pool);
    const std::vector<int32_t> prompt = prompt_of(*large.model, "It was a cold morning in");
    const int n = 14;
    const std::set<int> steps = {0, 3, 4, 9};  // consecutive (3, 4) and a long pending run (5..9)
    KvCache skv = small.cache(), lkv = large.cache();
    ScriptedPolicy policy(steps);
    CascadeDecodeModel c(*small.tr, skv, *large.tr, lkv, policy);
    std::vector<std::vector<float>> rows;
    const GenerateResult r = generate(c, prompt, sampled(n, 11),
                                      {}, [&](std::span<const float> row) { rows.emplace_back(row.begin(), row.end()); });
    ASSERT_EQ(r.tokens.size(), size_t(n));
    ASSERT_EQ(rows.size(), size_t(n));

    // Referee: each model's logits for every prefix of the final sequence, in one forward each.
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), r.tokens.begin(), r.tokens.end() - 1);
    const auto small_rows = small.all_rows(seq), large_rows = large.all_rows(seq);
    for (int k = 0; k < n; ++k) {
      const size_t pos = prompt.size() - 1 + k;
      const auto& want = steps.count(k) ? large_rows[pos] : small_rows[pos];
      expect_rows_near(rows[k], want, 1e-4, "step " + std::to_string(k));
      // And it is not the other model's row (the two models differ).
      const auto& other = steps.count(k) ? small_rows[pos] : large_rows[pos];
      double diff = 0;
      for (size_t i = 0; i < other.size(); ++i) diff = std::max(diff, double(std::fabs(rows[k][i] - other[i])));
      EXPECT_GT(diff, 1e-2) << "step " << k;
    }
    EXPECT_EQ(c.stats().decided, n);
    EXPECT_EQ(c.stats().decided_large, 4);
    EXPECT_EQ(c.stats().large_calls, 4);
    // At step 9 the large model has seen the prompt and tokens 0..8; steps 10..13 fed 9..12.
    EXPECT_EQ(c.stats().large_fed, static_cast<int64_t>(prompt.size()) + 9);
    EXPECT_EQ(c.pending(), 4);
    EXPECT_NEAR(c.stats().large_share(), 4.0 / n, 1e-12);
    // The policy saw the small model's row and its hidden state [dim] every step, and no
    // request length (remaining share 1).
    ASSERT_EQ(policy.hidden_sizes.size(), size_t(n));
    for (int k = 0; k < n; ++k) {
      EXPECT_EQ(policy.hidden_sizes[k], size_t(small.model->config().dim));
      EXPECT_EQ(policy.logits_sizes[k], size_t(small.n_vocab()));
      EXPECT_EQ(policy.remainings[k], 1.0);
    }
  }
}

// With the request's length set, decision k of n is told (n - k) / n of the request remains.
TEST(TokenCascade, HorizonTellsThePolicyTheRemainingShare) {
  const auto ps = pairs();
  ASSERT_FALSE(ps.empty());
  ThreadPool pool(1);
  Runner small(ps[0].small, pool), large(ps[0].large, pool);
  const std::vector<int32_t> prompt = prompt_of(*large.model, "The house");
  const int n = 5;
  KvCache skv = small.cache(), lkv = large.cache();
  ScriptedPolicy policy({2});
  CascadeDecodeModel c(*small.tr, skv, *large.tr, lkv, policy);
  c.set_horizon(n);
  const GenerateResult r = generate(c, prompt, sampled(n, 3));
  ASSERT_EQ(r.tokens.size(), size_t(n));
  ASSERT_EQ(policy.remainings.size(), size_t(n));
  for (int k = 0; k < n; ++k) EXPECT_DOUBLE_EQ(policy.remainings[k], double(n - k) / n) << "decision " << k;
}

TEST(TokenCascade, UncertaintyPolicyEscalatesWhereTheSmallModelIsUnsure) {
  // Referee: the small model's own rows for the final history say where the entropy exceeds t.
  // Configurations: each pair, and the init pair's small model as both models (then the history
  // is the small model's own, so thresholds between its entropies surely give both branches; with
  // two random models the large one's tokens can leave the small one unsure everywhere).
  std::vector<PairPaths> configs = pairs();
  ASSERT_FALSE(configs.empty());
  REQUIRE_INIT_PAIR();
  configs.push_back({"init small as both", ip.small, ip.small});
  ThreadPool pool(2);
  int mixed = 0;
  for (const PairPaths& pp : configs) {
    SCOPED_TRACE(pp.name);
    Runner small(pp.small, pool), large(pp.large, pool);
    const std::vector<int32_t> prompt = prompt_of(*large.model, "The jury said");
    const int n = 20;
    // Thresholds: quantiles of the small model's entropies when alone.
    const GenerateResult alone = small.generate_alone(prompt, greedy(n));
    std::vector<int32_t> seq0 = prompt;
    seq0.insert(seq0.end(), alone.tokens.begin(), alone.tokens.end() - 1);
    std::vector<double> ents;
    for (const auto& row : small.all_rows(seq0)) ents.push_back(token_uncertainty(row).entropy);
    std::vector<double> gen_ents(ents.begin() + prompt.size() - 1, ents.end());
    std::sort(gen_ents.begin(), gen_ents.end());
    for (const size_t qi : {size_t(3), size_t(n / 2), size_t(n - 4)}) {
      // Between two observed values, so that no step of the small model alone sits on it.
      const double t = (gen_ents[qi - 1] + gen_ents[qi]) / 2;
      SCOPED_TRACE("entropy threshold " + std::to_string(t));
      KvCache skv = small.cache(), lkv = large.cache();
      UncertaintyPolicy policy(UncertaintyMetric::kEntropy, t);
      CascadeDecodeModel c(*small.tr, skv, *large.tr, lkv, policy);
      const GenerateResult r = generate(c, prompt, greedy(n));
      std::vector<int32_t> seq = prompt;
      seq.insert(seq.end(), r.tokens.begin(), r.tokens.end() - 1);
      const auto small_rows = small.all_rows(seq);
      // Rows within rounding of t (batched and one-by-one forwards differ slightly) may go either way.
      int expected = 0, ambiguous = 0;
      for (int k = 0; k < n; ++k) {
        const double h = token_uncertainty(small_rows[prompt.size() - 1 + k]).entropy;
        if (std::fabs(h - t) < 1e-5) ++ambiguous;
        else expected += h > t;
      }
      EXPECT_GE(c.stats().decided_large, expected);
      EXPECT_LE(c.stats().decided_large, expected + ambiguous);
      EXPECT_LE(ambiguous, 1);
      mixed += c.stats().decided_large > 0 && c.stats().decided_large < n;
    }
  }
  EXPECT_GT(mixed, 0) << "no threshold gave both branches: the test checks nothing";
}

TEST(TokenCascade, RefusesMismatchedModelsAndCaches) {
  REQUIRE_INIT_PAIR();
  ThreadPool pool(2);
  Runner small(ip.small, pool), large(ip.large, pool), bytes(ip.other_vocab, pool);
  ConstPolicy never(false);
  KvCache a = small.cache(), b = bytes.cache(), l = large.cache(16);
  EXPECT_THROW(CascadeDecodeModel(*small.tr, a, *bytes.tr, b, never), Error);
  small.tr->forward(std::vector<int32_t>{1, 2}, a);
  EXPECT_THROW(CascadeDecodeModel(*small.tr, a, *large.tr, l, never), Error);  // 2 vs 0 positions
  a.clear();
  CascadeDecodeModel c(*small.tr, a, *large.tr, l, never);
  EXPECT_EQ(c.room(), 16);  // the smaller cache
}

// ---- request cascade ---------------------------------------------------------------------------

TEST(RequestCascade, SequenceScoreByHand) {
  // Two steps: p = (0.5, 0.5) chose token 1; p = (0.9, 0.1) chose token 1; one more row (EOG step)
  // with p = (1/3, 2/3).
  const std::vector<std::vector<float>> rows = {
      {0.0f, 0.0f}, {std::log(0.9f), std::log(0.1f)}, {std::log(1.0f), std::log(2.0f)}};
  const std::vector<int32_t> toks = {1, 1};
  RequestScore nll{std::nullopt, 1.0};
  EXPECT_NEAR(sequence_score(nll, rows, toks), (std::log(2.0) + std::log(10.0)) / 2, 1e-6);
  RequestScore mp{UncertaintyMetric::kMaxProb, 0.5};
  EXPECT_NEAR(sequence_score(mp, rows, toks), (0.5 + 0.9 + 2.0 / 3) / 3, 1e-6);
  EXPECT_EQ(sequence_score(nll, std::span<const std::vector<float>>(rows.data(), 1), {}), 0.0);
  EXPECT_TRUE(nll.escalates(1.5));
  EXPECT_FALSE(nll.escalates(0.5));
  EXPECT_TRUE(mp.escalates(0.4));
  EXPECT_EQ(nll.describe(), "nll>1");
  EXPECT_EQ(mp.describe(), "maxprob<0.5");
  EXPECT_EQ(RequestScore::parse("nll"), std::nullopt);
  EXPECT_EQ(RequestScore::parse("entropy"), UncertaintyMetric::kEntropy);
  EXPECT_THROW(RequestScore::parse("bleu"), Error);
}

TEST(RequestCascade, ThresholdsForceEachBranch) {
  const auto ps = pairs();
  ASSERT_FALSE(ps.empty());
  ThreadPool pool(2);
  for (const PairPaths& pp : ps) {
    SCOPED_TRACE(pp.name);
    Runner small(pp.small, pool), large(pp.large, pool);
    const std::vector<int32_t> prompt = prompt_of(*large.model, "The jury said");
    const int n = 16;
    const GenerateResult small_alone = small.generate_alone(prompt, greedy(n));
    const GenerateResult large_alone = large.generate_alone(prompt, greedy(n));
    // Referee score: mean NLL of the small answer under the small model, from one full forward.
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), small_alone.tokens.begin(), small_alone.tokens.end() - 1);
    const auto rows = small.all_rows(seq);
    double nll = 0;
    for (int k = 0; k < n; ++k) {
      const auto& row = rows[prompt.size() - 1 + k];
      double mx = -1e30, z = 0;
      for (float v : row) mx = std::max(mx, double(v));
      for (float v : row) z += std::exp(v - mx);
      nll -= row[small_alone.tokens[k]] - mx - std::log(z);
    }
    nll /= n;

    for (const bool force_large : {false, true}) {
      KvCache skv = small.cache(), lkv = large.cache();
      TransformerDecodeModel sd(*small.tr, skv), ld(*large.tr, lkv);
      std::string streamed;
      const RequestScore score{std::nullopt, force_large ? -1.0 : 1e9};
      const RequestCascadeResult rc = request_cascade(sd, ld, prompt, greedy(n), score, [&](std::string_view s) {
        streamed += s;
        return true;
      });
      EXPECT_EQ(rc.large_answered, force_large);
      EXPECT_NEAR(rc.score, nll, 1e-4 * std::max(1.0, nll));
      EXPECT_EQ(rc.small.tokens, small_alone.tokens);
      EXPECT_EQ(rc.result.tokens, force_large ? large_alone.tokens : small_alone.tokens);
      EXPECT_EQ(streamed, rc.result.text);
      EXPECT_EQ(lkv.size(), force_large ? static_cast<int64_t>(prompt.size()) + n - 1 : 0);
    }
    // A metric score: mean entropy of the small model's steps, threshold just below / above it.
    double ent = 0;
    for (int k = 0; k < n; ++k) ent += token_uncertainty(rows[prompt.size() - 1 + k]).entropy;
    ent /= n;
    for (const bool force_large : {false, true}) {
      KvCache skv = small.cache(), lkv = large.cache();
      TransformerDecodeModel sd(*small.tr, skv), ld(*large.tr, lkv);
      const RequestScore score{UncertaintyMetric::kEntropy, force_large ? ent - 1e-3 : ent + 1e-3};
      const RequestCascadeResult rc = request_cascade(sd, ld, prompt, greedy(n), score);
      EXPECT_NEAR(rc.score, ent, 1e-5 * std::max(1.0, ent));
      EXPECT_EQ(rc.large_answered, force_large);
    }
  }
}

// ---- contrastive decoding and proxy tuning: scripted rows --------------------------------------

// Returns a fixed row whatever it is fed; records what it was fed.
class FixedModel : public DecodeModel {
 public:
  explicit FixedModel(std::vector<float> row, int64_t room = 100) : row_(std::move(row)), room_(room) {}
  int64_t n_vocab() const override { return static_cast<int64_t>(row_.size()); }
  int64_t room() const override { return room_ - static_cast<int64_t>(fed.size()); }
  void forward(std::span<const int32_t> tokens, std::span<float> logits) override {
    fed.insert(fed.end(), tokens.begin(), tokens.end());
    std::copy(row_.begin(), row_.end(), logits.begin());
  }
  std::string piece(int32_t id) const override { return std::string(1, char('a' + id)); }
  bool is_end_of_generation(int32_t) const override { return false; }
  std::vector<int32_t> fed;

 private:
  std::vector<float> row_;
  int64_t room_;
};

std::vector<float> logs(std::initializer_list<double> ps, double shift) {
  std::vector<float> out;
  for (double p : ps) out.push_back(static_cast<float>(std::log(p) + shift));
  return out;
}

TEST(Contrastive, RowByHandAndPlausibilityMask) {
  // Expert p_L = (0.5, 0.3, 0.15, 0.05), amateur p_S = (0.6, 0.1, 0.1, 0.2); raw logits shifted.
  const auto expert = logs({0.5, 0.3, 0.15, 0.05}, 2.0), amateur = logs({0.6, 0.1, 0.1, 0.2}, -1.0);
  std::vector<float> out(4);
  contrastive_logits(expert, amateur, ContrastiveParams{0.2f, 0.5f}, out);  // cutoff 0.1
  EXPECT_NEAR(out[0], std::log(0.5) - 0.5 * std::log(0.6), 1e-5);
  EXPECT_NEAR(out[1], std::log(0.3) - 0.5 * std::log(0.1), 1e-5);
  EXPECT_NEAR(out[2], std::log(0.15) - 0.5 * std::log(0.1), 1e-5);
  EXPECT_EQ(out[3], kNegInf);  // 0.05 < 0.2 * 0.5
  contrastive_logits(expert, amateur, ContrastiveParams{0.5f, 1.0f}, out);  // cutoff 0.25
  EXPECT_NEAR(out[1], std::log(0.3) - std::log(0.1), 1e-5);
  EXPECT_EQ(out[2], kNegInf);
  EXPECT_EQ(out[3], kNegInf);
  contrastive_logits(expert, amateur, ContrastiveParams{0.0f, 0.0f}, out);  // the expert alone
  EXPECT_NEAR(out[3], std::log(0.05), 1e-5);
  EXPECT_THROW(contrastive_logits(expert, amateur, ContrastiveParams{1.5f, 1.0f}, out), Error);
  EXPECT_THROW(contrastive_logits(expert, amateur, ContrastiveParams{0.1f, -1.0f}, out), Error);
  EXPECT_THROW(contrastive_logits(expert, std::vector<float>(3), ContrastiveParams{}, out), Error);
}

TEST(Contrastive, GreedyNeverPicksAnImplausibleToken) {
  // Token 3 is implausible for the expert (0.02 < 0.1 * 0.6) but the amateur almost never picks it,
  // so log p_L - log p_S is largest there: without the mask greedy would choose it.
  FixedModel expert(logs({0.6, 0.3, 0.08, 0.02}, 0.0)), amateur(logs({0.7, 0.1, 0.199, 0.001}, 0.0));
  ContrastiveDecodeModel cd(expert, amateur, ContrastiveParams{0.1f, 1.0f});
  const GenerateResult r = generate(cd, std::vector<int32_t>{0, 1}, greedy(5));
  EXPECT_EQ(r.tokens, std::vector<int32_t>(5, 1));  // log .3 - log .1 beats log .6 - log .7, log .08 - log .199
  EXPECT_EQ(r.text, "bbbbb");
  // Both models were fed the same tokens.
  EXPECT_EQ(expert.fed, (std::vector<int32_t>{0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(amateur.fed, expert.fed);
  // The referee can fail: without the mask (alpha 0) token 3 wins.
  FixedModel e2(logs({0.6, 0.3, 0.08, 0.02}, 0.0)), a2(logs({0.7, 0.1, 0.199, 0.001}, 0.0));
  ContrastiveDecodeModel unmasked(e2, a2, ContrastiveParams{0.0f, 1.0f});
  EXPECT_EQ(generate(unmasked, std::vector<int32_t>{0}, greedy(1)).tokens, std::vector<int32_t>{3});
  // Room is the smaller one.
  FixedModel e3(logs({0.5, 0.5}, 0.0), 10), a3(logs({0.5, 0.5}, 0.0), 7);
  EXPECT_EQ(ContrastiveDecodeModel(e3, a3).room(), 7);
  FixedModel odd(logs({0.2, 0.3, 0.5}, 0.0));
  EXPECT_THROW(ContrastiveDecodeModel(e3, odd), Error);
}

TEST(Proxy, RowByHand) {
  const auto large = logs({0.5, 0.3, 0.2}, 1.0), tuned = logs({0.2, 0.2, 0.6}, -3.0), base = logs({0.4, 0.4, 0.2}, 0.5);
  std::vector<float> out(3);
  proxy_logits(large, tuned, base, 1.0f, out);
  for (int i = 0; i < 3; ++i) {
    const double pl[] = {0.5, 0.3, 0.2}, pt[] = {0.2, 0.2, 0.6}, pb[] = {0.4, 0.4, 0.2};
    EXPECT_NEAR(out[i], std::log(pl[i]) + std::log(pt[i]) - std::log(pb[i]), 1e-5) << i;
  }
  proxy_logits(large, tuned, base, 0.0f, out);
  EXPECT_NEAR(out[1], std::log(0.3), 1e-5);
  proxy_logits(large, tuned, base, 2.0f, out);
  EXPECT_NEAR(out[2], std::log(0.2) + 2 * (std::log(0.6) - std::log(0.2)), 1e-5);
  EXPECT_THROW(proxy_logits(large, tuned, base, -1.0f, out), Error);
  EXPECT_THROW(proxy_logits(large, tuned, std::vector<float>(2), 1.0f, out), Error);
  // Greedy: the tuned model's shift moves the choice from token 0 (large alone) to token 2.
  FixedModel l(large), t(tuned), b(base);
  ProxyDecodeModel pd(l, t, b);
  EXPECT_EQ(generate(pd, std::vector<int32_t>{0}, greedy(2)).tokens, (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(t.fed, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(b.fed, t.fed);
}

// ---- contrastive decoding and proxy tuning on real models --------------------------------------

// log_softmax in double, as a referee independent of the library's.
std::vector<double> lsm(const std::vector<float>& row) {
  double mx = -1e300, z = 0;
  for (float v : row) mx = std::max(mx, double(v));
  for (float v : row) z += std::exp(v - mx);
  std::vector<double> out;
  for (float v : row) out.push_back(v - mx - std::log(z));
  return out;
}

TEST(Contrastive, RowsEqualHandComputedRowsOnRealModels) {
  REQUIRE_INIT_PAIR();
  ThreadPool pool(2);
  Runner small(ip.small, pool), large(ip.large, pool);
  const std::vector<int32_t> prompt = prompt_of(*large.model, "The jury said");
  const float alpha = 0.1f, beta = 0.7f;
  for (const bool greedy_run : {true, false}) {
    SCOPED_TRACE(greedy_run ? "greedy" : "sampled");
    KvCache skv = small.cache(), lkv = large.cache();
    TransformerDecodeModel sd(*small.tr, skv), ld(*large.tr, lkv);
    ContrastiveDecodeModel cd(ld, sd, ContrastiveParams{alpha, beta});
    std::vector<std::vector<float>> rows;
    const int n = 10;
    const GenerateResult r = generate(cd, prompt, greedy_run ? greedy(n) : sampled(n, 5), {},
                                      [&](std::span<const float> row) { rows.emplace_back(row.begin(), row.end()); });
    ASSERT_EQ(rows.size(), size_t(n));
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), r.tokens.begin(), r.tokens.end() - 1);
    const auto lr = large.all_rows(seq), sr = small.all_rows(seq);
    for (int k = 0; k < n; ++k) {
      const size_t pos = prompt.size() - 1 + k;
      const auto pl = lsm(lr[pos]), ps = lsm(sr[pos]);
      const double mx = *std::max_element(pl.begin(), pl.end());
      std::vector<float> want(pl.size());
      int n_plausible = 0;
      for (size_t i = 0; i < pl.size(); ++i) {
        // Referee in probabilities: p_L >= alpha * max p_L (rows near the cutoff are skipped below).
        const bool plausible = std::exp(pl[i]) >= alpha * std::exp(mx);
        n_plausible += plausible;
        want[i] = plausible ? static_cast<float>(pl[i] - beta * ps[i]) : kNegInf;
      }
      EXPECT_GT(n_plausible, 0);
      // Tokens within rounding of the cutoff may fall either side: compare the others.
      std::vector<float> got = rows[k];
      for (size_t i = 0; i < pl.size(); ++i)
        if (std::fabs(pl[i] - (mx + std::log(alpha))) < 1e-4) got[i] = want[i];
      expect_rows_near(got, want, 1e-4, "step " + std::to_string(k));
      // The chosen token is plausible under the large model.
      EXPECT_GE(std::exp(pl[r.tokens[k]]), alpha * std::exp(mx) * (1 - 1e-4)) << "step " << k;
    }
  }
}

TEST(Proxy, RowsEqualThePapersFormulaOnRealModels) {
  REQUIRE_INIT_PAIR();
  ThreadPool pool(2);
  Runner base(ip.small, pool), large(ip.large, pool), tuned(ip.tuned, pool);
  const std::vector<int32_t> prompt = prompt_of(*large.model, "The jury said");
  const float alpha = 0.8f;
  KvCache bkv = base.cache(), lkv = large.cache(), tkv = tuned.cache();
  TransformerDecodeModel bd(*base.tr, bkv), ld(*large.tr, lkv), td(*tuned.tr, tkv);
  ProxyDecodeModel pd(ld, td, bd, alpha);
  std::vector<std::vector<float>> rows;
  const int n = 10;
  const GenerateResult r = generate(pd, prompt, sampled(n, 9), {},
                                    [&](std::span<const float> row) { rows.emplace_back(row.begin(), row.end()); });
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), r.tokens.begin(), r.tokens.end() - 1);
  const auto lr = large.all_rows(seq), tr = tuned.all_rows(seq), br = base.all_rows(seq);
  for (int k = 0; k < n; ++k) {
    const size_t pos = prompt.size() - 1 + k;
    // The paper's formula on raw logits; equal to the library's row after log-softmax.
    std::vector<float> raw(lr[pos].size());
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = lr[pos][i] + alpha * (tr[pos][i] - br[pos][i]);
    const auto want = lsm(raw), got = lsm(rows[k]);
    std::vector<float> wf(want.begin(), want.end()), gf(got.begin(), got.end());
    expect_rows_near(gf, wf, 1e-4, "step " + std::to_string(k));
  }
}

// ---- slm collab generate -----------------------------------------------------------------------

TEST(CollabGenerateCli, UnknownStrategyListsTheKnownOnes) {
  REQUIRE_INIT_PAIR();
  const test::CommandResult r = run_slm("collab generate --small " + test::quote(ip.small) + " --large " + test::quote(ip.large) +
                                        " --strategy telepathy -p hi -n 4");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown strategy 'telepathy'"), std::string::npos) << r.err;
  for (const char* s : {"token-cascade", "request-cascade", "contrastive", "proxy"})
    EXPECT_NE(r.err.find(s), std::string::npos) << r.err;
}

TEST(CollabGenerateCli, VocabularyMismatchIsRefused) {
  REQUIRE_INIT_PAIR();
  const fs::path six = fs::path(SLM_SOURCE_DIR) / "models" / "slm-brown-6m.gguf";
  for (const char* strategy : {"token-cascade", "contrastive", "request-cascade"}) {
    const test::CommandResult r = run_slm("collab generate --small " + test::quote(ip.other_vocab) + " --large " + test::quote(six) +
                                          " --strategy " + std::string(strategy) + " -p hi -n 4");
    EXPECT_NE(r.exit_code, 0) << strategy;
    EXPECT_NE(r.err.find("do not share a vocabulary"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(ip.other_vocab.string()), std::string::npos) << r.err;
  }
  const test::CommandResult p = run_slm("collab generate --small " + test::quote(ip.small) + " --large " + test::quote(ip.large) +
                                        " --tuned " + test::quote(ip.other_vocab) + " --strategy proxy -p hi -n 4");
  EXPECT_NE(p.exit_code, 0);
  EXPECT_NE(p.err.find("tuned small model"), std::string::npos) << p.err;
}

TEST(CollabGenerateCli, BadOptionsGiveAMessage) {
  REQUIRE_INIT_PAIR();
  const std::string base = "collab generate --small " + test::quote(ip.small) + " --large " + test::quote(ip.large) + " -p hi -n 4 ";
  struct Case {
    std::string args, expect;
  };
  for (const Case& c : std::vector<Case>{{"--strategy token-cascade --metric nll", "maxprob, margin or entropy"},
                                         {"--strategy request-cascade --metric bleu", "nll, maxprob"},
                                         {"--strategy proxy", "--tuned"},
                                         {"--strategy contrastive --alpha 2", "alpha"},
                                         {"--strategy contrastive --tuned " + test::quote(ip.tuned), "only used by"},
                                         {"--strategy request-cascade --horizon", "--horizon is only used by"}}) {
    const test::CommandResult r = run_slm(base + c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << ": " << r.err;
  }
}

TEST(CollabGenerateCli, AlwaysEscalatingCascadeEqualsGenerateOnTheLargeModel) {
  const auto ps = pairs();
  ASSERT_FALSE(ps.empty());
  for (const PairPaths& pp : ps) {
    SCOPED_TRACE(pp.name);
    const std::string tail = " -p 'The jury said' -n 24 --temp 0 --ignore-eos --json -t 2";
    const test::CommandResult g = run_slm("generate -m " + test::quote(pp.large) + tail);
    ASSERT_EQ(g.exit_code, 0) << g.err;
    const std::string pair = "collab generate --small " + test::quote(pp.small) + " --large " + test::quote(pp.large);
    // maxprob < 2 holds for every row: every token escalates.
    const test::CommandResult c = run_slm(pair + " --strategy token-cascade --metric maxprob --threshold 2" + tail);
    ASSERT_EQ(c.exit_code, 0) << c.err;
    const auto gj = nlohmann::json::parse(g.out), cj = nlohmann::json::parse(c.out);
    EXPECT_EQ(cj["tokens"], gj["tokens"]);
    EXPECT_EQ(cj["text"], gj["text"]);
    EXPECT_EQ(cj["stats"]["decided_large"], 24);
    EXPECT_EQ(cj["stats"]["large_share"], 1.0);
    // Request cascade forced to the large model: the same answer.
    const test::CommandResult rq = run_slm(pair + " --strategy request-cascade --threshold -1" + tail);
    ASSERT_EQ(rq.exit_code, 0) << rq.err;
    const auto rj = nlohmann::json::parse(rq.out);
    EXPECT_EQ(rj["tokens"], gj["tokens"]);
    EXPECT_EQ(rj["stats"]["answered_by"], "large");
    // Never escalating: the small model's answer.
    const test::CommandResult gs = run_slm("generate -m " + test::quote(pp.small) + tail);
    const test::CommandResult n = run_slm(pair + " --strategy token-cascade --metric entropy --threshold 1e9" + tail);
    ASSERT_EQ(n.exit_code, 0) << n.err;
    EXPECT_EQ(nlohmann::json::parse(n.out)["tokens"], nlohmann::json::parse(gs.out)["tokens"]);
    EXPECT_EQ(nlohmann::json::parse(n.out)["stats"]["decided_large"], 0);
    // Contrastive with no cutoff and no amateur, and proxy tuning with tuned == base: the large
    // model's log-softmax, so its greedy answer.
    const test::CommandResult cd = run_slm(pair + " --strategy contrastive --alpha 0 --beta 0" + tail);
    ASSERT_EQ(cd.exit_code, 0) << cd.err;
    EXPECT_EQ(nlohmann::json::parse(cd.out)["tokens"], gj["tokens"]);
    const test::CommandResult px = run_slm(pair + " --strategy proxy --tuned " + test::quote(pp.small) + tail);
    ASSERT_EQ(px.exit_code, 0) << px.err;
    EXPECT_EQ(nlohmann::json::parse(px.out)["tokens"], gj["tokens"]);
  }
}

TEST(CollabGenerateCli, StreamsTextAndPrintsTheShare) {
  REQUIRE_INIT_PAIR();
  const std::string pair = "collab generate --small " + test::quote(ip.small) + " --large " + test::quote(ip.large);
  const test::CommandResult c = run_slm(pair + " --strategy token-cascade --threshold 1e9 -p 'The jury' -n 8 --temp 0 --ignore-eos");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.err.find("large model decided 0/8 tokens (0.0%)"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("tok/s"), std::string::npos) << c.err;
  EXPECT_FALSE(c.out.empty());
  // Weighed by the remaining share: entropy * r > -1 always holds (every token escalates).
  const test::CommandResult h = run_slm(pair + " --strategy token-cascade --horizon --threshold -1 -p 'The jury' -n 8 --temp 0 --ignore-eos --json");
  ASSERT_EQ(h.exit_code, 0) << h.err;
  const auto hj = nlohmann::json::parse(h.out);
  EXPECT_EQ(hj["stats"]["policy"], "entropy*rem>-1");
  EXPECT_EQ(hj["stats"]["decided_large"], 8);
  for (const std::string& s : {std::string("contrastive --beta 0.5"), "proxy --tuned " + test::quote(ip.tuned) + " --alpha 0.5"}) {
    const test::CommandResult r = run_slm(pair + " --strategy " + s + " -p 'The jury' -n 8 --ignore-eos --json");
    ASSERT_EQ(r.exit_code, 0) << s << ": " << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["tokens"].size(), 8u) << s;
  }
}

}  // namespace
}  // namespace slm
