// Transformer::forward_batch against its referee, separate forward() calls per sequence (which
// the model golden tests tie to llama.cpp): several caches at different lengths, a mix of
// prefill chunks and decode steps, all-position logits and hidden states; both ways of running a
// batch on several threads (each product's rows split over the threads, or, for a small model
// and several short sequences, each thread taking a group of sequences through every layer).
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "core/error.h"
#include "model/model.h"

namespace slm {
namespace {

std::filesystem::path default_model() {
  return std::filesystem::path(SLM_SOURCE_DIR) / "models" / "slm-brown-6m.gguf";
}

class ForwardBatch : public ::testing::Test {
 protected:
  void SetUp() override {
    model = Model::load(default_model().string());
    pool = std::make_unique<ThreadPool>(2);
  }
  std::unique_ptr<Model> model;
  std::unique_ptr<ThreadPool> pool;
};

TEST_F(ForwardBatch, EqualsSeparateCallsPerSequence) {
  const ModelConfig& c = model->config();
  const int64_t V = c.n_vocab, D = c.dim;
  const std::vector<int32_t> history_a = {1, 50, 60, 70, 80, 90};
  const std::vector<int32_t> history_c = {1, 7, 8};
  const std::vector<int32_t> new_a = {100};                // decode step after 6 positions
  // fresh prefill, every position's logits (5 rows: too many for the split by sequence)
  const std::vector<int32_t> new_b = {1, 300, 301, 302, 303};
  const std::vector<int32_t> new_c = {400, 401};           // prefill chunk, hidden states + last logits
  const std::vector<int32_t> new_d = {1, 5};               // prefill chunk without logits

  // Referee: one Transformer per sequence, separate calls.
  std::vector<float> ref_a(V), ref_b(5 * V), ref_c(V), ref_hidden_c(2 * D);
  {
    Transformer t(*model, *pool);
    KvCache ka(c, 64), kb(c, 64), kc(c, 64), kd(c, 64);
    t.forward(history_a, ka);
    t.forward(history_c, kc);
    t.forward(new_a.data(), 1, ka, ref_a.data());
    t.forward(new_b.data(), 5, kb, ref_b.data(), /*all_logits=*/true);
    // Hidden states of c's positions: run them one at a time and read last_hidden.
    for (int i = 0; i < 2; ++i) {
      t.forward(new_c.data() + i, 1, kc, ref_c.data());
      std::copy_n(t.last_hidden().data(), D, ref_hidden_c.data() + i * D);
    }
  }

  Transformer t(*model, *pool);
  KvCache ka(c, 64), kb(c, 64), kc(c, 64, DType::F32), kd(c, 64);
  t.forward(history_a, ka);
  t.forward(history_c, kc);
  std::vector<float> out_a(V), out_b(5 * V), out_c(V), hidden_c(2 * D);
  std::vector<SequenceBatch> batch(4);
  batch[0] = {new_a.data(), 1, &ka, out_a.data(), false, nullptr};
  batch[1] = {new_b.data(), 5, &kb, out_b.data(), true, nullptr};
  batch[2] = {new_c.data(), 2, &kc, out_c.data(), false, hidden_c.data()};
  batch[3] = {new_d.data(), 2, &kd, nullptr, false, nullptr};
  t.forward_batch(batch);

  EXPECT_EQ(ka.size(), 7);
  EXPECT_EQ(kb.size(), 5);
  EXPECT_EQ(kc.size(), 5);
  EXPECT_EQ(kd.size(), 2);
  // The same arithmetic per row (products are row-independent, attention per sequence), so the
  // results agree to rounding of the matrix kernels' blocking at most.
  const auto expect_near = [](const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::abs(want[i]))) << what << " index " << i;
  };
  expect_near(out_a, ref_a, "decode row");
  expect_near(out_b, ref_b, "all-position logits");
  expect_near(out_c, ref_c, "last logits of a sequence with hidden states");
  expect_near(hidden_c, ref_hidden_c, "hidden states");
  // The last sequence's last hidden state is what last_hidden() reports.
  Transformer t2(*model, *pool);
  KvCache kd2(c, 64);
  std::vector<float> logits_d(V);
  t2.forward(new_d.data(), 2, kd2, logits_d.data());
  std::vector<float> last(t.last_hidden()), want(t2.last_hidden());
  expect_near(last, want, "last_hidden");
}

// Seven short sequences on two threads: the default model is small enough for the split by
// sequence (groups of 1-3 rows, unequal sizes: the first group ends where half the rows are).
// Each sequence i has a history of 3i + 1 tokens and then fresh[i] new ones (n[i] of them); the
// batch of all new tokens in one forward_batch equals separate forward() calls, last_hidden too.
void expect_batch_equals_separate_calls(const Model* model, ThreadPool* pool, const std::vector<int>& lengths,
                                        int all_logits_seq) {
  const ModelConfig& c = model->config();
  const int64_t V = c.n_vocab, D = c.dim;
  const int kSeqs = static_cast<int>(lengths.size());
  std::vector<std::vector<int32_t>> history(kSeqs), fresh(kSeqs);
  for (int i = 0; i < kSeqs; ++i) {
    for (int j = 0; j <= 3 * i; ++j) history[static_cast<size_t>(i)].push_back(static_cast<int32_t>(1 + 37 * i + 11 * j));
    const int n = lengths[static_cast<size_t>(i)];
    for (int j = 0; j < n; ++j) fresh[static_cast<size_t>(i)].push_back(static_cast<int32_t>(500 + 13 * i + j));
  }
  const auto all_logits = [&](int i) { return i == all_logits_seq; };
  std::vector<std::vector<float>> ref(kSeqs), got(kSeqs);
  std::vector<float> ref_hidden(D);
  {
    Transformer t(*model, *pool);
    for (int i = 0; i < kSeqs; ++i) {
      const auto& h = history[static_cast<size_t>(i)];
      const auto& f = fresh[static_cast<size_t>(i)];
      KvCache kv(c, 64);
      t.forward(h, kv);
      auto& r = ref[static_cast<size_t>(i)];
      r.resize(static_cast<size_t>((all_logits(i) ? static_cast<int64_t>(f.size()) : 1) * V));
      t.forward(f.data(), static_cast<int64_t>(f.size()), kv, r.data(), all_logits(i));
    }
    ref_hidden = t.last_hidden();
  }
  Transformer t(*model, *pool);
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<SequenceBatch> batch;
  for (int i = 0; i < kSeqs; ++i) {
    const auto& f = fresh[static_cast<size_t>(i)];
    caches.push_back(std::make_unique<KvCache>(c, 64));
    t.forward(history[static_cast<size_t>(i)], *caches.back());
    auto& g = got[static_cast<size_t>(i)];
    g.resize(ref[static_cast<size_t>(i)].size());
    batch.push_back({f.data(), static_cast<int64_t>(f.size()), caches.back().get(), g.data(), all_logits(i), nullptr});
  }
  t.forward_batch(batch);
  for (int i = 0; i < kSeqs; ++i) {
    EXPECT_EQ(caches[static_cast<size_t>(i)]->size(),
              static_cast<int64_t>(history[static_cast<size_t>(i)].size() + fresh[static_cast<size_t>(i)].size()));
    const auto& g = got[static_cast<size_t>(i)];
    const auto& r = ref[static_cast<size_t>(i)];
    for (size_t k = 0; k < r.size(); ++k)
      ASSERT_NEAR(g[k], r[k], 1e-4f * (1.0f + std::abs(r[k]))) << "sequence " << i << " index " << k;
  }
  const std::vector<float>& last = t.last_hidden();
  for (int64_t k = 0; k < D; ++k) ASSERT_NEAR(last[static_cast<size_t>(k)], ref_hidden[static_cast<size_t>(k)], 1e-4f) << k;
}

TEST_F(ForwardBatch, SplitBySequenceEqualsSeparateCalls) {
  ASSERT_TRUE(Transformer(*model, *pool).splits_by_sequence()) << "the default model should split by sequence";
  // Decode steps with short verifications among them (contiguous groups).
  ASSERT_FALSE(plan_sequence_lanes(std::vector<int64_t>{1, 1, 3, 1, 1, 2, 1}, 2).empty());
  expect_batch_equals_separate_calls(model.get(), pool.get(), {1, 1, 3, 1, 1, 2, 1}, 2);
  // Prefill chunks that the longest-first assignment spreads evenly (11 rows a lane).
  ASSERT_FALSE(plan_sequence_lanes(std::vector<int64_t>{1, 9, 1, 8, 1, 1, 1}, 2).empty());
  expect_batch_equals_separate_calls(model.get(), pool.get(), {1, 9, 1, 8, 1, 1, 1}, 3);
  expect_batch_equals_separate_calls(model.get(), pool.get(), {1, 9, 1, 8, 1, 1, 1}, 1);
}

// Lanes by hand: contiguous for decode steps, longest first for prefill chunks, none when a lane
// would be left with more than 40% over the mean or there are too few sequences.
TEST(SequenceLanes, PlansByHand) {
  using V = std::vector<int64_t>;
  EXPECT_EQ(plan_sequence_lanes(V{1, 1, 1, 1}, 2), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_EQ(plan_sequence_lanes(V{1, 1, 1, 1, 1, 1, 1, 1}, 2), (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(plan_sequence_lanes(V{1, 1, 3, 1, 1}, 2), (std::vector<int>{0, 0, 0, 1, 1}));
  EXPECT_EQ(plan_sequence_lanes(V{1, 1, 1}, 2), std::vector<int>{});        // fewer than 2 a thread
  EXPECT_EQ(plan_sequence_lanes(V{1, 1, 1, 1}, 1), std::vector<int>{});     // one thread
  // 52 + 8 | 52 + 8 x 1: the prompts on different lanes, the decode rows filling up the lighter.
  EXPECT_EQ(plan_sequence_lanes(V{52, 1, 1, 1, 1, 50, 1, 1, 1, 1}, 2), (std::vector<int>{0, 1, 1, 0, 1, 1, 0, 1, 0, 1}));
  EXPECT_EQ(plan_sequence_lanes(V{52, 1, 1, 1, 1, 1, 1, 1, 1}, 2), std::vector<int>{});  // 52 vs 8
  EXPECT_EQ(plan_sequence_lanes(V{12, 8}, 2), (std::vector<int>{0, 1}));  // 12 is 20% over the mean
  EXPECT_EQ(plan_sequence_lanes(V{14, 6}, 2), (std::vector<int>{0, 1}));  // 40%: still split
  EXPECT_EQ(plan_sequence_lanes(V{15, 5}, 2), std::vector<int>{});        // 50% over
  EXPECT_EQ(plan_sequence_lanes(V{20, 20, 20}, 3), (std::vector<int>{0, 1, 2}));
}

TEST_F(ForwardBatch, RefusesBadBatchesWithoutWriting) {
  const ModelConfig& c = model->config();
  KvCache ka(c, 4), kb(c, 4);
  std::vector<float> logits(c.n_vocab);
  const std::vector<int32_t> ok = {1, 2}, bad = {1, static_cast<int32_t>(c.n_vocab)};
  Transformer t(*model, *pool);
  std::vector<SequenceBatch> twice = {{ok.data(), 2, &ka, logits.data()}, {ok.data(), 2, &ka, logits.data()}};
  EXPECT_THROW(t.forward_batch(twice), Error);
  std::vector<SequenceBatch> out_of_range = {{ok.data(), 2, &ka, logits.data()}, {bad.data(), 2, &kb, logits.data()}};
  EXPECT_THROW(t.forward_batch(out_of_range), Error);
  const std::vector<int32_t> five = {1, 2, 3, 4, 5};
  std::vector<SequenceBatch> overflow = {{ok.data(), 2, &ka, logits.data()}, {five.data(), 5, &kb, logits.data()}};
  EXPECT_THROW(t.forward_batch(overflow), Error);
  EXPECT_EQ(ka.size(), 0);
  EXPECT_EQ(kb.size(), 0);
}

}  // namespace
}  // namespace slm
