// Transformer::forward_batch against its referee, separate forward() calls per sequence (which
// the model golden tests tie to llama.cpp): several caches at different lengths, a mix of
// prefill chunks and decode steps, all-position logits and hidden states.
#include <gtest/gtest.h>

#include <filesystem>
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
  const std::vector<int32_t> new_b = {1, 300, 301, 302};   // fresh prefill, every position's logits
  const std::vector<int32_t> new_c = {400, 401};           // prefill chunk, hidden states + last logits
  const std::vector<int32_t> new_d = {1, 5};               // prefill chunk without logits

  // Referee: one Transformer per sequence, separate calls.
  std::vector<float> ref_a(V), ref_b(4 * V), ref_c(V), ref_hidden_c(2 * D);
  {
    Transformer t(*model, *pool);
    KvCache ka(c, 64), kb(c, 64), kc(c, 64), kd(c, 64);
    t.forward(history_a, ka);
    t.forward(history_c, kc);
    t.forward(new_a.data(), 1, ka, ref_a.data());
    t.forward(new_b.data(), 4, kb, ref_b.data(), /*all_logits=*/true);
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
  std::vector<float> out_a(V), out_b(4 * V), out_c(V), hidden_c(2 * D);
  std::vector<SequenceBatch> batch(4);
  batch[0] = {new_a.data(), 1, &ka, out_a.data(), false, nullptr};
  batch[1] = {new_b.data(), 4, &kb, out_b.data(), true, nullptr};
  batch[2] = {new_c.data(), 2, &kc, out_c.data(), false, hidden_c.data()};
  batch[3] = {new_d.data(), 2, &kd, nullptr, false, nullptr};
  t.forward_batch(batch);

  EXPECT_EQ(ka.size(), 7);
  EXPECT_EQ(kb.size(), 4);
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
