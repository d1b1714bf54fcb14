// The measures of `slm collab eval` (generate/collab_eval.h) against hand-derived values and
// against the models' own logits, and the command end to end on the bundled model pair.
#include "generate/collab_eval.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/sampler.h"
#include "test_util.h"

namespace slm {
namespace {

namespace fs = std::filesystem;
using namespace slm::test;

fs::path model_path(const char* name) { return fs::path(SLM_SOURCE_DIR) / "models" / name; }

TEST(CollabEval, AgreementAndPrefixByHand) {
  const std::vector<int32_t> ref = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(agreement(ref, ref), 1.0);
  EXPECT_DOUBLE_EQ(agreement(std::vector<int32_t>{1, 9, 3, 9}, ref), 0.5);
  EXPECT_DOUBLE_EQ(prefix_agreement(std::vector<int32_t>{1, 9, 3, 4}, ref), 0.25);
  // A shorter output counts its missing positions as disagreements.
  EXPECT_DOUBLE_EQ(agreement(std::vector<int32_t>{1, 2}, ref), 0.5);
  EXPECT_DOUBLE_EQ(prefix_agreement(std::vector<int32_t>{1, 2}, ref), 0.5);
  EXPECT_DOUBLE_EQ(agreement(std::vector<int32_t>{}, ref), 0.0);
}

// Logits depend only on the last token fed: row = log of a fixed distribution per token.
class MarkovModel : public DecodeModel {
 public:
  int64_t n_vocab() const override { return 3; }
  int64_t room() const override { return 1000; }
  void forward(std::span<const int32_t> tokens, std::span<float> logits) override {
    static const float table[3][3] = {{0.5f, 0.25f, 0.25f}, {0.1f, 0.8f, 0.1f}, {1.0f / 3, 1.0f / 3, 1.0f / 3}};
    for (int j = 0; j < 3; ++j) logits[j] = std::log(table[tokens.back()][j]);
    ++calls;
  }
  std::string piece(int32_t) const override { return ""; }
  bool is_end_of_generation(int32_t) const override { return false; }
  int resets = 0, calls = 0;
};

TEST(CollabEval, WindowedNllByHand) {
  MarkovModel m;
  auto fresh = [&]() -> DecodeModel& {
    ++m.resets;
    return m;
  };
  // Windows of 3: [0 1 1] [2 0 0] [1]: scored 0->1, 1->1, 2->0, 0->0; the lone last token scores nothing.
  const std::vector<int32_t> toks = {0, 1, 1, 2, 0, 0, 1};
  const double expect = -(std::log(0.25) + std::log(0.8) + std::log(1.0 / 3) + std::log(0.5)) / 4;
  EXPECT_NEAR(windowed_nll(fresh, toks, 3), expect, 1e-6);
  EXPECT_EQ(m.resets, 2);
  EXPECT_THROW(windowed_nll(fresh, toks, 1), Error);
  EXPECT_THROW(windowed_nll(fresh, std::vector<int32_t>{1}, 4), Error);
}

TEST(CollabEval, MeanLoglikEqualsTokenByTokenLogits) {
  const fs::path path = model_path("slm-brown-small-1m.gguf");
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent";
  auto model = Model::load(path.string());
  ThreadPool pool(1);
  Transformer tr(*model, pool);
  KvCache kv(model->config(), 64), kv2(model->config(), 64);
  const std::vector<int32_t> prompt = model->tokenizer().encode("The jury said", true, false);
  const std::vector<int32_t> output = {262, 1000, 17, 4000, 300};
  // Referee: feed one token at a time and read each next-token log-probability.
  double expect = 0;
  std::vector<float> logits = tr.forward(prompt, kv2);
  for (int32_t t : output) {
    expect += log_softmax(logits)[t];
    logits = tr.forward(std::vector<int32_t>{t}, kv2);
  }
  expect /= output.size();
  EXPECT_NEAR(mean_loglik(tr, kv, prompt, output), expect, 1e-4);
  EXPECT_EQ(mean_loglik(tr, kv, prompt, std::vector<int32_t>{}), 0.0);
  KvCache tiny(model->config(), 4);
  EXPECT_THROW(mean_loglik(tr, tiny, prompt, output), Error);
}

TEST(CollabEval, TableRecoveredColumn) {
  std::vector<CollabEvalRow> rows(3);
  rows[0].strategy = "large", rows[0].agreement = 1.0;
  rows[1].strategy = "small", rows[1].agreement = 0.2;
  rows[2].strategy = "router", rows[2].agreement = 0.6;
  const std::string t = format_collab_table(rows);
  EXPECT_NE(t.find("| 0.600 | 50.0% |"), std::string::npos) << t;
  EXPECT_NE(t.find("| 1.000 | 100.0% |"), std::string::npos) << t;
  EXPECT_NE(t.find("| 0.200 | 0.0% |"), std::string::npos) << t;
}

TEST(CollabEvalCli, PairEndToEnd) {
  const fs::path small = model_path("slm-brown-small-1m.gguf"), large = model_path("slm-brown-large-10m.gguf");
  if (!fs::exists(small) || !fs::exists(large)) GTEST_SKIP() << "model pair absent";
  TempDir dir;
  const fs::path prompts = dir / "prompts.txt", json = dir / "rows.json", plot = dir / "plot.svg";
  std::ofstream(prompts) << "The jury said\n\nIn the morning the\n";
  const std::string base = "collab eval --small '" + small.string() + "' --large '" + large.string() +
                           "' --prompts '" + prompts.string() + "' -n 8 -t 1 ";
  // entropy > -1 escalates every token: the cascade is the large model; entropy > 1e9 never does.
  CommandResult r = run_slm(base + "--strategy small --strategy token-cascade --threshold -1 --threshold 1e9 --json '" +
                            json.string() + "' --plot '" + plot.string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = nlohmann::json::parse(read_text(json));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0]["strategy"], "large");
  EXPECT_DOUBLE_EQ(rows[0]["agreement"].get<double>(), 1.0);
  EXPECT_EQ(rows[1]["strategy"], "small");
  EXPECT_DOUBLE_EQ(rows[1]["large_share"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(rows[2]["large_share"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(rows[2]["agreement"].get<double>(), 1.0);
  EXPECT_NEAR(rows[2]["loglik"].get<double>(), rows[0]["loglik"].get<double>(), 1e-6);
  EXPECT_DOUBLE_EQ(rows[3]["large_share"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(rows[3]["agreement"].get<double>(), rows[1]["agreement"].get<double>());
  EXPECT_EQ(rows[2]["tokens"], 16);
  EXPECT_NE(read_text(plot).find("<svg"), std::string::npos);

  r = run_slm(base + "--strategy nonsense");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown strategy 'nonsense'"), std::string::npos) << r.err;
  r = run_slm(base + "--strategy router");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--router"), std::string::npos) << r.err;
  r = run_slm(base + "--strategy small --strategy speculative --horizon");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--horizon is only used by"), std::string::npos) << r.err;
  std::ofstream(dir / "empty.txt") << "\n  \n";
  r = run_slm("collab eval --small '" + small.string() + "' --large '" + large.string() + "' --prompts '" +
              (dir / "empty.txt").string() + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no prompts"), std::string::npos) << r.err;
  r = run_slm("collab eval --small '" + small.string() + "' --large '" + model_path("slm-brown-6m.gguf").string() +
              "' --prompts '" + prompts.string() + "' --text /nonexistent.txt --strategy none");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent.txt"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace slm

namespace slm {
namespace {

// `slm collab generate --strategy router`: threshold 0 escalates every token, so the output is the
// large model's greedy output; the router file must be the one trained for this small model.
TEST(CollabRouterCli, ThresholdZeroIsTheLargeModel) {
  const fs::path small = model_path("slm-brown-small-1m.gguf"), large = model_path("slm-brown-large-10m.gguf"),
                 router = model_path("slm-brown-router.gguf");
  if (!fs::exists(small) || !fs::exists(large) || !fs::exists(router)) GTEST_SKIP() << "model pair absent";
  const std::string tail = " -p 'The jury said' -n 12 --temp 0 --ignore-eos --json -t 1";
  const CommandResult plain = run_slm("generate -m '" + large.string() + "'" + tail);
  const std::string collab = "collab generate --small '" + small.string() + "' --large '" + large.string() +
                             "' --strategy router --router '" + router.string() + "'";
  const CommandResult routed = run_slm(collab + " --threshold 0" + tail);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(routed.exit_code, 0) << routed.err;
  const auto a = nlohmann::json::parse(plain.out), b = nlohmann::json::parse(routed.out);
  EXPECT_EQ(a["tokens"], b["tokens"]);
  EXPECT_DOUBLE_EQ(b["stats"]["large_share"].get<double>(), 1.0);
  // A router for another small model (here: the large one as "small") is refused.
  const CommandResult wrong = run_slm("collab generate --small '" + large.string() + "' --large '" + large.string() +
                                      "' --strategy router --router '" + router.string() + "'" + tail);
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("router"), std::string::npos) << wrong.err;
  const CommandResult missing = run_slm("collab generate --small '" + small.string() + "' --large '" +
                                        large.string() + "' --strategy router" + tail);
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("--router"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace slm
