// The trainer's math: gradients against central finite differences (the hand-derivable referee;
// tests/reference/train_test.py holds them to PyTorch autograd as well), the training forward
// against the inference engine's Transformer::forward on the exported weights, gradient
// accumulation, learning-rate schedules and AdamW against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
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
