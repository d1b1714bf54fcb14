// The decode loop's parts: the UTF-8 holder and the stop-string matcher directly, the loop's rules
// on a scripted fake model (eog, stop strings across tokens, max_tokens, cache exhaustion,
// cancellation, logprobs), and end to end on a golden model when ../shared/data is present
// (greedy tokens equal llama.cpp's).
#include "generate/generator.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/stop_matcher.h"
#include "generate/utf8_stream.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "test_util.h"

namespace slm {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

// ---- Utf8Stream ------------------------------------------------------------------------------

TEST(Utf8Stream, HoldsACharacterSplitAcrossPieces) {
  Utf8Stream u;
  EXPECT_EQ(u.push("caf\xC3"), "caf");
  EXPECT_EQ(u.pending(), 1u);
  EXPECT_EQ(u.push("\xA9!"), "\xC3\xA9!");
  EXPECT_EQ(u.pending(), 0u);
  // U+1F600 (F0 9F 98 80) in three pieces.
  EXPECT_EQ(u.push("\xF0"), "");
  EXPECT_EQ(u.push("\x9F\x98"), "");
  EXPECT_EQ(u.push("\x80x"), "\xF0\x9F\x98\x80x");
  EXPECT_EQ(u.flush(), "");
}

TEST(Utf8Stream, InvalidBytesBecomeReplacementCharacters) {
  // Expected outputs are what Python's bytes.decode("utf-8", errors="replace") gives.
  auto whole = [](std::string_view s) {
    Utf8Stream u;
    std::string out = u.push(s);
    return out + u.flush();
  };
  EXPECT_EQ(whole("\x80"), kFffd);                          // stray continuation byte
  EXPECT_EQ(whole("\xC0\xAF"), kFffd + kFffd);              // overlong 2-byte lead
  EXPECT_EQ(whole("\xE0\x80\x80"), kFffd + kFffd + kFffd);  // overlong 3-byte
  EXPECT_EQ(whole("\xED\xA0\x80"), kFffd + kFffd + kFffd);  // surrogate U+D800
  EXPECT_EQ(whole("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
  EXPECT_EQ(whole("\xF0\x9F\x98" "A"), kFffd + "A");        // truncated by an ASCII byte
  EXPECT_EQ(whole("a\xE2\x82"), "a" + kFffd);               // truncated at the end: flush
  EXPECT_EQ(whole("\xFF" "b"), kFffd + "b");
}

TEST(Utf8Stream, OutputIsAlwaysValid) {
  // Every split point of a mixed string gives valid pieces whose concatenation is the string.
  const std::string s = "a\xC3\xA9\xE2\x98\x95\xF0\x9F\x98\x80z";
  for (size_t i = 0; i <= s.size(); ++i)
    for (size_t j = i; j <= s.size(); ++j) {
      Utf8Stream u;
      std::string a = u.push(s.substr(0, i)), b = u.push(s.substr(i, j - i)), c = u.push(s.substr(j));
      EXPECT_TRUE(is_valid_utf8(a) && is_valid_utf8(b) && is_valid_utf8(c));
      EXPECT_EQ(a + b + c + u.flush(), s);
    }
  EXPECT_FALSE(is_valid_utf8("\xC3"));
  EXPECT_TRUE(is_valid_utf8(""));
}

// ---- StopMatcher -----------------------------------------------------------------------------

TEST(StopMatcher, StopStringSplitAcrossPieces) {
  StopMatcher m({"</s>", "###"});
  auto r = m.push("Hello <");
  EXPECT_EQ(r.text, "Hello ");
  EXPECT_FALSE(r.stopped);
  r = m.push("/");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(m.held(), 2u);
  r = m.push("s> and more");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 0);
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(m.push("later").stopped);
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, FalseStartIsReleased) {
  StopMatcher m({"</s>"});
  EXPECT_EQ(m.push("a</").text, "a");
  EXPECT_EQ(m.push("b>").text, "</b>");
  EXPECT_EQ(m.held(), 0u);
}

TEST(StopMatcher, PartialPrefixAtTheEndIsReleasedByFlush) {
  StopMatcher m({"###"});
  EXPECT_EQ(m.push("abc#").text, "abc");
  EXPECT_EQ(m.push("#").text, "");
  EXPECT_EQ(m.flush(), "##");
}

TEST(StopMatcher, CutsWhereTheStopBeginsInsideAPiece) {
  StopMatcher m({"STOP"});
  auto r = m.push("one two STOP three");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "one two ");
}

TEST(StopMatcher, EarliestStopWinsAndOverlapsAreFound) {
  StopMatcher m({"bc", "abcd"});
  auto r = m.push("xabcd");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "x");
  EXPECT_EQ(r.stop_index, 1);

  // "aab" inside "aaab" fed one byte at a time: the held "aa" must slide, not reset.
  StopMatcher o({"aab"});
  std::string out;
  for (char c : std::string("aaab")) {
    auto s = o.push(std::string(1, c));
    out += s.text;
    if (s.stopped) break;
  }
  EXPECT_TRUE(o.stopped());
  EXPECT_EQ(out, "a");
}

TEST(StopMatcher, MultiByteStopString) {
  StopMatcher m({"\xE2\x98\x95"});  // U+2615
  EXPECT_EQ(m.push("tea \xE2\x98").text, "tea ");
  auto r = m.push("\x95 more");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
}

TEST(StopMatcher, EmptyStopStringThrows) {
  EXPECT_THROW(StopMatcher({"ok", ""}), Error);
}

// ---- the loop on a scripted fake model -------------------------------------------------------

// Vocabulary of 8 tokens. forward() sets the logits so that greedy sampling picks the next token
// of `script` (5.0 for it, 1.0 for id 3 unless it is the target, 0 elsewhere).
class FakeModel : public DecodeModel {
 public:
  FakeModel(std::vector<int32_t> script, int64_t capacity = 1000)
      : script_(std::move(script)), capacity_(capacity) {}
  int64_t n_vocab() const override { return 8; }
  int64_t room() const override { return capacity_ - static_cast<int64_t>(fed.size()); }
  void forward(std::span<const int32_t> tokens, std::span<float> logits) override {
    if (static_cast<int64_t>(tokens.size()) > room()) throw std::logic_error("cache overflow");
    fed.insert(fed.end(), tokens.begin(), tokens.end());
    ++calls;
    std::fill(logits.begin(), logits.end(), 0.0f);
    logits[3] = 1.0f;
    const size_t step = static_cast<size_t>(calls - 1);
    logits[step < script_.size() ? script_[step] : 1] = 5.0f;
  }
  std::string piece(int32_t id) const override {
    static const char* const kPieces[] = {"", "Hel", "lo", " wor", "ld", "\xC3", "\xA9", "###"};
    return kPieces[id];
  }
  bool is_end_of_generation(int32_t id) const override { return id == 0; }

  std::vector<int32_t> fed;
  int calls = 0;

 private:
  std::vector<int32_t> script_;
  int64_t capacity_;
};

GenerateOptions greedy(int max_tokens = 100) {
  GenerateOptions o;
  o.max_tokens = max_tokens;
  o.sampler.temperature = 0.0f;
  return o;
}

struct RunOutput {
  GenerateResult r;
  std::vector<std::string> pieces;
};

RunOutput run(FakeModel& m, const std::vector<int32_t>& prompt, const GenerateOptions& o,
        int cancel_after = -1) {
  RunOutput out;
  out.r = generate(m, prompt, o, [&](std::string_view p) {
    out.pieces.emplace_back(p);
    return static_cast<int>(out.pieces.size()) != cancel_after;
  });
  std::string joined;
  for (const auto& p : out.pieces) {
    EXPECT_TRUE(is_valid_utf8(p)) << "streamed piece is not valid UTF-8";
    EXPECT_FALSE(p.empty()) << "empty piece streamed";
    joined += p;
  }
  EXPECT_EQ(joined, out.r.text) << "text != concatenation of the streamed pieces";
  return out;
}

TEST(Generate, StopsAtEndOfGenerationWithoutEmittingIt) {
  FakeModel m({1, 2, 3, 4, 0});
  const RunOutput x = run(m, {7, 7, 7}, greedy());
  EXPECT_EQ(x.r.tokens, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(x.r.text, "Hello world");
  EXPECT_EQ(x.r.stop_reason, "eog");
  // One prefill call with the whole prompt, then one call per generated token.
  EXPECT_EQ(m.calls, 5);
  EXPECT_EQ(m.fed, (std::vector<int32_t>{7, 7, 7, 1, 2, 3, 4}));
  EXPECT_EQ(x.r.prompt_tokens, 3);
}

TEST(Generate, EogIsAnOrdinaryTokenWhenNotStopping) {
  FakeModel m({1, 0, 2});
  GenerateOptions o = greedy(3);
  o.stop_at_eog = false;
  const RunOutput x = run(m, {7}, o);
  EXPECT_EQ(x.r.tokens, (std::vector<int32_t>{1, 0, 2}));
  EXPECT_EQ(x.r.text, "Hello");
  EXPECT_EQ(x.r.stop_reason, "length");
}

TEST(Generate, MaxTokensCountsGeneratedTokens) {
  FakeModel m({1, 2, 3, 4, 0});
  const RunOutput x = run(m, {7}, greedy(2));
  EXPECT_EQ(x.r.tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(x.r.text, "Hello");
  EXPECT_EQ(x.r.stop_reason, "length");
  EXPECT_EQ(m.calls, 2);  // the last token is not fed

  FakeModel z({1});
  const RunOutput y = run(z, {7}, greedy(0));
  EXPECT_TRUE(y.r.tokens.empty());
  EXPECT_EQ(y.r.stop_reason, "length");
}

TEST(Generate, StopStringAcrossTokensIsCutAndNotEmitted) {
  FakeModel m({1, 2, 3, 4, 0});
  GenerateOptions o = greedy();
  o.stop = {"lo w"};
  const RunOutput x = run(m, {7}, o);
  EXPECT_EQ(x.r.text, "Hel");
  EXPECT_EQ(x.r.stop_reason, "stop");
  EXPECT_EQ(x.r.tokens, (std::vector<int32_t>{1, 2, 3}));
}

TEST(Generate, HeldPartialStopIsReleasedAtTheEnd) {
  FakeModel m({1, 7, 0});
  GenerateOptions o = greedy();
  o.stop = {"###!"};
  const RunOutput x = run(m, {7}, o);
  EXPECT_EQ(x.r.text, "Hel###");
  EXPECT_EQ(x.r.stop_reason, "eog");
  EXPECT_EQ(x.pieces, (std::vector<std::string>{"Hel", "###"}));
}

TEST(Generate, MultiByteCharacterSplitAcrossTokens) {
  FakeModel m({1, 5, 6, 0});
  const RunOutput x = run(m, {7}, greedy());
  EXPECT_EQ(x.pieces, (std::vector<std::string>{"Hel", "\xC3\xA9"}));
  EXPECT_EQ(x.r.stop_reason, "eog");

  FakeModel t({1, 5, 0});  // cut short: the lone lead byte becomes U+FFFD at the end
  const RunOutput y = run(t, {7}, greedy());
  EXPECT_EQ(y.r.text, "Hel" + kFffd);
}

TEST(Generate, CallbackCancels) {
  FakeModel m({1, 2, 3, 4, 0});
  const RunOutput x = run(m, {7}, greedy(), /*cancel_after=*/2);
  EXPECT_EQ(x.r.stop_reason, "cancelled");
  EXPECT_EQ(x.r.tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(x.r.text, "Hello");
}

TEST(Generate, FullCacheEndsWithLength) {
  // Capacity 6, prompt 3: three generated tokens can be fed, a fourth is sampled from the
  // logits of the third and emitted, then nothing more fits.
  FakeModel m({1, 2, 3, 4, 1, 2, 3}, /*capacity=*/6);
  const RunOutput x = run(m, {7, 7, 7}, greedy());
  EXPECT_EQ(x.r.stop_reason, "length");
  EXPECT_EQ(x.r.tokens, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(m.fed.size(), 6u);
}

TEST(Generate, BadRequestsThrow) {
  FakeModel m({1}, /*capacity=*/4);
  EXPECT_THROW(run(m, {7, 7, 7, 7, 7}, greedy()), Error);  // prompt larger than the context
  EXPECT_THROW(run(m, {}, greedy()), Error);
  EXPECT_THROW(run(m, {9}, greedy()), Error);  // token outside the vocabulary
  EXPECT_THROW(run(m, {7}, greedy(-1)), Error);
  GenerateOptions o = greedy();
  o.stop = {""};
  EXPECT_THROW(run(m, {7}, o), Error);
  o = greedy();
  o.sampler.top_p = 2.0f;
  EXPECT_THROW(run(m, {7}, o), Error);
  EXPECT_EQ(m.calls, 0);
}

TEST(Generate, PenaltiesSeeThePrompt) {
  // Token 1 (logit 5) is in the prompt; a presence penalty of 4.5 drops it to 0.5, below token
  // 3's 1.0, so greedy picks 3. Without the penalty it picks 1.
  FakeModel a({1, 0});
  GenerateOptions o = greedy(1);
  o.sampler.presence_penalty = 4.5f;
  EXPECT_EQ(run(a, {1}, o).r.tokens, (std::vector<int32_t>{3}));
  FakeModel b({1, 0});
  EXPECT_EQ(run(b, {1}, greedy(1)).r.tokens, (std::vector<int32_t>{1}));
}

TEST(Generate, LogitsHookTopLogitsAndLogprobs) {
  FakeModel m({1, 2, 0});
  GenerateOptions o = greedy();
  o.top_logits = 2;
  o.logprobs = true;
  int hook_calls = 0;
  const GenerateResult r = generate(m, std::vector<int32_t>{7}, o, {}, [&](std::span<const float> l) {
    ++hook_calls;
    EXPECT_EQ(l.size(), 8u);
  });
  EXPECT_EQ(hook_calls, 3);  // one per sampled token, the end-of-generation one included
  using P = std::vector<std::pair<int32_t, float>>;
  EXPECT_EQ(r.last_prompt_top, (P{{1, 5.0f}, {3, 1.0f}}));
  ASSERT_EQ(r.logprobs.size(), 2u);
  // Row: one 5, one 1, six 0.
  const double log_z = std::log(std::exp(5.0) + std::exp(1.0) + 6.0);
  EXPECT_EQ(r.logprobs[1].id, 2);
  EXPECT_NEAR(r.logprobs[1].logprob, 5.0 - log_z, 1e-5);
  ASSERT_EQ(r.logprobs[1].top.size(), 2u);
  EXPECT_EQ(r.logprobs[1].top[1].first, 3);
  EXPECT_NEAR(r.logprobs[1].top[1].second, 1.0 - log_z, 1e-5);
}

TEST(Generate, SampledRunIsReproducibleBySeed) {
  // The fake's rows are fixed, so a temperature-1 run draws from the same distribution each step.
  auto sample_run = [](uint64_t seed) {
    FakeModel m({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
    GenerateOptions o;
    o.max_tokens = 16;
    o.stop_at_eog = false;
    o.sampler.temperature = 3.0f;
    o.sampler.top_k = 0;
    o.sampler.top_p = 1.0f;
    o.sampler.min_p = 0.0f;
    o.sampler.seed = seed;
    return generate(m, std::vector<int32_t>{7}, o).tokens;
  };
  EXPECT_EQ(sample_run(5), sample_run(5));
  EXPECT_NE(sample_run(5), sample_run(6));
}

// ---- end to end on golden models -------------------------------------------------------------

// Greedy generation equals llama.cpp's greedy tokens up to the first step whose top1-top2 margin
// is below twice the logit tolerance (there, rounding may legitimately pick the other token).
// Returns how many steps were compared.
size_t check_golden_greedy(const std::filesystem::path& dir, const std::string& name,
                           const std::string& prompt_file) {
  SCOPED_TRACE(name + "." + prompt_file);
  const auto json_path = dir / "models" / (name + "." + prompt_file + ".json");
  const nlohmann::json g = nlohmann::json::parse(test::read_text(json_path));
  const auto model = Model::load((dir / "models" / (name + ".gguf")).string());
  ThreadPool pool(2);
  Transformer tf(*model, pool);
  KvCache kv(model->config(), 128);
  const std::vector<int32_t> prompt = g["prompt_tokens"].get<std::vector<int32_t>>();
  EXPECT_EQ(model->tokenizer().encode(g["prompt"].get<std::string>(), g["add_bos"].get<bool>()), prompt);

  GenerateOptions o;
  o.max_tokens = static_cast<int>(g["greedy"].size());
  o.sampler.temperature = 0.0f;
  o.stop_at_eog = false;
  o.top_logits = 5;
  std::string streamed;
  const GenerateResult r = generate(tf, kv, prompt, o, [&](std::string_view p) {
    EXPECT_TRUE(is_valid_utf8(p));
    streamed += p;
    return true;
  });
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.tokens.size(), g["greedy"].size());
  EXPECT_EQ(r.last_prompt_top.size(), 5u);
  if (r.tokens.size() != g["greedy"].size() || r.last_prompt_top.size() != 5u) return 0;
  EXPECT_EQ(r.last_prompt_top[0].first, g["last_prompt_top20"][0][0].get<int32_t>());

  const double tol = 0.02;  // absolute logit tolerance for F16/F32 weights (~1e-3 of logits ~14)
  size_t checked = 0;
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    if (g["greedy"][i][1].get<double>() < 2 * tol) break;  // from here on, divergence is legitimate
    EXPECT_EQ(r.tokens[i], g["greedy"][i][0].get<int32_t>()) << name << " greedy step " << i;
    ++checked;
  }
  EXPECT_EQ(kv.size(), static_cast<int64_t>(prompt.size() + r.tokens.size() - 1));
  return checked;
}

TEST(GenerateGolden, GreedyMatchesLlamaCpp) {
  SLM_REQUIRE_SHARED_DATA(dir);
  for (const char* name : {"t-llama-spm-gqa", "t-qwen2-gpt2-mqa"}) {
    const size_t checked = check_golden_greedy(dir, name, "p1") + check_golden_greedy(dir, name, "p2");
    EXPECT_GE(checked, 5u) << name << ": too few greedy steps compared for the test to mean much";
  }
}

}  // namespace
}  // namespace slm
