// The trainer's math: gradients against central finite differences (the hand-derivable referee;
// tests/reference/train_test.py holds them to PyTorch autograd as well), the training forward
// against the inference engine's Transformer::forward on the exported weights, gradient
// accumulation, learning-rate schedules and AdamW against hand-computed values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <cstdio>
#include <cstring>
#include <random>

#include "core/error.h"

#include "core/ops_backward.h"
#include "io/gguf.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/export.h"
#include "train/lr_schedule.h"
#include "train/rng.h"
#include "train/train_config.h"
#include "train/train_model.h"
#include "io/gguf_writer.h"

namespace slm {
namespace {

ModelConfig tiny_config(bool tied, int64_t n_kv_heads) {
  ModelConfig c;
  c.arch = "llama";
  c.n_vocab = 37;
  c.dim = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = 4;
  c.ffn_dim = 24;
  c.ctx_len = 16;
  c.tied_output = tied;
  return c;
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
  return t;
}

class GradCheck : public ::testing::TestWithParam<std::pair<bool, int64_t>> {};

TEST_P(GradCheck, MatchesCentralDifferences) {
  const auto [tied, kv] = GetParam();
  TrainModel m(tiny_config(tied, kv));
  m.init_random(7, 0.3f);
  const int64_t B = 2, T = 6;
  const auto tokens = random_tokens(B * (T + 1), m.config().n_vocab, 11);
  ThreadPool pool(2);
  m.zero_grads();
  m.forward_backward(pool, tokens.data(), B, T, 1.0f);
  const std::vector<float> grads = m.grads();
  // Every tensor, a few entries each; the loss sum is O(10), so h = 1e-2 keeps float rounding
  // well below the second-order error.
  Rng pick(3);
  for (const ParamTensor& t : m.layout().tensors()) {
    for (int trial = 0; trial < 4; ++trial) {
      const int64_t i = t.offset + static_cast<int64_t>(pick.below(static_cast<uint64_t>(t.size)));
      float& p = m.params()[static_cast<size_t>(i)];
      const float saved = p;
      const float h = 1e-2f;
      p = saved + h;
      const double up = m.forward_backward(pool, tokens.data(), B, T, 0.0f);
      p = saved - h;
      const double down = m.forward_backward(pool, tokens.data(), B, T, 0.0f);
      p = saved;
      const double numeric = (up - down) / (2.0 * h);
      const double analytic = grads[static_cast<size_t>(i)];
      EXPECT_NEAR(analytic, numeric, 2e-3 + 2e-2 * std::fabs(numeric)) << t.name << " index " << i - t.offset;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GradCheck,
                         ::testing::Values(std::pair{false, int64_t{4}}, std::pair{true, int64_t{2}},
                                           std::pair{false, int64_t{1}}));

TEST(TrainModel, ForwardEqualsInferenceEngine) {
  for (bool tied : {false, true}) {
    TrainModel m(tiny_config(tied, 2));
    m.init_random(5, 0.2f);
    const int64_t T = 9;
    const auto tokens = random_tokens(T + 1, m.config().n_vocab, 2);
    ThreadPool pool(2);
    m.forward_backward(pool, tokens.data(), 1, T, 0.0f);
    const std::vector<float> train_logits(m.logits(), m.logits() + T * m.config().n_vocab);

    // Export through a checkpoint-like GGUF with a byte vocabulary, then run the engine.
    test::TempDir dir;
    GgufWriter w;
    ModelConfig mc = m.config();
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.context_length", 16);
    w.set_u32("llama.embedding_length", 16);
    w.set_u32("llama.block_count", 2);
    w.set_u32("llama.feed_forward_length", 24);
    w.set_u32("llama.attention.head_count", 4);
    w.set_u32("llama.attention.head_count_kv", 2);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", mc.norm_eps);
    std::vector<std::string> toks;
    for (int i = 0; i < 37; ++i) toks.push_back("t" + std::to_string(i));
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string_array("tokenizer.ggml.tokens", toks);
    w.set_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(37, 1));
    w.set_string_array("tokenizer.ggml.merges", {});
    for (const ParamTensor& t : m.layout().tensors()) {
      std::vector<uint8_t> bytes(static_cast<size_t>(t.size) * 4);
      std::memcpy(bytes.data(), m.params().data() + t.offset, bytes.size());
      w.add_tensor(t.name, DType::F32, t.shape, bytes);
    }
    const std::string src = (dir / "src.gguf").string(), out = (dir / "model.gguf").string();
    w.write(src);
    export_model(*GgufFile::open(src), out, ExportOptions{});
    auto model = Model::load(out);
    KvCache kv(model->config(), 16, DType::F32);
    Transformer tf(*model, pool);
    const std::vector<int32_t> in(tokens.begin(), tokens.end() - 1);
    const auto logits = tf.forward(in, kv, /*all_logits=*/true);
    ASSERT_EQ(logits.size(), train_logits.size());
    for (size_t i = 0; i < logits.size(); ++i)
      ASSERT_NEAR(logits[i], train_logits[i], 1e-4f * (1.0f + std::fabs(logits[i]))) << "tied " << tied << " at " << i;
  }
}

TEST(TrainModel, AccumulatedMicroBatchesEqualOneBatch) {
  TrainModel m(tiny_config(false, 2));
  m.init_random(9, 0.2f);
  const int64_t B = 4, T = 5;
  const auto tokens = random_tokens(B * (T + 1), m.config().n_vocab, 4);
  ThreadPool pool(2);
  const float scale = 1.0f / static_cast<float>(B * T);
  m.zero_grads();
  const double whole = m.forward_backward(pool, tokens.data(), B, T, scale);
  const std::vector<float> g1 = m.grads();
  m.zero_grads();
  double parts = 0.0;
  for (int p = 0; p < 4; ++p) parts += m.forward_backward(pool, tokens.data() + p * (T + 1), 1, T, scale);
  EXPECT_NEAR(whole, parts, 1e-9 * std::fabs(whole) + 1e-6);
  for (size_t i = 0; i < g1.size(); ++i) ASSERT_NEAR(m.grads()[i], g1[i], 1e-6f + 1e-5f * std::fabs(g1[i]));
}

TEST(TrainModel, DistillationGradientMatchesCentralDifferences) {
  // Student and teacher: two random models of one shape; objective (1 - w) CE + w T^2 KL summed
  // over the batch's positions.
  TrainModel student(tiny_config(true, 2)), teacher(tiny_config(true, 2));
  student.init_random(21, 0.3f);
  teacher.init_random(22, 0.5f);
  const int64_t B = 2, T = 5;
  const auto tokens = random_tokens(B * (T + 1), student.config().n_vocab, 13);
  ThreadPool pool(2);
  teacher.forward_backward(pool, tokens.data(), B, T, 0.0f);
  const std::vector<float> teacher_logits(teacher.logits(), teacher.logits() + B * T * student.config().n_vocab);
  // The forward pass alone gives the same logits.
  const float* alone = teacher.forward_logits(pool, tokens.data(), B, T);
  for (size_t k = 0; k < teacher_logits.size(); ++k) ASSERT_EQ(alone[k], teacher_logits[k]) << k;
  const float w = 0.6f, temp = 1.5f;
  auto objective = [&]() {
    double kl = 0.0;
    const DistillTargets d{teacher_logits.data(), w, temp, &kl};
    const double ce = student.forward_backward(pool, tokens.data(), B, T, 0.0f, &d);
    return (1.0 - w) * ce + w * temp * temp * kl;
  };
  student.zero_grads();
  double kl = 0.0;
  const DistillTargets d{teacher_logits.data(), w, temp, &kl};
  student.forward_backward(pool, tokens.data(), B, T, 1.0f, &d);
  EXPECT_GT(kl, 0.1);  // two different random models
  const std::vector<float> grads = student.grads();
  Rng pick(5);
  for (const ParamTensor& t : student.layout().tensors()) {
    for (int trial = 0; trial < 3; ++trial) {
      const int64_t i = t.offset + static_cast<int64_t>(pick.below(static_cast<uint64_t>(t.size)));
      float& p = student.params()[static_cast<size_t>(i)];
      const float saved = p, h = 1e-2f;
      p = saved + h;
      const double up = objective();
      p = saved - h;
      const double down = objective();
      p = saved;
      const double numeric = (up - down) / (2.0 * h);
      EXPECT_NEAR(grads[static_cast<size_t>(i)], numeric, 2e-3 + 2e-2 * std::fabs(numeric)) << t.name;
    }
  }
}

TEST(TrainModel, RejectsOutOfRangeTokens) {
  TrainModel m(tiny_config(true, 4));
  ThreadPool pool(1);
  std::vector<int32_t> tokens = {1, 2, 37};
  EXPECT_THROW(m.forward_backward(pool, tokens.data(), 1, 2, 1.0f), Error);
}

TEST(CrossEntropy, HandDerivedTwoClassCase) {
  // logits (0, ln 3): softmax (1/4, 3/4); target 1: loss -ln(3/4); gradient (1/4, -1/4).
  std::vector<float> row = {0.0f, std::log(3.0f)};
  const int32_t target = 1;
  const double loss = cross_entropy_rows(row.data(), &target, 1, 2, 1.0f);
  EXPECT_NEAR(loss, -std::log(0.75), 1e-7);
  EXPECT_NEAR(row[0], 0.25f, 1e-7f);
  EXPECT_NEAR(row[1], -0.25f, 1e-7f);
}

TEST(CrossEntropy, TrainingAndEvaluationPathsAgree) {
  // grad_scale != 0 takes the loss from the in-place SIMD softmax; 0 from a double log-sum-exp.
  Rng rng(5);
  const int64_t n = 7, vocab = 301;
  std::vector<float> a(static_cast<size_t>(n * vocab));
  for (float& x : a) x = static_cast<float>(rng.normal() * 4.0);
  std::vector<float> b = a;
  std::vector<int32_t> targets = {0, 5, 300, 17, 42, 99, 250};
  const double eval = cross_entropy_rows(a.data(), targets.data(), n, vocab, 0.0f);
  const double train = cross_entropy_rows(b.data(), targets.data(), n, vocab, 1.0f);
  EXPECT_NEAR(train, eval, 1e-5 * eval);
  // Underflowed target probability: logits (0, 200), target 0: loss = 200 + log(1 + e^-200).
  std::vector<float> row = {0.0f, 200.0f};
  const int32_t t0 = 0;
  EXPECT_NEAR(cross_entropy_rows(row.data(), &t0, 1, 2, 1.0f), 200.0, 1e-4);
  EXPECT_NEAR(row[0], -1.0f, 1e-6f);
  EXPECT_NEAR(row[1], 1.0f, 1e-6f);
}

// The distillation objective written out in double: (1 - w) (-log q[t]) + w T^2 KL(p_T || q_T).
double distill_objective(const std::vector<double>& z, int32_t t, const std::vector<float>& teacher, double w,
                         double temp) {
  auto log_softmax = [](std::vector<double> x) {
    double mx = x[0];
    for (double v : x) mx = std::max(mx, v);
    double sum = 0.0;
    for (double v : x) sum += std::exp(v - mx);
    for (double& v : x) v -= mx + std::log(sum);
    return x;
  };
  std::vector<double> zt(z.size()), tt(z.size());
  for (size_t j = 0; j < z.size(); ++j) {
    zt[j] = z[j] / temp;
    tt[j] = teacher[j] / temp;
  }
  const std::vector<double> lq = log_softmax(z), lqt = log_softmax(zt), lpt = log_softmax(tt);
  double kl = 0.0;
  for (size_t j = 0; j < z.size(); ++j) kl += std::exp(lpt[j]) * (lpt[j] - lqt[j]);
  return (1.0 - w) * -lq[static_cast<size_t>(t)] + w * temp * temp * kl;
}

TEST(DistillCrossEntropy, GradientMatchesCentralDifferencesOfTheObjective) {
  Rng rng(11);
  const int64_t vocab = 29;
  for (const auto& [w, temp] : {std::pair{0.5f, 1.0f}, std::pair{0.3f, 2.0f}, std::pair{1.0f, 0.7f}}) {
    std::vector<float> z(static_cast<size_t>(vocab)), teacher(static_cast<size_t>(vocab));
    for (float& x : z) x = static_cast<float>(rng.normal() * 2.0);
    for (float& x : teacher) x = static_cast<float>(rng.normal() * 2.0);
    const int32_t target = 7;
    std::vector<float> row = z, scratch(static_cast<size_t>(2 * vocab));
    double kl = 0.0;
    const double nll = distill_cross_entropy_row(row.data(), target, teacher.data(), vocab, w, temp, 1.0f,
                                                 scratch.data(), &kl);
    std::vector<double> zd(z.begin(), z.end());
    // The return value is the hard part, *kl the soft part (without w T^2).
    EXPECT_NEAR(nll, distill_objective(zd, target, teacher, 0.0, temp), 1e-5);
    EXPECT_NEAR(kl, distill_objective(zd, target, teacher, 1.0, temp) / (temp * temp), 1e-5);
    const double h = 1e-4;
    for (int64_t j = 0; j < vocab; ++j) {
      std::vector<double> up = zd, down = zd;
      up[static_cast<size_t>(j)] += h;
      down[static_cast<size_t>(j)] -= h;
      const double fd = (distill_objective(up, target, teacher, w, temp) -
                         distill_objective(down, target, teacher, w, temp)) / (2 * h);
      EXPECT_NEAR(row[static_cast<size_t>(j)], fd, 2e-5) << "w " << w << " T " << temp << " logit " << j;
    }
  }
}

TEST(DistillCrossEntropy, WeightZeroIsCrossEntropyAndEqualDistributionsHaveNoKl) {
  Rng rng(12);
  const int64_t vocab = 301;
  std::vector<float> z(static_cast<size_t>(vocab));
  for (float& x : z) x = static_cast<float>(rng.normal() * 3.0);
  std::vector<float> a = z, b = z, scratch(static_cast<size_t>(2 * vocab));
  const int32_t target = 100;
  double kl = -1.0;
  const double d = distill_cross_entropy_row(a.data(), target, z.data(), vocab, 0.0f, 1.0f, 0.5f, scratch.data(), &kl);
  const double ce = cross_entropy_rows(b.data(), &target, 1, vocab, 0.5f);
  EXPECT_NEAR(d, ce, 1e-5 * ce);
  EXPECT_NEAR(kl, 0.0, 1e-6);  // the teacher is the student
  for (int64_t j = 0; j < vocab; ++j) EXPECT_NEAR(a[static_cast<size_t>(j)], b[static_cast<size_t>(j)], 1e-7f);
  // w = 1 with the teacher equal to the student at T = 2: no gradient at all.
  std::vector<float> c = z;
  distill_cross_entropy_row(c.data(), target, z.data(), vocab, 1.0f, 2.0f, 1.0f, scratch.data(), &kl);
  for (float g : c) EXPECT_NEAR(g, 0.0f, 1e-7f);
  // A negative target: no loss, no KL, zero gradient; bad settings are errors.
  std::vector<float> e = z;
  EXPECT_EQ(distill_cross_entropy_row(e.data(), -1, z.data(), vocab, 0.5f, 1.0f, 1.0f, scratch.data(), &kl), 0.0);
  EXPECT_EQ(kl, 0.0);
  for (float g : e) EXPECT_EQ(g, 0.0f);
  EXPECT_THROW(distill_cross_entropy_row(e.data(), vocab, z.data(), vocab, 0.5f, 1.0f, 1.0f, scratch.data(), &kl), Error);
  EXPECT_THROW(distill_cross_entropy_row(e.data(), 0, z.data(), vocab, 1.5f, 1.0f, 1.0f, scratch.data(), &kl), Error);
  EXPECT_THROW(distill_cross_entropy_row(e.data(), 0, z.data(), vocab, 0.5f, 0.0f, 1.0f, scratch.data(), &kl), Error);
}

TEST(LrSchedule, HandComputedValues) {
  TrainConfig c;
  c.steps = 100;
  c.lr = 1.0f;
  c.min_lr = 0.1f;
  c.warmup_steps = 10;
  c.schedule = LrSchedule::Cosine;
  EXPECT_FLOAT_EQ(learning_rate(c, 0), 0.1f);
  EXPECT_FLOAT_EQ(learning_rate(c, 9), 1.0f);
  EXPECT_FLOAT_EQ(learning_rate(c, 10), 1.0f);
  EXPECT_NEAR(learning_rate(c, 55), 0.55f, 1e-6f);  // halfway: min + (max - min) / 2
  EXPECT_NEAR(learning_rate(c, 100), 0.1f, 1e-6f);
  c.schedule = LrSchedule::Wsd;
  c.decay_fraction = 0.2f;  // decay over steps 80..99
  EXPECT_FLOAT_EQ(learning_rate(c, 50), 1.0f);
  EXPECT_FLOAT_EQ(learning_rate(c, 79), 1.0f);
  EXPECT_NEAR(learning_rate(c, 89), 1.0f - 0.9f * 10.0f / 20.0f, 1e-6f);
  EXPECT_NEAR(learning_rate(c, 99), 0.1f, 1e-6f);
  c.schedule = LrSchedule::Wsdc;
  c.wsdc_constant_fraction = 0.1f;  // decay over 70..89, then 0.1 for 90..99
  EXPECT_FLOAT_EQ(learning_rate(c, 69), 1.0f);
  EXPECT_NEAR(learning_rate(c, 79), 1.0f - 0.9f * 10.0f / 20.0f, 1e-6f);
  EXPECT_NEAR(learning_rate(c, 89), 0.1f, 1e-6f);
  EXPECT_NEAR(learning_rate(c, 95), 0.1f, 1e-6f);
  c.schedule = LrSchedule::Constant;
  EXPECT_FLOAT_EQ(learning_rate(c, 99), 1.0f);
}

TEST(AdamW, FirstStepsByHand) {
  ModelConfig c = tiny_config(true, 4);
  ParamLayout layout(c);
  AdamWParams hp;
  hp.beta1 = 0.9f;
  hp.beta2 = 0.99f;
  hp.eps = 1e-12f;  // negligible next to sqrt(v_hat); keeps 0 / 0 away for zero gradients
  hp.weight_decay = 0.5f;
  AdamW opt(layout, hp);
  std::vector<float> p(static_cast<size_t>(layout.total()), 2.0f), g(p.size(), 0.0f);
  const int64_t wq = layout.get("blk.0.attn_q.weight").offset;
  const int64_t norm = layout.get("blk.0.attn_norm.weight").offset;
  const int64_t emb = layout.get("token_embd.weight").offset;
  g[static_cast<size_t>(wq)] = 3.0f;
  g[static_cast<size_t>(norm)] = -3.0f;
  g[static_cast<size_t>(emb)] = 3.0f;
  ThreadPool pool(1);
  opt.update(pool, p, g, 0.1f);
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * sign(g). Decay multiplies matrices by
  // 1 - lr * wd = 0.95 first; norms and embeddings are not decayed.
  EXPECT_NEAR(p[static_cast<size_t>(wq)], 2.0f * 0.95f - 0.1f, 1e-6f);
  EXPECT_NEAR(p[static_cast<size_t>(norm)], 2.0f + 0.1f, 1e-6f);
  EXPECT_NEAR(p[static_cast<size_t>(emb)], 2.0f - 0.1f, 1e-6f);
  EXPECT_NEAR(p[static_cast<size_t>(wq + 1)], 2.0f * 0.95f, 1e-6f);  // zero gradient: decay only
  // Step 2 with g = 1: m = 0.9*0.3 + 0.1 = 0.37 (pre-correction, from m1 = 0.3), m_hat = 0.37/0.19;
  // v = 0.99*0.09 + 0.01 = 0.0991, v_hat = 0.0991/0.0199.
  std::fill(g.begin(), g.end(), 0.0f);
  g[static_cast<size_t>(wq)] = 1.0f;
  const float before = p[static_cast<size_t>(wq)];
  opt.update(pool, p, g, 0.1f);
  const double expect = before * 0.95 - 0.1 * (0.37 / 0.19) / std::sqrt(0.0991 / (1 - 0.99 * 0.99));
  EXPECT_NEAR(p[static_cast<size_t>(wq)], expect, 1e-5);
}

TEST(AdamW, ClipGradNormScalesToTheLimit) {
  ThreadPool pool(2);
  std::vector<float> g = {3.0f, 4.0f};
  EXPECT_NEAR(clip_grad_norm(pool, g, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(g[0], 0.6f, 1e-6f);
  EXPECT_NEAR(g[1], 0.8f, 1e-6f);
  std::vector<float> small = {0.3f, 0.4f};
  clip_grad_norm(pool, small, 1.0);
  EXPECT_FLOAT_EQ(small[0], 0.3f);
}

// Several chunks and a ragged end: the chunked parallel norm equals a plain double sum (to
// rounding) and gives the same bits at 1 and 3 threads.
TEST(AdamW, GradNormOverChunksMatchesAPlainSum) {
  std::vector<float> g(200003);
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (float& x : g) x = d(rng);
  double ss = 0.0;
  for (float x : g) ss += static_cast<double>(x) * x;
  ThreadPool one(1), three(3);
  const double n1 = grad_norm(one, g), n3 = grad_norm(three, g);
  EXPECT_NEAR(n1, std::sqrt(ss), 1e-9 * std::sqrt(ss));
  EXPECT_EQ(n1, n3);
}

TEST(TrainConfig, ParsesTomlAndJsonAndRejectsUnknownKeys) {
  test::TempDir dir;
  const auto toml = dir / "c.toml";
  std::FILE* f = std::fopen(toml.c_str(), "w");
  std::fputs("dim = 64\nn_heads = 4\nlr = 3e-4\nschedule = \"wsd\"\ntie_embeddings = false\nrandom_data = true\nvocab_size = 100\n", f);
  std::fclose(f);
  const TrainConfig c = TrainConfig::load(toml.string());
  EXPECT_EQ(c.dim, 64);
  EXPECT_FLOAT_EQ(c.lr, 3e-4f);
  EXPECT_EQ(c.schedule, LrSchedule::Wsd);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_NO_THROW(c.validate());
  const TrainConfig back = TrainConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  TrainConfig bad;
  EXPECT_THROW(bad.set("learning_rate", "1"), Error);
  EXPECT_THROW(bad.set("dim", "abc"), Error);
  bad.random_data = true;
  bad.vocab_size = 10;
  bad.dim = 30;
  bad.n_heads = 4;
  EXPECT_THROW(bad.validate(), Error);
}

}  // namespace
}  // namespace slm
