// Speculative decoding (generate/speculative.h):
// - on fake models (5-token vocabulary, logits a deterministic function of the history):
//   greedy output and every output rule (stop strings, EOG, max_tokens, full context) equal
//   generate() on the target alone, and the target's cache ends as generate() leaves it;
//   with sampling, the distribution of 3-token continuations over 20000 seeds equals the target's
//   exact distribution, enumerated with a brute-force sampler reference (chi-square), and the test
//   is shown to have the power to catch a rule that always accepts the draft;
// - on real models (the trained pair under models/ when present, and a random pair made by
//   `slm init` with the same vocabulary): greedy tokens equal generate() on the large model for
//   several prompts, k and adaptive drafting, also when the context fills; the large model's
//   cache after a run continues exactly like after a plain run; a vocabulary mismatch is refused;
// - the CLI: `generate --draft` gives the same JSON tokens as plain `generate`.
#include "generate/speculative.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/decode_model.h"
#include "generate/generator.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "test_util.h"

namespace slm {
namespace {

namespace fs = std::filesystem;

// ---- fake models -------------------------------------------------------------------------------

constexpr int kVocab = 5;

// Deterministic pseudo-random values in [-2, 2] per (history, salt, token).
std::vector<float> hashed_logits(const std::vector<int32_t>& history, uint64_t salt) {
  uint64_t h = 1469598103934665603ull ^ (salt * 0x9E3779B97F4A7C15ull);
  for (int32_t t : history) h = (h ^ static_cast<uint64_t>(t + 1)) * 1099511628211ull;
  std::vector<float> out(kVocab);
  for (int v = 0; v < kVocab; ++v) {
    uint64_t x = h + 0x632BE59BD9B4E019ull * (v + 1);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    out[v] = static_cast<float>(static_cast<double>(x >> 11) * 0x1.0p-53 * 4.0 - 2.0);
  }
  return out;
}

// Logits = sum of weight * hashed_logits(history, salt): the target and the draft share a
// component so that drafts are often, not always, accepted.
struct LogitFn {
  std::vector<std::pair<uint64_t, float>> parts;  // (salt, weight)
  std::vector<float> operator()(const std::vector<int32_t>& history) const {
    std::vector<float> l(kVocab, 0.0f);
    for (const auto& [salt, w] : parts) {
      const std::vector<float> h = hashed_logits(history, salt);
      for (int v = 0; v < kVocab; ++v) l[v] += w * h[v];
    }
    return l;
  }
};

const LogitFn kTarget{{{1, 1.5f}}};
const LogitFn kDraft{{{1, 1.0f}, {2, 1.0f}}};

// A VerifierModel whose "cache" is the list of tokens fed.
class FakeModel : public VerifierModel {
 public:
  FakeModel(LogitFn fn, int64_t capacity, int32_t eog = -1) : fn_(std::move(fn)), capacity_(capacity), eog_(eog) {}
  int64_t n_vocab() const override { return kVocab; }
  int64_t n_past() const override { return static_cast<int64_t>(fed.size()); }
  int64_t room() const override { return capacity_ - n_past(); }
  void forward(std::span<const int32_t> tokens, std::span<float> logits, bool all_logits) override {
    EXPECT_FALSE(tokens.empty());
    if (static_cast<int64_t>(tokens.size()) > room()) throw Error("fake: cache overflow");
    EXPECT_EQ(logits.size(), (all_logits ? tokens.size() : 1) * kVocab);
    ++calls;
    for (size_t i = 0; i < tokens.size(); ++i) {
      EXPECT_TRUE(tokens[i] >= 0 && tokens[i] < kVocab);
      fed.push_back(tokens[i]);
      if (all_logits || i + 1 == tokens.size()) {
        const std::vector<float> l = fn_(fed);
        std::copy(l.begin(), l.end(), logits.begin() + (all_logits ? i * kVocab : 0));
      }
    }
  }
  void truncate(int64_t n) override {
    ASSERT_LE(n, n_past());
    fed.resize(static_cast<size_t>(n));
  }
  std::string piece(int32_t id) const override { return std::string(1, static_cast<char>('a' + id)); }
  bool is_end_of_generation(int32_t id) const override { return id == eog_; }

  std::vector<int32_t> fed;
  int calls = 0;

 private:
  LogitFn fn_;
  int64_t capacity_;
  int32_t eog_;
};

// The same fake as a DecodeModel, to run the plain generate() loop as the referee.
class FakeDecode : public DecodeModel {
 public:
  explicit FakeDecode(FakeModel& m) : m_(m) {}
  int64_t n_vocab() const override { return kVocab; }
  int64_t room() const override { return m_.room(); }
  void forward(std::span<const int32_t> tokens, std::span<float> logits) override {
    m_.forward(tokens, logits, false);
  }
  std::string piece(int32_t id) const override { return m_.piece(id); }
  bool is_end_of_generation(int32_t id) const override { return m_.is_end_of_generation(id); }

 private:
  FakeModel& m_;
};

GenerateOptions greedy(int n) {
  GenerateOptions o;
  o.max_tokens = n;
  o.sampler.temperature = 0.0f;
  o.stop_at_eog = false;
  return o;
}

void expect_same_result(const GenerateResult& got, const GenerateResult& want) {
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.stop_reason, want.stop_reason);
  EXPECT_EQ(got.prompt_tokens, want.prompt_tokens);
}

TEST(SpeculativeFake, GreedyEqualsGenerateUnderEveryOutputRule) {
  struct Case {
    std::string name;
    GenerateOptions opt;
    int64_t capacity;
    int32_t eog;
  };
  std::vector<Case> cases;
  cases.push_back({"plain 40", greedy(40), 100, -1});
  cases.push_back({"max_tokens 0", greedy(0), 100, -1});
  cases.push_back({"max_tokens 1", greedy(1), 100, -1});
  cases.push_back({"context fills", greedy(40), 13, -1});
  cases.push_back({"context fills exactly at max_tokens", greedy(11), 13, -1});
  {
    GenerateOptions o = greedy(60);
    o.stop = {"dd", "eb"};
    cases.push_back({"stop strings", o, 100, -1});
  }
  {
    GenerateOptions o = greedy(60);
    o.stop_at_eog = true;
    cases.push_back({"eog", o, 100, 3});
  }
  {
    GenerateOptions o = greedy(30);
    o.sampler.repeat_penalty = 1.4f;
    o.sampler.repeat_last_n = 6;
    o.logprobs = true;
    o.top_logits = 2;
    cases.push_back({"repeat penalty + logprobs", o, 100, -1});
  }
  const std::vector<int32_t> prompt = {0, 2, 1};
  for (const Case& c : cases) {
    FakeModel plain_model(kTarget, c.capacity, c.eog);
    FakeDecode plain(plain_model);
    const GenerateResult want = generate(plain, prompt, c.opt);
    ASSERT_FALSE(want.tokens.empty() && c.opt.max_tokens > 0) << c.name;
    for (int k : {0, 1, 2, 3, 5})
      for (float min_prob : {0.0f, 0.6f})
        for (bool same_draft : {false, true}) {
          SCOPED_TRACE(c.name + ", k " + std::to_string(k) + ", draft_min_prob " + std::to_string(min_prob) +
                       (same_draft ? ", draft == target" : ""));
          FakeModel target(kTarget, c.capacity, c.eog);
          // The draft gets a smaller context: drafting must stay within its room too.
          FakeModel draft(same_draft ? kTarget : kDraft, c.capacity - 2, c.eog);
          SpeculativeOptions spec;
          spec.draft_max = k;
          spec.draft_min_prob = min_prob;
          std::string streamed;
          const SpeculativeResult r = generate_speculative(target, draft, prompt, c.opt, spec, [&](std::string_view p) {
            streamed += p;
            return true;
          });
          expect_same_result(r.gen, want);
          EXPECT_EQ(streamed, r.gen.text);
          // The cache contract of generate(): the target holds what the plain run's model holds.
          EXPECT_EQ(target.fed, plain_model.fed);
          // The draft holds a prefix of the history.
          std::vector<int32_t> history = prompt;
          history.insert(history.end(), r.gen.tokens.begin(), r.gen.tokens.end());
          ASSERT_LE(draft.fed.size(), history.size());
          EXPECT_TRUE(std::equal(draft.fed.begin(), draft.fed.end(), history.begin()));
          if (c.opt.logprobs) {
            ASSERT_EQ(r.gen.logprobs.size(), want.logprobs.size());
            for (size_t i = 0; i < want.logprobs.size(); ++i) {
              EXPECT_EQ(r.gen.logprobs[i].id, want.logprobs[i].id);
              EXPECT_FLOAT_EQ(r.gen.logprobs[i].logprob, want.logprobs[i].logprob);
              EXPECT_EQ(r.gen.logprobs[i].top, want.logprobs[i].top);
            }
          }
          const SpeculativeStats& s = r.stats;
          EXPECT_LE(s.accepted, s.drafted);
          if (k == 0) {
            EXPECT_EQ(s.drafted, 0);
          }
          // Each verification yields its accepted drafts plus one token of the target's.
          const int64_t emitted = static_cast<int64_t>(r.gen.tokens.size()) + (r.gen.stop_reason == "eog");
          // (Not when a stop string or EOG may end a round in the middle of its accepted drafts.)
          if (c.opt.stop.empty() && c.eog < 0) {
            EXPECT_EQ(emitted, s.accepted + s.verifications);
          }
          if (same_draft && min_prob == 0.0f) {
            EXPECT_EQ(s.accepted, s.drafted) << "an identical draft must always be accepted";
          }
        }
  }
}

TEST(SpeculativeFake, IdenticalDraftNeedsOneVerificationPerKPlusOneTokens) {
  FakeModel target(kTarget, 100), draft(kTarget, 100);
  SpeculativeOptions spec;
  spec.draft_max = 3;
  const SpeculativeResult r = generate_speculative(target, draft, std::vector<int32_t>{1}, greedy(40), spec);
  EXPECT_EQ(r.gen.tokens.size(), 40u);
  EXPECT_EQ(r.stats.verifications, 10);
  EXPECT_EQ(r.stats.drafted, 30);
  EXPECT_EQ(r.stats.accepted, 30);
  EXPECT_DOUBLE_EQ(r.stats.acceptance_rate(), 1.0);
  EXPECT_DOUBLE_EQ(r.stats.mean_accepted(), 3.0);
  EXPECT_EQ(target.calls, 10);  // one-token prompt: no prefill call
}

TEST(SpeculativeFake, BadInputsThrow) {
  FakeModel target(kTarget, 10), draft(kDraft, 10);
  SpeculativeOptions spec;
  const std::vector<int32_t> prompt = {1, 2};
  spec.draft_max = -1;
  EXPECT_THROW(generate_speculative(target, draft, prompt, greedy(4), spec), Error);
  spec.draft_max = 2;
  spec.draft_min_prob = 1.5f;
  EXPECT_THROW(generate_speculative(target, draft, prompt, greedy(4), spec), Error);
  spec.draft_min_prob = 0.0f;
  EXPECT_THROW(generate_speculative(target, draft, std::vector<int32_t>{}, greedy(4), spec), Error);
  EXPECT_THROW(generate_speculative(target, draft, std::vector<int32_t>{7}, greedy(4), spec), Error);
  EXPECT_THROW(generate_speculative(target, draft, std::vector<int32_t>(11, 1), greedy(4), spec), Error);
  EXPECT_THROW(generate_speculative(target, draft, prompt, greedy(-1), spec), Error);
}

// ---- the output distribution is the target's ---------------------------------------------------

constexpr int kSeqLen = 3;
constexpr int kCells = kVocab * kVocab * kVocab;

int cell_of(const std::vector<int32_t>& t) { return (t[0] * kVocab + t[1]) * kVocab + t[2]; }

// Exact probability of every 3-token continuation when token i comes from draft_fn for
// i < n_from_draft and from target_fn after (n_from_draft = 0: the target's own distribution).
std::vector<double> enumerate(const std::vector<int32_t>& prompt, const SamplerParams& p,
                              int n_from_draft) {
  std::vector<double> out(kCells, 0.0);
  for (int c = 0; c < kCells; ++c) {
    const std::vector<int32_t> t = {c / (kVocab * kVocab), (c / kVocab) % kVocab, c % kVocab};
    std::vector<int32_t> h = prompt;
    double prob = 1.0;
    for (int i = 0; i < kSeqLen; ++i) {
      const LogitFn& fn = i < n_from_draft ? kDraft : kTarget;
      prob *= test::reference_sampler_probs(fn(h), h, p)[static_cast<size_t>(t[i])];
      h.push_back(t[i]);
    }
    out[c] = prob;
  }
  return out;
}

// Pearson chi-square of counts against probabilities over n draws; cells with an expected
// count under 5 are pooled. Returns (statistic, degrees of freedom).
std::pair<double, double> chi2_of(const std::vector<int>& counts, const std::vector<double>& probs, int n) {
  double chi2 = 0.0, pool_e = 0.0, pool_o = 0.0;
  int cells = 0;
  for (size_t c = 0; c < probs.size(); ++c) {
    const double e = probs[c] * n, o = counts[c];
    if (e < 5.0) {
      pool_e += e;
      pool_o += o;
    } else {
      chi2 += (o - e) * (o - e) / e;
      ++cells;
    }
  }
  if (pool_e > 0.0) {
    chi2 += (pool_o - pool_e) * (pool_o - pool_e) / std::max(pool_e, 1.0);
    ++cells;
  }
  return {chi2, static_cast<double>(std::max(cells - 1, 1))};
}

// Loose bound for a correct implementation (about 6 standard deviations above the mean).
double chi2_bound(double df) { return df + 6.0 * std::sqrt(2.0 * df) + 10.0; }

TEST(SpeculativeFake, SampledOutputFollowsTheTargetDistribution) {
  struct Case {
    std::string name;
    float temperature;
    int top_k;
    float top_p, min_p, repeat_penalty;
    int draft_max;
    float draft_min_prob;
  };
  const std::vector<Case> cases = {
      {"t=1, no filters, k=2", 1.0f, 0, 1.0f, 0.0f, 1.0f, 2, 0.0f},
      {"t=1, no filters, k=1", 1.0f, 0, 1.0f, 0.0f, 1.0f, 1, 0.0f},
      {"t=0.8, top-k 3, top-p 0.9, k=3", 0.8f, 3, 0.9f, 0.0f, 1.0f, 3, 0.0f},
      {"t=1.2, top-p 0.7, min-p 0.1, repeat penalty 1.5, adaptive", 1.2f, 0, 0.7f, 0.1f, 1.5f, 4, 0.4f},
  };
  const std::vector<int32_t> prompt = {2, 4};
  const int n = 20000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    GenerateOptions opt;
    opt.max_tokens = kSeqLen;
    opt.stop_at_eog = false;
    opt.sampler.temperature = c.temperature;
    opt.sampler.top_k = c.top_k;
    opt.sampler.top_p = c.top_p;
    opt.sampler.min_p = c.min_p;
    opt.sampler.repeat_penalty = c.repeat_penalty;
    opt.sampler.repeat_last_n = -1;
    SpeculativeOptions spec;
    spec.draft_max = c.draft_max;
    spec.draft_min_prob = c.draft_min_prob;

    const std::vector<double> exact = enumerate(prompt, opt.sampler, 0);
    ASSERT_NEAR(std::accumulate(exact.begin(), exact.end(), 0.0), 1.0, 1e-9);
    std::vector<int> counts(kCells, 0);
    int64_t drafted = 0, accepted = 0;
    for (int run = 0; run < n; ++run) {
      opt.sampler.seed = static_cast<uint64_t>(run);
      FakeModel target(kTarget, 16), draft(kDraft, 16);
      const SpeculativeResult r = generate_speculative(target, draft, prompt, opt, spec);
      ASSERT_EQ(r.gen.tokens.size(), static_cast<size_t>(kSeqLen));
      ++counts[cell_of(r.gen.tokens)];
      drafted += r.stats.drafted;
      accepted += r.stats.accepted;
    }
    // The drafts must have mattered: many proposed, some rejected.
    EXPECT_GT(drafted, n / 2);
    EXPECT_LT(accepted, drafted);
    EXPECT_GT(accepted, 0);
    const auto [chi2, df] = chi2_of(counts, exact, n);
    EXPECT_LT(chi2, chi2_bound(df)) << "chi-square over " << df + 1 << " cells";

    // Power: a rule that always accepts the draft gives the first min(k, 2) tokens from the draft
    // (the round's last token is always the target's). Its expected chi-square, the
    // non-centrality n * sum (b - p)^2 / p, must be far above the bound.
    const std::vector<double> broken = enumerate(prompt, opt.sampler, std::min(c.draft_max, kSeqLen - 1));
    double noncentrality = 0.0;
    for (int i = 0; i < kCells; ++i)
      if (exact[i] > 0) noncentrality += n * (broken[i] - exact[i]) * (broken[i] - exact[i]) / exact[i];
    EXPECT_GT(noncentrality, 5.0 * chi2_bound(df)) << "the test could not tell the draft's distribution apart";
  }
}

// ---- real models ---------------------------------------------------------------------------------



struct PairPaths {
  std::string name;
  fs::path small, large;
};

// SLM_PAIR_SMALL / SLM_PAIR_LARGE override the paths (e.g. to try a checkpoint being trained).
fs::path pair_path(const char* env, const char* name) {
  if (const char* e = std::getenv(env)) return e;
  return fs::path(SLM_SOURCE_DIR) / "models" / name;
}
fs::path trained_small() { return pair_path("SLM_PAIR_SMALL", "slm-brown-small-1m.gguf"); }
fs::path trained_large() { return pair_path("SLM_PAIR_LARGE", "slm-brown-large-10m.gguf"); }
bool have_trained_pair() { return fs::exists(trained_small()) && fs::exists(trained_large()); }

// The trained pair when present (the one that matters: drafts are often accepted), and the
// random init pair (drafts mostly rejected: exercises the rollback).
std::vector<PairPaths> pairs() {
  std::vector<PairPaths> out;
  if (have_trained_pair()) out.push_back({"trained pair", trained_small(), trained_large()});
  const test::InitPair& ip = test::init_pair(10);
  if (ip.error.empty()) out.push_back({"init pair", ip.small, ip.large});
  return out;
}

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Transformer> tr;
  Loaded(const fs::path& p, ThreadPool& pool)
      : model(Model::load(p.string())), tr(std::make_unique<Transformer>(*model, pool)) {}
  KvCache cache(int64_t capacity) const { return KvCache(model->config(), capacity); }
};

TEST(SpeculativeModels, GreedyEqualsTheLargeModelAlone) {
  const auto ps = pairs();
  if (ps.empty()) GTEST_SKIP() << "no model pair (models/slm-brown-6m.gguf absent)";
  ThreadPool pool(2);
  const std::vector<std::string> prompts = {"The jury said", "It was a cold morning in",
                                            "The president of the United States", "\"I don't know,\" she"};
  for (const PairPaths& pp : ps) {
    SCOPED_TRACE(pp.name);
    Loaded small(pp.small, pool), large(pp.large, pool);
    int64_t drafted = 0, accepted = 0;
    for (const std::string& text : prompts) {
      const std::vector<int32_t> prompt = large.model->tokenizer().encode(text, true, false);
      const GenerateOptions opt = greedy(64);
      KvCache kv = large.cache(256);
      const GenerateResult want = generate(*large.tr, kv, prompt, opt);
      ASSERT_EQ(want.tokens.size(), 64u);
      struct Spec { int k; float min_prob; };
      for (const Spec s : {Spec{1, 0.0f}, Spec{3, 0.0f}, Spec{5, 0.0f}, Spec{5, 0.3f}}) {
        SCOPED_TRACE("prompt '" + text + "', k " + std::to_string(s.k) + ", min_prob " + std::to_string(s.min_prob));
        KvCache lkv = large.cache(256), skv = small.cache(256);
        SpeculativeOptions spec;
        spec.draft_max = s.k;
        spec.draft_min_prob = s.min_prob;
        const SpeculativeResult r = generate_speculative(*large.tr, lkv, *small.tr, skv, prompt, opt, spec);
        EXPECT_EQ(r.gen.tokens, want.tokens);
        EXPECT_EQ(r.gen.text, want.text);
        EXPECT_EQ(r.gen.stop_reason, "length");
        EXPECT_EQ(lkv.size(), kv.size());
        drafted += r.stats.drafted;
        accepted += r.stats.accepted;
      }
    }
    EXPECT_GT(drafted, 0);
    if (pp.name == "trained pair") {
      EXPECT_GT(accepted, 0) << "a trained draft should agree with the large model at times";
    }
  }
}

TEST(SpeculativeModels, ContextFillsAtTheSamePlace) {
  const auto ps = pairs();
  if (ps.empty()) GTEST_SKIP() << "no model pair (models/slm-brown-6m.gguf absent)";
  ThreadPool pool(2);
  for (const PairPaths& pp : ps) {
    SCOPED_TRACE(pp.name);
    Loaded small(pp.small, pool), large(pp.large, pool);
    const std::vector<int32_t> prompt = large.model->tokenizer().encode("The jury said", true, false);
    const int64_t ctx = static_cast<int64_t>(prompt.size()) + 30;
    const GenerateOptions opt = greedy(100);
    KvCache kv = large.cache(ctx);
    const GenerateResult want = generate(*large.tr, kv, prompt, opt);
    ASSERT_EQ(want.stop_reason, "length");
    ASSERT_EQ(want.tokens.size(), 31u);  // the cache holds all but the last generated token
    for (int k : {1, 4, 7}) {
      for (int64_t draft_ctx : {ctx, ctx - 5}) {  // a draft with less room too
        SCOPED_TRACE("k " + std::to_string(k) + ", draft context " + std::to_string(draft_ctx));
        KvCache lkv = large.cache(ctx), skv = small.cache(draft_ctx);
        SpeculativeOptions spec;
        spec.draft_max = k;
        const SpeculativeResult r = generate_speculative(*large.tr, lkv, *small.tr, skv, prompt, opt, spec);
        EXPECT_EQ(r.gen.tokens, want.tokens);
        EXPECT_EQ(r.gen.stop_reason, "length");
        EXPECT_EQ(lkv.size(), ctx);
      }
    }
  }
}

TEST(SpeculativeModels, LargeCacheAfterARunContinuesLikeAPlainRun) {
  const auto ps = pairs();
  if (ps.empty()) GTEST_SKIP() << "no model pair (models/slm-brown-6m.gguf absent)";
  ThreadPool pool(2);
  for (const PairPaths& pp : ps) {
    SCOPED_TRACE(pp.name);
    Loaded small(pp.small, pool), large(pp.large, pool);
    const std::vector<int32_t> prompt = large.model->tokenizer().encode("It was a cold morning in", true, false);
    // Sampled, so that rejections happen at random places and the rollback is exercised.
    GenerateOptions opt;
    opt.max_tokens = 40;
    opt.stop_at_eog = false;
    opt.sampler.temperature = 1.0f;
    opt.sampler.seed = 5;
    KvCache lkv = large.cache(256), skv = small.cache(256);
    SpeculativeOptions spec;
    spec.draft_max = 4;
    const SpeculativeResult r = generate_speculative(*large.tr, lkv, *small.tr, skv, prompt, opt, spec);
    ASSERT_EQ(r.gen.tokens.size(), 40u);
    EXPECT_GT(r.stats.drafted, r.stats.accepted) << "the test needs rejections";
    // Referee: a fresh cache fed the same history the plain way (prompt at once, then one token
    // at a time, as generate() does), then both continue with the last token.
    std::vector<int32_t> history = prompt;
    history.insert(history.end(), r.gen.tokens.begin(), r.gen.tokens.end() - 1);
    KvCache ref = large.cache(256);
    large.tr->forward(prompt, ref);
    for (size_t i = prompt.size(); i < history.size(); ++i) large.tr->forward(std::vector<int32_t>{history[i]}, ref);
    ASSERT_EQ(lkv.size(), ref.size());
    const std::vector<int32_t> next = {r.gen.tokens.back()};
    const std::vector<float> a = large.tr->forward(next, lkv), b = large.tr->forward(next, ref);
    ASSERT_EQ(a.size(), b.size());
    float max_diff = 0.0f;
    for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, std::abs(a[i] - b[i]));
    EXPECT_LT(max_diff, 1e-3f) << "the large cache after the run differs from a plain run's";
    EXPECT_EQ(argmax(a), argmax(b));
    // And a KV row the run rolled back must not survive: continuing greedily gives the same tokens.
    const GenerateResult ca = generate(*large.tr, lkv, std::vector<int32_t>{r.gen.tokens.back()}, greedy(16));
    ref.truncate(static_cast<int64_t>(history.size()));
    const GenerateResult cb = generate(*large.tr, ref, std::vector<int32_t>{r.gen.tokens.back()}, greedy(16));
    EXPECT_EQ(ca.tokens, cb.tokens);
  }
}

TEST(SpeculativeModels, VocabularyMismatchIsRefused) {
  const test::InitPair& ip = test::init_pair(10);
  ASSERT_TRUE(ip.error.empty()) << ip.error;
  ThreadPool pool(1);
  Loaded large(ip.large, pool), other(ip.other_vocab, pool);
  KvCache lkv = large.cache(64), okv = other.cache(64);
  try {
    generate_speculative(*large.tr, lkv, *other.tr, okv, std::vector<int32_t>{1, 2}, greedy(4), SpeculativeOptions{});
    FAIL() << "a draft with another vocabulary was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("draft model"), std::string::npos) << msg;
    EXPECT_NE(msg.find("do not share a vocabulary"), std::string::npos) << msg;
  }
  // The CLI names both files.
  const test::CommandResult r =
      test::run_slm("generate -m " + test::quote(ip.large) + " --draft " + test::quote(ip.other_vocab) + " -p hi -n 4");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128) << r.err;
  EXPECT_NE(r.err.find("do not share a vocabulary"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(ip.other_vocab.string()), std::string::npos) << r.err;
}

// ---- CLI -------------------------------------------------------------------------------------------

TEST(SpeculativeCli, DraftJsonTokensEqualPlainGenerate) {
  const auto ps = pairs();
  if (ps.empty()) GTEST_SKIP() << "no model pair (models/slm-brown-6m.gguf absent)";
  for (const PairPaths& pp : ps) {
    SCOPED_TRACE(pp.name);
    const std::string base = "generate -m " + test::quote(pp.large) + " -p 'The jury said' -n 48 --temp 0 --ignore-eos --json -t 1";
    const test::CommandResult plain = test::run_slm(base);
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    const nlohmann::json want = nlohmann::json::parse(plain.out);
    for (const std::string& extra : {std::string(""), std::string(" --draft-max 2 --draft-min-prob 0.2")}) {
      const test::CommandResult spec = test::run_slm(base + " --draft " + test::quote(pp.small) + extra);
      ASSERT_EQ(spec.exit_code, 0) << spec.err;
      const nlohmann::json got = nlohmann::json::parse(spec.out);
      EXPECT_EQ(got["tokens"], want["tokens"]) << extra;
      EXPECT_EQ(got["text"], want["text"]) << extra;
      EXPECT_EQ(got["stop_reason"], want["stop_reason"]) << extra;
      ASSERT_TRUE(got.contains("speculative")) << spec.out;
      const nlohmann::json& s = got["speculative"];
      // (A random model is never confident enough for --draft-min-prob 0.2.)
      if (extra.empty() || pp.name == "trained pair") {
        EXPECT_GT(s["drafted"].get<int64_t>(), 0);
      }
      EXPECT_LE(s["accepted"].get<int64_t>(), s["drafted"].get<int64_t>());
      EXPECT_NEAR(s["acceptance_rate"].get<double>(),
                  s["drafted"].get<double>() > 0 ? s["accepted"].get<double>() / s["drafted"].get<double>() : 0.0, 1e-9);
      // 48 tokens = accepted drafts + one target token per verification.
      EXPECT_EQ(s["accepted"].get<int64_t>() + s["verifications"].get<int64_t>(), 48);
    }
    // Human output: the figures go to stderr.
    const test::CommandResult human = test::run_slm("generate -m " + test::quote(pp.large) + " --draft " + test::quote(pp.small) +
                                                    " -p 'The jury said' -n 16 --temp 0 -t 1");
    ASSERT_EQ(human.exit_code, 0) << human.err;
    EXPECT_NE(human.err.find("acceptance"), std::string::npos) << human.err;
    EXPECT_NE(human.err.find("mean accepted"), std::string::npos) << human.err;
  }
}

TEST(SpeculativeCli, LogitsOutWithDraftIsRefused) {
  const test::InitPair& ip = test::init_pair(10);
  ASSERT_TRUE(ip.error.empty()) << ip.error;
  test::TempDir dir;
  const test::CommandResult r = test::run_slm("generate -m " + test::quote(ip.large) + " --draft " + test::quote(ip.small) +
                                              " -p hi -n 4 --logits-out " + test::quote(dir / "l.bin"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--logits-out"), std::string::npos) << r.err;
  const test::CommandResult k = test::run_slm("generate -m " + test::quote(ip.large) + " --draft " + test::quote(ip.small) +
                                              " -p hi -n 4 --draft-max -2");
  EXPECT_NE(k.exit_code, 0);
  EXPECT_NE(k.err.find("draft_max"), std::string::npos) << k.err;
}

}  // namespace
}  // namespace slm
