// The token router (R2R): features against hand-computed values, the MLP's backward pass against
// finite differences, training on a separable set, the file format (round trip, refusals), the
// label rule (pure bigram rule by hand; the forked KV cache against fresh recomputation), the
// RouterPolicy, and `slm collab router train` end to end on two random models sharing the
// built-in vocabulary (and on the real model pair when models/ has it).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/router_policy.h"
#include "io/atomic_file.h"
#include "io/gguf_writer.h"
#include "model/model.h"
#include "model/token_router.h"
#include "test_util.h"
#include "train/router_labels.h"
#include "train/router_trainer.h"

namespace slm::test {
namespace {

std::vector<float> random_vec(std::mt19937& g, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

TokenRouter small_router(int dim, int hidden, int top_k = 2, int vocab = 10) {
  TokenRouterConfig c;
  c.model_dim = dim;
  c.model_vocab = vocab;
  c.top_k = top_k;
  c.hidden = hidden;
  return TokenRouter(c);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// --- features ----------------------------------------------------------------------------------

TEST(RouterFeatures, MatchHandComputedValues) {
  // p = [1/8, 1/2, 1/8, 1/4]: entropy = 1.75 ln 2, margin 1/4.
  const std::vector<float> logits = {std::log(0.125f) + 3, std::log(0.5f) + 3, std::log(0.125f) + 3, std::log(0.25f) + 3};
  const std::vector<float> hidden = {1.5f, -2.0f};
  const std::vector<float> f = router_features(logits, hidden, 3);
  ASSERT_EQ(f.size(), 2u + 3u + 2u);
  EXPECT_EQ(f[0], 1.5f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_NEAR(f[2], 0.5, 1e-6);
  EXPECT_NEAR(f[3], 0.25, 1e-6);
  EXPECT_NEAR(f[4], 0.125, 1e-6);
  EXPECT_NEAR(f[5], 1.75 * std::log(2.0), 1e-6);
  EXPECT_NEAR(f[6], 0.25, 1e-6);
  // k above the vocabulary size: the missing probabilities are zeros.
  const std::vector<float> g = router_features(std::vector<float>{0.0f, 0.0f}, hidden, 4);
  EXPECT_NEAR(g[2], 0.5, 1e-6);
  EXPECT_NEAR(g[3], 0.5, 1e-6);
  EXPECT_EQ(g[4], 0.0f);
  EXPECT_EQ(g[5], 0.0f);
  EXPECT_NEAR(g[6], std::log(2.0), 1e-6);
  EXPECT_NEAR(g[7], 0.0, 1e-6);
  EXPECT_THROW(router_features(std::vector<float>{}, hidden, 2), Error);
}

// --- MLP forward and backward ------------------------------------------------------------------

// The forward pass by hand for one input, against TokenRouter::logit_standardized.
TEST(RouterMlp, ForwardMatchesTheFormula) {
  TokenRouter r = small_router(1, 2, 1, 4);  // F = 1 + 1 + 2 = 4, H = 2
  ASSERT_EQ(r.n_features(), 4);
  ASSERT_EQ(r.n_params(), 2 * 4 + 2 + 2 + 1);
  std::vector<float>& p = r.params();
  for (size_t i = 0; i < p.size(); ++i) p[i] = 0.1f * static_cast<float>(i) - 0.5f;
  const std::vector<float> x = {1.0f, -1.0f, 0.5f, 2.0f};
  double s = p[r.b2_offset()];
  for (int h = 0; h < 2; ++h) {
    double a = p[r.b1_offset() + h];
    for (int f = 0; f < 4; ++f) a += p[h * 4 + f] * x[f];
    s += p[r.w2_offset() + h] * std::tanh(a);
  }
  EXPECT_NEAR(r.logit_standardized(p, x), s, 1e-6);
  // Standardisation is applied before: mean 1, std 2 on every feature.
  std::fill(r.feature_mean().begin(), r.feature_mean().end(), 1.0f);
  std::fill(r.feature_std().begin(), r.feature_std().end(), 2.0f);
  std::vector<float> raw(4);
  for (int f = 0; f < 4; ++f) raw[f] = x[f] * 2.0f + 1.0f;
  EXPECT_NEAR(r.probability(raw), 1.0 / (1.0 + std::exp(-s)), 1e-6);
}

void check_gradient(int hidden) {
  std::mt19937 g(42 + hidden);
  TokenRouter r = small_router(3, hidden, 2, 10);  // F = 7
  const int64_t F = r.n_features(), n = 6;
  std::vector<float> params = random_vec(g, static_cast<size_t>(r.n_params()), 0.7f);
  const std::vector<float> x = random_vec(g, static_cast<size_t>(n * F));
  const std::vector<uint8_t> y = {1, 0, 0, 1, 0, 1};
  const std::vector<float> w = {2.0f, 1.0f, 0.5f, 1.0f, 1.0f, 3.0f};
  std::vector<float> grads(params.size()), scratch(params.size());
  router_loss_and_grad(r, params, x, y, w, grads);
  const float eps = 1e-2f;
  double worst = 0.0;
  for (size_t k = 0; k < params.size(); ++k) {
    const float keep = params[k];
    params[k] = keep + eps;
    const double up = router_loss_and_grad(r, params, x, y, w, scratch);
    params[k] = keep - eps;
    const double down = router_loss_and_grad(r, params, x, y, w, scratch);
    params[k] = keep;
    const double fd = (up - down) / (2.0 * eps);
    worst = std::max(worst, std::fabs(fd - grads[k]));
    EXPECT_NEAR(grads[k], fd, 2e-4 + 2e-3 * std::fabs(fd)) << "param " << k << " hidden " << hidden;
  }
  EXPECT_LT(worst, 1e-3);
}

TEST(RouterMlp, GradientMatchesFiniteDifferences) { check_gradient(5); }
TEST(RouterMlp, LogisticGradientMatchesFiniteDifferences) { check_gradient(0); }

TEST(RouterMlp, LossIsTheWeightedMeanBce) {
  TokenRouter r = small_router(1, 0, 1, 4);  // logistic, F = 4, all params 0: p = 0.5
  std::vector<float> grads(static_cast<size_t>(r.n_params()));
  const std::vector<float> x(8, 1.0f);
  const std::vector<uint8_t> y = {1, 0};
  EXPECT_NEAR(router_loss_and_grad(r, r.params(), x, y, {}, grads), std::log(2.0), 1e-9);
  // d/db = mean(p - y) = (−0.5 + 0.5) / 2 = 0; weights 3:1 give (3 (−0.5) + 0.5) / 4 = −0.25.
  EXPECT_NEAR(grads[r.b2_offset()], 0.0, 1e-9);
  router_loss_and_grad(r, r.params(), x, y, std::vector<float>{3.0f, 1.0f}, grads);
  EXPECT_NEAR(grads[r.b2_offset()], -0.25, 1e-7);
}

// --- AUC -------------------------------------------------------------------------------------------

TEST(RouterMetrics, AucByHand) {
  // Pairs (pos, neg): 0.35 > 0.1, 0.35 < 0.4, 0.8 > both: 3 of 4.
  EXPECT_NEAR(roc_auc(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f}, std::vector<uint8_t>{0, 0, 1, 1}), 0.75, 1e-12);
  // Ties count half.
  EXPECT_NEAR(roc_auc(std::vector<float>{0.5f, 0.5f}, std::vector<uint8_t>{0, 1}), 0.5, 1e-12);
  EXPECT_NEAR(roc_auc(std::vector<float>{0.2f, 0.9f, 0.9f}, std::vector<uint8_t>{0, 1, 0}), 0.75, 1e-12);
  // Perfect, reversed, one class.
  EXPECT_EQ(roc_auc(std::vector<float>{1, 2, 3}, std::vector<uint8_t>{0, 1, 1}), 1.0);
  EXPECT_EQ(roc_auc(std::vector<float>{3, 2, 1}, std::vector<uint8_t>{0, 1, 1}), 0.0);
  EXPECT_EQ(roc_auc(std::vector<float>{3, 2, 1}, std::vector<uint8_t>{1, 1, 1}), 0.5);
}

TEST(RouterMetrics, EvaluateByHand) {
  // Logistic router whose score is the first feature: s = x0 (F = 4, other weights 0).
  TokenRouter r = small_router(1, 0, 1, 4);
  r.params()[r.w2_offset()] = 1.0f;
  const std::vector<float> x = {2, 0, 0, 0, -1, 0, 0, 0, 0.5f, 0, 0, 0, -3, 0, 0, 0};
  const std::vector<uint8_t> y = {1, 1, 0, 0};
  const RouterMetrics m = evaluate_router(r, x, y);
  // p >= 0.5 for s = 2 and 0.5: right, wrong, wrong, right.
  EXPECT_EQ(m.n, 4);
  EXPECT_EQ(m.positives, 2);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(m.escalated, 0.5);
  EXPECT_DOUBLE_EQ(m.recall, 0.5);
  const double loss = (std::log1p(std::exp(-2.0)) + std::log1p(std::exp(1.0)) + std::log1p(std::exp(0.5)) +
                       std::log1p(std::exp(-3.0))) / 4.0;
  EXPECT_NEAR(m.loss, loss, 1e-6);
  EXPECT_NEAR(m.auc, 0.75, 1e-12);  // positives {2, -1} vs negatives {0.5, -3}: 3 of 4 pairs
}

// --- training ----------------------------------------------------------------------------------

// Labels from a fixed hyperplane with a margin, features on different scales and offsets (so the
// standardisation matters), positives a minority.
void make_separable(int64_t n, int64_t F, std::vector<float>& x, std::vector<uint8_t>& y) {
  std::mt19937 g(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> dir(static_cast<size_t>(F));
  for (float& v : dir) v = d(g);
  x.clear();
  y.clear();
  while (static_cast<int64_t>(y.size()) < n) {
    std::vector<float> v(static_cast<size_t>(F));
    double s = 0.0;
    for (int64_t f = 0; f < F; ++f) {
      v[f] = d(g);
      s += dir[f] * v[f];
    }
    if (std::fabs(s - 1.0) < 0.3) continue;  // the margin
    for (int64_t f = 0; f < F; ++f) x.push_back(v[f] * static_cast<float>(1 + f) + 10.0f * static_cast<float>(f % 3));
    y.push_back(s > 1.0 ? 1 : 0);
  }
}

void check_learns_separable(int hidden) {
  TokenRouter r = small_router(4, hidden, 2, 10);  // F = 8
  std::vector<float> x;
  std::vector<uint8_t> y;
  make_separable(1200, r.n_features(), x, y);
  const int64_t pos = std::count(y.begin(), y.end(), uint8_t{1});
  ASSERT_GT(pos, 50);
  ASSERT_LT(pos, 600);
  RouterTrainParams p;
  p.epochs = 60;
  p.lr = 1e-2f;
  p.batch_size = 32;
  const RouterTrainReport rep = train_router(r, x, y, p);
  EXPECT_EQ(rep.train.n + rep.val.n, 1200);
  EXPECT_EQ(rep.val.n, 240);
  EXPECT_GE(rep.train.accuracy, 0.99) << "hidden " << hidden;
  EXPECT_GE(rep.val.accuracy, 0.97) << "hidden " << hidden;
  EXPECT_GE(rep.val.auc, 0.995) << "hidden " << hidden;
  EXPECT_GE(rep.val.recall, 0.95) << "hidden " << hidden;
  EXPECT_NEAR(rep.val.escalated, static_cast<double>(rep.val.positives) / rep.val.n, 0.03);
  ASSERT_EQ(rep.epoch_loss.size(), 60u);
  EXPECT_LT(rep.epoch_loss.back(), rep.epoch_loss.front() * 0.5);
  // The same seed gives the same router.
  TokenRouter r2 = small_router(4, hidden, 2, 10);
  train_router(r2, x, y, p);
  EXPECT_EQ(r.params(), r2.params());
}

TEST(RouterTrain, MlpLearnsASeparableSet) { check_learns_separable(16); }
TEST(RouterTrain, LogisticRegressionLearnsASeparableSet) { check_learns_separable(0); }

TEST(RouterTrain, HoldsOutWholeGroups) {
  TokenRouter r = small_router(4, 0, 2, 10);
  std::vector<float> x;
  std::vector<uint8_t> y;
  make_separable(300, r.n_features(), x, y);
  std::vector<int64_t> groups(300);
  for (int64_t i = 0; i < 300; ++i) groups[i] = (i * 7) % 10;  // 10 groups of 30, interleaved
  RouterTrainParams p;
  p.epochs = 2;
  const RouterTrainReport rep = train_router(r, x, y, p, {}, groups);
  EXPECT_EQ(rep.val.n, 60);  // 2 of 10 groups
  EXPECT_EQ(rep.train.n, 240);
  groups.pop_back();
  EXPECT_NE(error_of([&] { train_router(r, x, y, p, {}, groups); }).find("group"), std::string::npos);
}

TEST(RouterTrain, RefusesBadInput) {
  TokenRouter r = small_router(4, 3, 2, 10);
  std::vector<float> x(8 * 5);
  std::vector<uint8_t> y(5, 0);
  RouterTrainParams p;
  EXPECT_NE(error_of([&] { train_router(r, std::span<const float>(x.data(), 7), y, p); }).find("features"), std::string::npos);
  y[2] = 2;
  EXPECT_NE(error_of([&] { train_router(r, x, y, p); }).find("0 or 1"), std::string::npos);
  y[2] = 0;
  p.lr = 0;
  EXPECT_THROW(train_router(r, x, y, p), Error);
}

// --- file format -------------------------------------------------------------------------------

TokenRouter trained_like_router(int hidden) {
  TokenRouterConfig c;
  c.model_dim = 6;
  c.model_vocab = 50;
  c.top_k = 3;
  c.hidden = hidden;
  c.labels.tokens_per_prompt = 64;
  c.labels.horizon = 8;
  c.labels.small_model = "small.gguf";
  TokenRouter r(c);
  std::mt19937 g(3);
  r.params() = random_vec(g, static_cast<size_t>(r.n_params()));
  r.feature_mean() = random_vec(g, static_cast<size_t>(r.n_features()));
  r.feature_std() = random_vec(g, static_cast<size_t>(r.n_features()));
  for (float& s : r.feature_std()) s = std::fabs(s) + 0.1f;
  return r;
}

TEST(RouterFile, SaveLoadRoundTripGivesIdenticalProbabilities) {
  TempDir dir;
  for (int hidden : {0, 7}) {
    const TokenRouter r = trained_like_router(hidden);
    const std::string path = (dir / ("r" + std::to_string(hidden) + ".gguf")).string();
    r.save(path);
    const TokenRouter l = TokenRouter::load(path);
    EXPECT_EQ(l.config().model_dim, 6);
    EXPECT_EQ(l.config().model_vocab, 50);
    EXPECT_EQ(l.config().top_k, 3);
    EXPECT_EQ(l.config().hidden, hidden);
    EXPECT_EQ(l.config().labels.rule, "bigram-rejoin");
    EXPECT_EQ(l.config().labels.tokens_per_prompt, 64);
    EXPECT_EQ(l.config().labels.horizon, 8);
    EXPECT_EQ(l.config().labels.small_model, "small.gguf");
    EXPECT_EQ(l.params(), r.params());
    EXPECT_EQ(l.feature_mean(), r.feature_mean());
    EXPECT_EQ(l.feature_std(), r.feature_std());
    std::mt19937 g(11);
    for (int i = 0; i < 20; ++i) {
      const std::vector<float> logits = random_vec(g, 50, 3.0f), hidden_state = random_vec(g, 6);
      EXPECT_EQ(l.probability(logits, hidden_state), r.probability(logits, hidden_state));
    }
  }
}

TEST(RouterFile, LoadRefusesCorruptFilesAndOtherModels) {
  TempDir dir;
  const std::string path = (dir / "r.gguf").string();
  trained_like_router(4).save(path);
  const std::string bytes = read_file(path);
  // Truncated inside the header, inside the tensor data.
  const std::string cut = (dir / "cut.gguf").string();
  for (size_t keep : {size_t{40}, bytes.size() / 2, bytes.size() - 64}) {
    write_file_atomic(cut, std::string_view(bytes).substr(0, keep));
    EXPECT_NE(error_of([&] { TokenRouter::load(cut); }).find("cut.gguf"), std::string::npos) << keep;
  }
  // Not a GGUF file at all.
  const std::string junk = (dir / "junk.gguf").string();
  write_file_atomic(junk, "definitely not a router");
  EXPECT_NE(error_of([&] { TokenRouter::load(junk); }).find("junk.gguf"), std::string::npos);
  // A GGUF file of something else.
  {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.write((dir / "llama.gguf").string());
  }
  EXPECT_NE(error_of([&] { TokenRouter::load((dir / "llama.gguf").string()); }).find("not a token router"),
            std::string::npos);
  // A router whose tensor shape disagrees with its metadata: rewrite the file with hidden = 5.
  {
    auto g = GgufFile::open(path);
    GgufWriter w;
    for (const auto& [k, v] : g->metadata()) w.set(k, v);
    w.set_u32("slm.router.hidden", 5);
    for (const GgufTensorInfo& t : g->tensors())
      w.add_tensor(t.name, t.type, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes));
    w.write((dir / "shape.gguf").string());
  }
  const std::string shape_err = error_of([&] { TokenRouter::load((dir / "shape.gguf").string()); });
  EXPECT_NE(shape_err.find("router.fc1.weight"), std::string::npos) << shape_err;
  EXPECT_NE(shape_err.find("shape"), std::string::npos) << shape_err;
  // A router for another small model: dim 6, vocab 50.
  const TokenRouter r = TokenRouter::load(path);
  EXPECT_NO_THROW(r.check_model(6, 50, "small model a.gguf"));
  const std::string dim_err = error_of([&] { r.check_model(128, 50, "small model b.gguf"); });
  EXPECT_NE(dim_err.find("dim 6"), std::string::npos) << dim_err;
  EXPECT_NE(dim_err.find("b.gguf"), std::string::npos) << dim_err;
  EXPECT_THROW(r.check_model(6, 4096, "small model c.gguf"), Error);
  ModelConfig mc;
  mc.dim = 6;
  mc.n_vocab = 50;
  EXPECT_NO_THROW(TokenRouter::load(path, mc));
  mc.dim = 8;
  const std::string cfg_err = error_of([&] { TokenRouter::load(path, mc); });
  EXPECT_NE(cfg_err.find("r.gguf"), std::string::npos) << cfg_err;
  EXPECT_NE(cfg_err.find("has dim 8"), std::string::npos) << cfg_err;
  // ... and at decode time, through the policy.
  RouterPolicy policy(r, 0.5f);
  EXPECT_THROW(policy.escalate(std::vector<float>(50), std::vector<float>(7)), Error);
}

// --- policy ------------------------------------------------------------------------------------

TEST(RouterPolicy, EscalatesAtTheThreshold) {
  const TokenRouter r = trained_like_router(4);
  std::mt19937 g(5);
  int escalated = 0;
  for (int i = 0; i < 40; ++i) {
    const std::vector<float> logits = random_vec(g, 50, 2.0f), hidden = random_vec(g, 6);
    const float p = r.probability(logits, hidden);
    RouterPolicy at_p(r, p), above(r, std::nextafter(p, 2.0f)), zero(r, 0.0f);
    EXPECT_TRUE(at_p.escalate(logits, hidden));
    EXPECT_EQ(at_p.last_probability(), p);
    if (p < 1.0f) {
      EXPECT_FALSE(above.escalate(logits, hidden));
      ++escalated;
    }
    EXPECT_TRUE(zero.escalate(logits, hidden));
  }
  EXPECT_GT(escalated, 0);
  EXPECT_EQ(RouterPolicy(r, 0.4f).describe(), "router>=0.40");
  // Weighed by the remaining share r: p * r >= threshold.
  const std::vector<float> logits = random_vec(g, 50, 2.0f), hidden = random_vec(g, 6);
  const float p = r.probability(logits, hidden);
  RouterPolicy weighed(r, 0.5f * p, true);
  EXPECT_TRUE(weighed.escalate(logits, hidden, 1.0));
  EXPECT_TRUE(weighed.escalate(logits, hidden, 0.51));
  EXPECT_FALSE(weighed.escalate(logits, hidden, 0.49));
  EXPECT_EQ(RouterPolicy(r, 0.4f, true).describe(), "router*rem>=0.40");
  EXPECT_THROW(RouterPolicy(r, 1.5f), Error);
  EXPECT_THROW(RouterPolicy(r, -0.1f), Error);
}

// --- the label rule ----------------------------------------------------------------------------

TEST(RouterLabels, BigramRule) {
  using V = std::vector<int32_t>;
  // "big cat sat" vs "small big cat": the bigram (big, cat) re-joins.
  EXPECT_FALSE(continuations_diverge(V{5, 6, 7}, V{9, 5, 6}));
  // The same tokens in another order share no bigram: divergent.
  EXPECT_TRUE(continuations_diverge(V{5, 6, 7}, V{7, 6, 5}));
  EXPECT_TRUE(continuations_diverge(V{1, 2, 3, 4}, V{5, 6, 7, 8}));
  // One shared token is not a re-join; a shared bigram late in the horizon is.
  EXPECT_TRUE(continuations_diverge(V{1, 2, 3, 4}, V{9, 2, 9, 9}));
  EXPECT_FALSE(continuations_diverge(V{1, 2, 3, 4}, V{9, 9, 3, 4}));
  // Bigrams at different offsets still count.
  EXPECT_FALSE(continuations_diverge(V{1, 2, 3, 4}, V{3, 4, 8, 8}));
  // Identical continuations re-join; too short to hold a bigram: divergent.
  EXPECT_FALSE(continuations_diverge(V{1, 2}, V{1, 2}));
  EXPECT_TRUE(continuations_diverge(V{1}, V{1}));
}

// Two random models sharing the built-in byte-level vocabulary (slm init), made once.
class RouterWithModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    small_ = (*dir_ / "small.gguf").string();
    large_ = (*dir_ / "large.gguf").string();
    other_ = (*dir_ / "other.gguf").string();
    for (const auto& [args, path] :
         {std::pair{"--dim 32 --layers 1 --heads 2 --ffn 64 --seed 1", small_},
          std::pair{"--dim 64 --layers 2 --heads 4 --ffn 128 --seed 2", large_},
          std::pair{"--dim 48 --layers 1 --heads 2 --ffn 64 --seed 3", other_}}) {
      const CommandResult r = run_slm(std::string("init ") + args + " --ctx 128 --dtype f32 -o '" + path + "'");
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
  static std::string small_, large_, other_;
};
TempDir* RouterWithModels::dir_ = nullptr;
std::string RouterWithModels::small_, RouterWithModels::large_, RouterWithModels::other_;

std::vector<float> greedy_row(Transformer& t, const std::vector<int32_t>& ctx, int32_t* best) {
  KvCache kv(t.model().config(), static_cast<int64_t>(ctx.size()) + 1);
  std::vector<float> row = t.forward(ctx, kv);
  *best = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
  return row;
}

// The forked, rolled-back KV cache against recomputation from scratch at every position: the
// small model's choice and features, the reference path, every alternative path and its label.
TEST_F(RouterWithModels, LabelsMatchRecomputationFromScratch) {
  auto sm = Model::load(small_), lm = Model::load(large_);
  ThreadPool pool(1);
  Transformer ts(*sm, pool), tl(*lm, pool);
  const std::vector<std::vector<int32_t>> prompts = {{72, 101, 108, 108, 111}, {84, 104, 101, 32}};
  RouterLabelParams lp;
  lp.tokens = 10;
  lp.horizon = 4;
  lp.top_k = 8;
  RouterLabelSet set;
  int64_t progress_calls = 0;
  label_positions(ts, tl, prompts, lp, set, [&](int64_t done, int64_t all) {
    ++progress_calls;
    EXPECT_EQ(all, 2);
  });
  EXPECT_EQ(progress_calls, 2);
  ASSERT_EQ(set.size(), 20);
  ASSERT_EQ(set.n_features, 32 + 8 + 2);
  ASSERT_EQ(set.features.size(), 20u * 42u);
  int64_t disagreements = 0;
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    // The reference path: plain greedy decoding of the large model, recomputed for each token.
    std::vector<int32_t> ctx = prompts[pi];
    std::vector<int32_t> y;
    for (int i = 0; i < lp.tokens + lp.horizon; ++i) {
      int32_t best;
      greedy_row(tl, ctx, &best);
      y.push_back(best);
      ctx.push_back(best);
    }
    for (int64_t t = 0; t < lp.tokens; ++t) {
      const RouterPosition& p = set.positions[pi * lp.tokens + t];
      ASSERT_EQ(p.prompt, static_cast<int64_t>(pi));
      ASSERT_EQ(p.pos, t);
      EXPECT_EQ(p.large_token, y[t]);
      std::vector<int32_t> c(prompts[pi]);
      c.insert(c.end(), y.begin(), y.begin() + t);
      int32_t s;
      const std::vector<float> srow = greedy_row(ts, c, &s);
      EXPECT_EQ(p.small_token, s);
      EXPECT_EQ(p.disagree, s != y[t]);
      const std::vector<float> f = router_features(srow, ts.last_hidden(), 8);
      for (size_t k = 0; k < f.size(); ++k)
        EXPECT_NEAR(set.features[(pi * lp.tokens + t) * 42 + k], f[k], 1e-4 + 1e-4 * std::fabs(f[k]));
      if (!p.disagree) {
        EXPECT_EQ(p.label, 0);
        EXPECT_TRUE(p.alternative.empty());
        continue;
      }
      ++disagreements;
      std::vector<int32_t> alt;
      c.push_back(s);
      for (int j = 0; j < lp.horizon; ++j) {
        int32_t b;
        greedy_row(tl, c, &b);
        alt.push_back(b);
        c.push_back(b);
      }
      EXPECT_EQ(p.alternative, alt) << "prompt " << pi << " t " << t;
      EXPECT_EQ(p.reference, std::vector<int32_t>(y.begin() + t + 1, y.begin() + t + 1 + lp.horizon));
      EXPECT_EQ(p.label, continuations_diverge(p.reference, alt) ? 1 : 0);
    }
  }
  EXPECT_GT(disagreements, 0) << "two random models should disagree somewhere";
  EXPECT_EQ(set.disagreements(), disagreements);
}

// The "disagree" rule labels every disagreement and nothing else, on the same positions and
// features as the bigram rule, and runs no fork.
TEST_F(RouterWithModels, DisagreeRuleLabelsEveryDisagreement) {
  auto sm = Model::load(small_), lm = Model::load(large_);
  ThreadPool pool(1);
  Transformer ts(*sm, pool), tl(*lm, pool);
  const std::vector<std::vector<int32_t>> prompts = {{72, 101, 108, 108, 111}, {84, 104, 101, 32}};
  RouterLabelParams lp;
  lp.tokens = 10;
  lp.horizon = 4;
  RouterLabelSet bigram, disagree;
  label_positions(ts, tl, prompts, lp, bigram);
  lp.rule = RouterLabelRule::kDisagree;
  label_positions(ts, tl, prompts, lp, disagree);
  ASSERT_EQ(disagree.size(), bigram.size());
  EXPECT_EQ(disagree.features, bigram.features);
  EXPECT_GT(disagree.disagreements(), bigram.divergent()) << "some disagreements of random models re-join";
  for (int64_t i = 0; i < disagree.size(); ++i) {
    const RouterPosition &d = disagree.positions[static_cast<size_t>(i)], &b = bigram.positions[static_cast<size_t>(i)];
    EXPECT_EQ(d.small_token, b.small_token);
    EXPECT_EQ(d.large_token, b.large_token);
    EXPECT_EQ(d.label, d.disagree ? 1 : 0);
    EXPECT_TRUE(d.alternative.empty());
  }
  EXPECT_EQ(parse_router_label_rule("disagree"), RouterLabelRule::kDisagree);
  EXPECT_STREQ(router_label_rule_name(parse_router_label_rule("bigram-rejoin")), "bigram-rejoin");
  EXPECT_NE(error_of([] { parse_router_label_rule("diverge"); }).find("bigram-rejoin or disagree"), std::string::npos);
}

TEST_F(RouterWithModels, SameModelTwiceNeverDisagrees) {
  auto sm = Model::load(small_);
  ThreadPool pool(1);
  Transformer a(*sm, pool), b(*sm, pool);
  RouterLabelParams lp;
  lp.tokens = 8;
  lp.horizon = 3;
  RouterLabelSet set;
  label_positions(a, b, std::vector<std::vector<int32_t>>{{1, 2, 3}}, lp, set);
  EXPECT_EQ(set.size(), 8);
  EXPECT_EQ(set.disagreements(), 0);
  EXPECT_EQ(set.divergent(), 0);
  // The context limit is checked up front (ctx 128).
  lp.tokens = 200;
  EXPECT_NE(error_of([&] { label_positions(a, b, std::vector<std::vector<int32_t>>{{1, 2, 3}}, lp, set); }).find("context"), std::string::npos);
}

TEST_F(RouterWithModels, CliTrainsARouterThatLoads) {
  const std::string prompts = (*dir_ / "prompts.txt").string();
  write_file_atomic(prompts, "The cat sat\n\nOnce upon a time\nIt was\nHello there\n");
  const std::string out = (*dir_ / "router.gguf").string(), labels = (*dir_ / "labels.jsonl").string();
  const CommandResult r = run_slm("collab router train --small '" + small_ + "' --large '" + large_ + "' --prompts '" +
                                  prompts + "' -o '" + out + "' -n 6 --horizon 3 --hidden 4 --epochs 5 -t 1 --labels-out '" +
                                  labels + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("labels (bigram-rejoin): 4 prompts, 24 positions"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("AUC"), std::string::npos) << r.out;
  const TokenRouter router = TokenRouter::load(out);
  EXPECT_EQ(router.config().model_dim, 32);
  EXPECT_EQ(router.config().model_vocab, 257);
  EXPECT_EQ(router.config().hidden, 4);
  EXPECT_EQ(router.config().labels.horizon, 3);
  EXPECT_NO_THROW(router.check_model(32, 257, "small"));
  // One JSON line per position, each consistent with itself.
  std::ifstream in(labels);
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["disagree"].get<bool>(), j["small"] != j["large"]);
    if (!j["disagree"].get<bool>()) {
      EXPECT_EQ(j["label"], 0);
    }
  }
  EXPECT_EQ(lines, 24);
  EXPECT_EQ(router.config().labels.rule, "bigram-rejoin");
  // The other label rule is recorded in the file.
  const std::string out2 = (*dir_ / "router-disagree.gguf").string();
  const CommandResult r2 = run_slm("collab router train --small '" + small_ + "' --large '" + large_ + "' --prompts '" +
                                   prompts + "' -o '" + out2 + "' -n 6 --hidden 0 --epochs 2 -t 1 --label-rule disagree");
  ASSERT_EQ(r2.exit_code, 0) << r2.err << r2.out;
  EXPECT_NE(r2.out.find("labels (disagree): 4 prompts, 24 positions"), std::string::npos) << r2.out;
  EXPECT_EQ(TokenRouter::load(out2).config().labels.rule, "disagree");

  // score: the router's probability after each token, as the library computes it.
  const CommandResult sc = run_slm("collab router score --router '" + out + "' --small '" + small_ +
                                   "' --prompt-ids '72 101 108 108' -t 1");
  ASSERT_EQ(sc.exit_code, 0) << sc.err;
  const auto js = nlohmann::json::parse(sc.out);
  ASSERT_EQ(js["probabilities"].size(), 4u);
  auto sm = Model::load(small_);
  ThreadPool pool(1);
  Transformer ts(*sm, pool);
  KvCache kv(sm->config(), 4);
  int i = 0;
  for (int32_t id : {72, 101, 108, 108}) {
    const std::vector<float> row = ts.forward({id}, kv);
    EXPECT_NEAR(js["probabilities"][i++].get<double>(), router.probability(row, ts.last_hidden()), 1e-6);
  }
  // ... and refuses a router made for another small model.
  const CommandResult bad = run_slm("collab router score --router '" + out + "' --small '" + other_ + "' -p hi");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("dim 48"), std::string::npos) << bad.err;
}

TEST_F(RouterWithModels, CliRefusesBadInput) {
  const std::string prompts = (*dir_ / "p.txt").string();
  write_file_atomic(prompts, "Hello\n");
  const std::string out = (*dir_ / "bad.gguf").string();
  const std::string base = "collab router train --small '" + small_ + "' --prompts '" + prompts + "' -o '" + out + "'";
  // Horizon 1 has no bigram.
  CommandResult r = run_slm(base + " --large '" + large_ + "' --horizon 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--horizon"), std::string::npos) << r.err;
  // A large model with another vocabulary: the 6M default model when present.
  const std::filesystem::path brown = std::filesystem::path(SLM_SOURCE_DIR) / "models" / "slm-brown-6m.gguf";
  if (std::filesystem::exists(brown)) {
    r = run_slm(base + " --large '" + brown.string() + "'");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_LT(r.exit_code, 128);
    EXPECT_NE(r.err.find("slm-brown-6m.gguf"), std::string::npos) << r.err;
  }
  r = run_slm(base + " --large '" + large_ + "' --label-rule diverge");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bigram-rejoin or disagree"), std::string::npos) << r.err;
  // Training parameters are checked before any labelling.
  r = run_slm(base + " --large '" + large_ + "' --lr 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("learning rate"), std::string::npos) << r.err;
  // Empty prompt file.
  write_file_atomic(prompts, "\n\n");
  r = run_slm(base + " --large '" + large_ + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no prompts"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

// The real pair, when models/ holds it: a few short prompts end to end.
TEST(RouterModelPair, CliTrainsOnThePair) {
  const std::filesystem::path models = std::filesystem::path(SLM_SOURCE_DIR) / "models";
  const auto small = models / "slm-brown-small-1m.gguf", large = models / "slm-brown-large-10m.gguf";
  if (!std::filesystem::exists(small) || !std::filesystem::exists(large))
    GTEST_SKIP() << "models/slm-brown-small-1m.gguf or slm-brown-large-10m.gguf is absent";
  TempDir dir;
  write_file_atomic((dir / "p.txt").string(),
                    "The jury further said in term-end presentments that\nIt is not news that Nathan Milstein is\n"
                    "The Fulton County Grand Jury said Friday\nShe was a woman of\n");
  const std::string out = (dir / "r.gguf").string();
  const CommandResult r = run_slm("collab router train --small '" + small.string() + "' --large '" + large.string() +
                                  "' --prompts '" + (dir / "p.txt").string() + "' -o '" + out +
                                  "' -n 12 --horizon 4 --epochs 3 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("48 positions"), std::string::npos) << r.out;
  auto sm = Model::load(small.string());
  const TokenRouter router = TokenRouter::load(out);
  EXPECT_NO_THROW(router.check_model(sm->config().dim, sm->config().n_vocab, small.string()));
}

}  // namespace
}  // namespace slm::test
