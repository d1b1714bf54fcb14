// Perplexity over sliding windows (generate/perplexity.h) against referees:
//  * a model whose logits are all zero (all weights zero): perplexity = vocabulary size exactly;
//  * a "bigram" model (every layer matrix zero, so the logits depend on the current token only):
//    the total NLL computed by hand in double from the weights, for many ctx/stride choices —
//    every token after the first must be scored exactly once (stride == ctx: window starts not);
//  * a random model: the NLL of every token recomputed window by window through an independent
//    forward call per window and a log-softmax written here; stride == ctx equals the sum over
//    independent windows; the batch size does not change the result;
//  * llama.cpp's golden top-20 logits bound the NLL of its greedy token;
//  * `slm eval` agrees with the library and refuses bad input with a message.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/perplexity.h"
#include "io/gguf_writer.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "test_util.h"

namespace slm {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDim = 16, kHeads = 4, kKvHeads = 2, kFfn = 24, kVocab = 20, kCtxLen = 64;

enum class Weights { Zero, Bigram, Random };

struct TinyModel {
  std::vector<float> embd, out, out_norm;  // [V, D], [V, D], [D]
};

// A llama GGUF with F32 tensors. Zero: every weight 0 except norms (1). Bigram: embeddings,
// output and norms random, layer matrices 0. Random: everything random.
TinyModel write_model(const fs::path& path, Weights kind, int64_t layers = 2) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  GgufWriter g;
  g.set_string("general.architecture", "llama");
  g.set_string("general.name", "ppl-test");
  g.set_u32("llama.context_length", kCtxLen);
  g.set_u32("llama.embedding_length", kDim);
  g.set_u32("llama.block_count", static_cast<uint32_t>(layers));
  g.set_u32("llama.feed_forward_length", kFfn);
  g.set_u32("llama.attention.head_count", kHeads);
  g.set_u32("llama.attention.head_count_kv", kKvHeads);
  g.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  g.set_f32("llama.rope.freq_base", 10000.0f);
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  while (static_cast<int64_t>(tokens.size()) < kVocab) tokens.push_back(std::string(1, char('a' + tokens.size() - 3)));
  std::vector<int32_t> types(tokens.size(), 1);
  types[0] = 2, types[1] = 3, types[2] = 3;
  g.set_string("tokenizer.ggml.model", "llama");
  g.set_string_array("tokenizer.ggml.tokens", tokens);
  g.set_f32_array("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.0f));
  g.set_i32_array("tokenizer.ggml.token_type", types);

  TinyModel m;
  auto tensor = [&](const std::string& name, int64_t rows, int64_t cols, bool random, float scale,
                    float mean) {
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (float& x : v) x = random ? mean + scale * nd(rng) : mean;
    std::vector<uint8_t> bytes(v.size() * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    g.add_tensor(name, DType::F32, rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows},
                 std::move(bytes));
    return v;
  };
  const bool outer = kind != Weights::Zero, inner = kind == Weights::Random;
  const int64_t qd = kHeads * (kDim / kHeads), kvd = kKvHeads * (kDim / kHeads);
  m.embd = tensor("token_embd.weight", kVocab, kDim, outer, 1.0f, 0.0f);
  m.out = tensor("output.weight", kVocab, kDim, outer, 0.7f, 0.0f);
  m.out_norm = tensor("output_norm.weight", 1, kDim, outer, 0.1f, 1.0f);
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    tensor(p + "attn_norm.weight", 1, kDim, inner, 0.1f, 1.0f);
    tensor(p + "attn_q.weight", qd, kDim, inner, 0.5f, 0.0f);
    tensor(p + "attn_k.weight", kvd, kDim, inner, 0.5f, 0.0f);
    tensor(p + "attn_v.weight", kvd, kDim, inner, 0.5f, 0.0f);
    tensor(p + "attn_output.weight", kDim, qd, inner, 0.3f, 0.0f);
    tensor(p + "ffn_norm.weight", 1, kDim, inner, 0.1f, 1.0f);
    tensor(p + "ffn_gate.weight", kFfn, kDim, inner, 0.4f, 0.0f);
    tensor(p + "ffn_up.weight", kFfn, kDim, inner, 0.4f, 0.0f);
    tensor(p + "ffn_down.weight", kDim, kFfn, inner, 0.3f, 0.0f);
  }
  g.write(path.string());
  return m;
}

std::vector<int32_t> random_tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % kVocab);
  return t;
}

// log p(next | cur) of the bigram model, by hand: logits = out . (rmsnorm(embd[cur]) * norm).
double bigram_nll(const TinyModel& m, int32_t cur, int32_t next) {
  const float* e = m.embd.data() + cur * kDim;
  double ss = 0;
  for (int64_t d = 0; d < kDim; ++d) ss += double(e[d]) * e[d];
  const double r = 1.0 / std::sqrt(ss / kDim + 1e-5);
  std::vector<double> logits(kVocab, 0.0);
  for (int64_t v = 0; v < kVocab; ++v)
    for (int64_t d = 0; d < kDim; ++d) logits[v] += double(m.out[v * kDim + d]) * e[d] * r * m.out_norm[d];
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (double l : logits) sum += std::exp(l - mx);
  return mx + std::log(sum) - logits[next];
}

// The windows of the method, enumerated the slow way: [begin, end) and the first scored target.
struct Window {
  int64_t begin, end, first_target;
};
std::vector<Window> windows_by_hand(int64_t n, int64_t ctx, int64_t stride) {
  std::vector<Window> w;
  int64_t prev_end = 0;
  for (int64_t b = 0;; b += stride) {
    const int64_t e = std::min(b + ctx, n);
    w.push_back({b, e, std::max(b + 1, prev_end)});
    prev_end = e;
    if (e == n) break;
  }
  return w;
}

TEST(Perplexity, ZeroModelIsUniform) {
  test::TempDir dir;
  write_model(dir / "zero.gguf", Weights::Zero);
  auto model = Model::load((dir / "zero.gguf").string());
  ThreadPool pool(2);
  Transformer tf(*model, pool);
  PerplexityOptions opt;
  opt.ctx = 16;
  opt.stride = 5;
  const PerplexityResult r = evaluate_perplexity(tf, random_tokens(100, 1), opt);
  EXPECT_EQ(r.scored, 99);
  EXPECT_NEAR(r.mean_nll, std::log(double(kVocab)), 1e-12);
  EXPECT_NEAR(r.perplexity, double(kVocab), 1e-9);
}

TEST(Perplexity, BigramModelScoresEveryTokenOnce) {
  test::TempDir dir;
  const TinyModel m = write_model(dir / "bigram.gguf", Weights::Bigram);
  auto model = Model::load((dir / "bigram.gguf").string());
  ThreadPool pool(2);
  Transformer tf(*model, pool);
  const std::vector<int32_t> toks = random_tokens(77, 2);
  const int64_t n = static_cast<int64_t>(toks.size());
  std::vector<double> nll(toks.size(), 0.0);  // by hand, per target
  for (int64_t t = 1; t < n; ++t) nll[t] = bigram_nll(m, toks[t - 1], toks[t]);

  struct Case {
    int64_t ctx, stride;
  };
  for (const Case c : {Case{8, 4}, Case{8, 1}, Case{8, 7}, Case{5, 3}, Case{2, 1}, Case{64, 0}, Case{16, 0},
                       Case{8, 8}, Case{10, 10}, Case{3, 2}}) {
    SCOPED_TRACE("ctx " + std::to_string(c.ctx) + " stride " + std::to_string(c.stride));
    PerplexityOptions opt;
    opt.ctx = c.ctx;
    opt.stride = c.stride;
    opt.keep_token_nll = true;
    const PerplexityResult r = evaluate_perplexity(tf, toks, opt);
    const int64_t stride = c.stride == 0 ? c.ctx / 2 : c.stride;
    double want = 0;
    int64_t want_scored = 0;
    for (int64_t t = 1; t < n; ++t) {
      // With stride == ctx the token at a window start has no context in its window.
      if (stride == c.ctx && t % c.ctx == 0) continue;
      want += nll[t];
      ++want_scored;
      EXPECT_NEAR(r.token_nll[t], nll[t], 1e-4 * (1 + nll[t])) << "token " << t;
    }
    EXPECT_EQ(r.scored, want_scored);
    EXPECT_NEAR(r.total_nll, want, 1e-5 * want);
    EXPECT_NEAR(r.mean_nll, want / want_scored, 1e-5 * want / want_scored);
    EXPECT_NEAR(r.perplexity, std::exp(want / want_scored), 1e-4 * r.perplexity);
    EXPECT_EQ(r.windows, static_cast<int64_t>(windows_by_hand(n, c.ctx, stride).size()));
    EXPECT_EQ(r.windows, perplexity_window_count(n, c.ctx, stride));
  }
}

// Independent referee for a model with attention: one forward call per window from an empty
// cache, log-softmax in double here.
TEST(Perplexity, RandomModelMatchesWindowByWindowReferee) {
  test::TempDir dir;
  write_model(dir / "random.gguf", Weights::Random);
  auto model = Model::load((dir / "random.gguf").string());
  ThreadPool pool(2);
  Transformer tf(*model, pool);
  const std::vector<int32_t> toks = random_tokens(61, 3);
  const int64_t n = static_cast<int64_t>(toks.size());
  const int64_t ctx = 12, stride = 5;

  std::vector<double> want(toks.size(), std::nan(""));
  int64_t min_context = n;
  for (const Window& w : windows_by_hand(n, ctx, stride)) {
    KvCache kv(model->config(), ctx);
    const std::vector<int32_t> win(toks.begin() + w.begin, toks.begin() + w.end);
    const std::vector<float> logits = tf.forward(win, kv, /*all_logits=*/true);
    for (int64_t t = w.first_target; t < w.end; ++t) {
      const float* row = logits.data() + (t - 1 - w.begin) * kVocab;
      double mx = -1e300, sum = 0;
      for (int64_t v = 0; v < kVocab; ++v) mx = std::max(mx, double(row[v]));
      for (int64_t v = 0; v < kVocab; ++v) sum += std::exp(double(row[v]) - mx);
      EXPECT_TRUE(std::isnan(want[t])) << "token " << t << " scored twice by the referee";
      want[t] = mx + std::log(sum) - row[toks[t]];
      if (w.begin > 0) min_context = std::min(min_context, t - w.begin);
    }
  }
  EXPECT_GE(min_context, ctx - stride);  // the method's promise, checked on the referee's windows

  for (int64_t batch : {0, 1, 5, 12}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    PerplexityOptions opt;
    opt.ctx = ctx;
    opt.stride = stride;
    opt.batch = batch;
    opt.keep_token_nll = true;
    int64_t calls = 0;
    const PerplexityResult r = evaluate_perplexity(tf, toks, opt, [&](const PerplexityResult& so_far, int64_t done) {
      EXPECT_EQ(done, ++calls);
      EXPECT_EQ(so_far.windows, 11);  // starts 0, 5, ..., 50 (50 + 12 >= 61)
    });
    EXPECT_EQ(calls, 11);
    EXPECT_EQ(r.windows, 11);
    EXPECT_EQ(r.scored, n - 1);
    EXPECT_TRUE(std::isnan(r.token_nll[0]));
    double total = 0;
    for (int64_t t = 1; t < n; ++t) {
      ASSERT_FALSE(std::isnan(want[t])) << "the referee missed token " << t;
      EXPECT_NEAR(r.token_nll[t], want[t], 1e-4 * (1 + want[t])) << "token " << t;
      total += want[t];
    }
    EXPECT_NEAR(r.total_nll, total, 1e-5 * total);
  }
}

TEST(Perplexity, StrideEqualToCtxIsTheSumOfIndependentWindows) {
  test::TempDir dir;
  write_model(dir / "random.gguf", Weights::Random);
  auto model = Model::load((dir / "random.gguf").string());
  ThreadPool pool(1);
  Transformer tf(*model, pool);
  const std::vector<int32_t> toks = random_tokens(50, 4);
  PerplexityOptions opt;
  opt.ctx = 16;
  opt.stride = 16;
  const PerplexityResult r = evaluate_perplexity(tf, toks, opt);
  double sum = 0;
  int64_t scored = 0;
  for (size_t b = 0; b < toks.size(); b += 16) {
    const std::vector<int32_t> chunk(toks.begin() + b, toks.begin() + std::min(b + 16, toks.size()));
    PerplexityOptions one;
    one.ctx = 16;
    const PerplexityResult c = evaluate_perplexity(tf, chunk, one);
    EXPECT_EQ(c.windows, 1);
    sum += c.total_nll;
    scored += c.scored;
  }
  EXPECT_EQ(r.windows, 4);
  EXPECT_EQ(r.scored, 50 - 4);
  EXPECT_EQ(r.scored, scored);
  EXPECT_NEAR(r.total_nll, sum, 1e-9 * sum);
}

TEST(Perplexity, RefusesBadOptions) {
  test::TempDir dir;
  write_model(dir / "zero.gguf", Weights::Zero, 1);
  auto model = Model::load((dir / "zero.gguf").string());
  ThreadPool pool(1);
  Transformer tf(*model, pool);
  const std::vector<int32_t> toks = random_tokens(30, 5);
  auto expect_error = [&](const std::vector<int32_t>& t, int64_t ctx, int64_t stride, int64_t batch,
                          const std::string& needle) {
    PerplexityOptions opt;
    opt.ctx = ctx;
    opt.stride = stride;
    opt.batch = batch;
    try {
      evaluate_perplexity(tf, t, opt);
      ADD_FAILURE() << "accepted ctx " << ctx << " stride " << stride << " batch " << batch;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({3}, 8, 0, 0, "at least 2 tokens");
  expect_error({}, 8, 0, 0, "at least 2 tokens");
  expect_error(toks, 1, 0, 0, "--ctx");
  expect_error(toks, kCtxLen + 1, 0, 0, "context length (64)");
  expect_error(toks, 8, 9, 0, "--stride");
  expect_error(toks, 8, -1, 0, "--stride");
  expect_error(toks, 8, 4, -2, "--batch");
  expect_error({1, 2, kVocab}, 8, 4, 0, "vocabulary");
  expect_error({1, -1, 2}, 8, 4, 0, "vocabulary");
  PerplexityOptions ok;
  ok.ctx = kCtxLen;
  EXPECT_NO_THROW(evaluate_perplexity(tf, {1, 2}, ok));
}

// llama.cpp's golden data holds the top-20 logits after the prompt, and its first greedy token is
// the top-1. Its NLL is then bounded by the golden values alone:
//   lse(top20) - top1  <=  NLL  <=  log(sum_top20 e^l + (V - 20) e^{l_20}) - top1.
TEST(Perplexity, GreedyTokenNllWithinGoldenBounds) {
  SLM_REQUIRE_SHARED_DATA(data);
  for (const char* name : {"t-llama-spm-gqa", "t-qwen2-gpt2-mqa"}) {
    SCOPED_TRACE(name);
    std::ifstream in(data / "models" / (std::string(name) + ".p1.json"));
    const nlohmann::json j = nlohmann::json::parse(in);
    std::vector<int32_t> toks = j.at("prompt_tokens").get<std::vector<int32_t>>();
    const auto top = j.at("last_prompt_top20");
    toks.push_back(j.at("greedy")[0][0].get<int32_t>());
    ASSERT_EQ(toks.back(), top[0][0].get<int32_t>());

    auto model = Model::load((data / "models" / (std::string(name) + ".gguf")).string());
    const double V = double(model->config().n_vocab);
    ThreadPool pool(2);
    Transformer tf(*model, pool);
    PerplexityOptions opt;
    opt.ctx = static_cast<int64_t>(toks.size());
    opt.keep_token_nll = true;
    const PerplexityResult r = evaluate_perplexity(tf, toks, opt);
    const double got = r.token_nll.back();

    const double top1 = top[0][1].get<double>(), last = top[19][1].get<double>();
    double s20 = 0;
    for (const auto& e : top) s20 += std::exp(e[1].get<double>() - top1);
    const double lo = std::log(s20);
    const double hi = std::log(s20 + (V - 20) * std::exp(last - top1));
    // Logits agree with llama.cpp within ~1e-3 relative (model_golden_test); NLL is a difference
    // of logits of size ~15: allow 2e-3 * 15 on each side.
    EXPECT_GE(got, lo - 0.03);
    EXPECT_LE(got, hi + 0.03);
    EXPECT_GT(got, 0.0);
    std::printf("  %s: NLL of llama.cpp's greedy token %.4f, golden bounds [%.4f, %.4f]\n", name, got, lo, hi);
  }
}

// ---- the CLI ---------------------------------------------------------------------------------

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    model_ = (*dir_ / "tiny.gguf").string();
    const test::CommandResult r =
        test::run_slm("init --dim 32 --layers 2 --heads 4 --ffn 64 --ctx 64 -o '" + model_ + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    text_ = (*dir_ / "text.txt").string();
    std::ofstream(text_) << "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs! "
                            "How vexingly quick daft zebras jump.\n";
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::TempDir* dir_;
  static std::string model_, text_;
};
test::TempDir* EvalCli::dir_ = nullptr;
std::string EvalCli::model_, EvalCli::text_;

TEST_F(EvalCli, JsonAgreesWithTheLibrary) {
  const test::CommandResult r = test::run_slm("eval -m '" + model_ + "' -f '" + text_ + "' --ctx 32 --stride 8 -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const std::string text = test::read_text(text_);
  const int64_t bytes = static_cast<int64_t>(text.size());
  // The built-in vocabulary of `slm init` is one token per byte, no merges, no BOS.
  EXPECT_EQ(j.at("bytes").get<int64_t>(), bytes);
  EXPECT_EQ(j.at("tokens").get<int64_t>(), bytes);
  EXPECT_EQ(j.at("tokens_scored").get<int64_t>(), bytes - 1);
  EXPECT_EQ(j.at("ctx").get<int64_t>(), 32);
  EXPECT_EQ(j.at("stride").get<int64_t>(), 8);
  EXPECT_EQ(j.at("windows").get<int64_t>(), perplexity_window_count(bytes, 32, 8));

  auto model = Model::load(model_);
  std::vector<int32_t> toks;
  for (unsigned char c : text) toks.push_back(c);
  ThreadPool pool(1);
  Transformer tf(*model, pool);
  PerplexityOptions opt;
  opt.ctx = 32;
  opt.stride = 8;
  const PerplexityResult lib = evaluate_perplexity(tf, toks, opt);
  const double total = j.at("total_nll").get<double>();
  EXPECT_NEAR(total, lib.total_nll, 1e-5 * lib.total_nll);
  EXPECT_NEAR(j.at("mean_nll").get<double>(), total / (bytes - 1), 1e-9);
  EXPECT_NEAR(j.at("perplexity").get<double>(), std::exp(total / (bytes - 1)), 1e-6 * lib.perplexity);
  EXPECT_NEAR(j.at("bits_per_byte").get<double>(), total / std::log(2.0) / bytes, 1e-9);
  EXPECT_GT(j.at("tokens_per_s").get<double>(), 0.0);
}

TEST_F(EvalCli, TableAndDefaults) {
  const test::CommandResult r = test::run_slm("eval -m '" + model_ + "' -f '" + text_ + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"perplexity", "mean NLL", "bits/byte", "stride 32", "windows"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;  // ctx min(64, 512) -> stride 32
}

TEST_F(EvalCli, BadInputGivesAMessage) {
  const std::string one = (*dir_ / "one.txt").string();
  std::ofstream(one) << "x";
  const std::string m = "eval -m '" + model_ + "' ";
  const std::string f = "-f '" + text_ + "' ";
  struct Case {
    std::string args, expect;
  };
  for (const Case& c : std::vector<Case>{
           {m + "-f /nonexistent/held-out.txt", "/nonexistent/held-out.txt"},
           {m + "-f '" + one + "'", "at least 2"},
           {m + f + "--ctx 1", "--ctx"},
           {m + f + "--ctx 65", "context length (64)"},
           {m + f + "--ctx 16 --stride 17", "--stride"},
           {m + f + "--stride -3", "--stride"},
           {m + f + "--kv-type q4_0", "--kv-type"},
           {"eval -m /nonexistent/model.gguf " + f, "/nonexistent/model.gguf"},
       }) {
    const test::CommandResult r = test::run_slm(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << c.args;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\nstderr: " << r.err;
  }
}

}  // namespace
}  // namespace slm
