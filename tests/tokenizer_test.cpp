// Tokenizer tests. Referees: llama.cpp's golden tokenizations (ggml-vocab-*.gguf with .inp/.out in
// ../shared/data/tokenizer, every such file found is checked), and hand-derived results on small
// vocabularies built here (merge order, byte fallback, special-token splitting, errors).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "test_util.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t p; (p = s.find(sep, at)) != std::string::npos; at = p + sep.size())
    out.push_back(s.substr(at, p - at));
  out.push_back(s.substr(at));
  return out;
}

std::string show(const Ids& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s + "]";
}

std::string escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else out += static_cast<char>(c);
  }
  return out;
}

struct Golden {
  std::vector<std::string> texts;
  std::vector<Ids> ids;
};

// Strings are separated by "\n__ggml_vocab_test__\n" (each one is followed by it); .out has one
// line of space-separated ids per string.
Golden read_golden(const fs::path& vocab) {
  Golden g;
  g.texts = split(slurp(vocab.string() + ".inp"), "\n__ggml_vocab_test__\n");
  std::vector<std::string> lines = split(slurp(vocab.string() + ".out"), "\n");
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (g.texts.size() == lines.size() + 1 && g.texts.back().empty()) g.texts.pop_back();
  for (const auto& line : lines) {
    Ids ids;
    std::istringstream ls(line);
    for (int32_t id; ls >> id;) ids.push_back(id);
    g.ids.push_back(ids);
  }
  return g;
}

std::vector<std::string> golden_vocabs() {
  std::vector<std::string> out;
  auto data = test::shared_data();
  if (!data) return out;
  const fs::path dir = *data / "tokenizer";
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string p = e.path().string();
    if (e.path().extension() == ".gguf" && fs::exists(p + ".inp") && fs::exists(p + ".out"))
      out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::unique_ptr<Tokenizer> load(const fs::path& p) {
  auto file = GgufFile::open(p.string());
  return Tokenizer::from_gguf(*file);
}

// --- golden files ------------------------------------------------------------------------------

class GoldenVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenVocab, EncodesLikeTheReference) {
  const fs::path path = GetParam();
  const Golden g = read_golden(path);
  ASSERT_EQ(g.texts.size(), g.ids.size()) << path << ": .inp and .out disagree on the count";
  auto tok = load(path);
  size_t pass = 0;
  std::string report;
  int shown = 0;
  for (size_t i = 0; i < g.texts.size(); ++i) {
    const Ids got = tok->encode(g.texts[i], /*add_bos=*/false, /*parse_special=*/false);
    if (got == g.ids[i]) {
      ++pass;
    } else if (shown++ < 5) {
      report += "\n  '" + escape(g.texts[i]) + "'\n    expected " + show(g.ids[i]) +
                "\n    got      " + show(got);
    }
  }
  std::cout << "[ golden   ] " << path.filename().string() << ": " << pass << "/" << g.texts.size()
            << " strings match\n";
  EXPECT_EQ(pass, g.texts.size()) << path.filename() << " mismatches:" << report;
}

TEST_P(GoldenVocab, DecodeInvertsEncode) {
  const fs::path path = GetParam();
  const Golden g = read_golden(path);
  auto tok = load(path);
  for (const auto& text : g.texts) {
    // SentencePiece: decode drops the prefix space that encode added, so the text comes back.
    EXPECT_EQ(tok->decode(tok->encode(text, false)), text);
    const Ids with_bos = tok->encode(text, true);
    EXPECT_EQ(with_bos.front(), tok->bos());
    EXPECT_EQ(tok->decode(with_bos), text) << "BOS renders as nothing without render_special";
  }
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = fs::path(info.param).stem().string();
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenVocab, ::testing::ValuesIn(golden_vocabs()), param_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenVocab);

// --- real vocabularies: properties beyond the golden files -------------------------------------

std::unique_ptr<Tokenizer> load_named(const fs::path& data, const std::string& name) {
  const fs::path p = data / "tokenizer" / ("ggml-vocab-" + name + ".gguf");
  if (!fs::exists(p)) return nullptr;
  return load(p);
}

TEST(TokenizerReal, GptNeoxLoadsAndRoundTrips) {
  SLM_REQUIRE_SHARED_DATA(data);
  auto tok = load_named(data, "gpt-neox");
  if (!tok) GTEST_SKIP() << "ggml-vocab-gpt-neox.gguf absent";
  EXPECT_EQ(tok->vocab().model, "gpt2");
  EXPECT_EQ(tok->vocab_size(), 50432);
  const fs::path inp = data / "tokenizer" / "ggml-vocab-gpt-2.gguf";
  ASSERT_TRUE(fs::exists(inp.string() + ".inp"));
  for (const auto& text : read_golden(inp).texts) {
    const Ids ids = tok->encode(text, false);
    EXPECT_EQ(tok->decode(ids), text);
    for (int32_t id : ids) EXPECT_FALSE(tok->is_control(id)) << "control token from plain text";
  }
  // Its added tokens for runs of spaces are split out before BPE (user-defined tokens always are):
  // 24 spaces are token 50254.
  EXPECT_EQ(tok->encode(std::string(24, ' ') + "x", false).front(), 50254);
  EXPECT_TRUE(tok->is_end_of_generation(0));  // <|endoftext|>
}

TEST(TokenizerReal, SpmByteFallback) {
  SLM_REQUIRE_SHARED_DATA(data);
  auto tok = load_named(data, "llama-spm");
  if (!tok) GTEST_SKIP() << "ggml-vocab-llama-spm.gguf absent";
  const std::string ch = "\xF0\x9D\x94\x98";  // U+1D518, not a token of this vocabulary
  ASSERT_EQ(tok->find_token(ch), -1);
  const Ids ids = tok->encode("a" + ch, false);
  // "▁a" then one <0xXX> token per byte; this vocabulary puts <0x00> at id 3.
  ASSERT_EQ(ids.size(), 5u) << show(ids);
  EXPECT_EQ(ids[0], tok->find_token("\xE2\x96\x81" "a"));
  for (int k = 0; k < 4; ++k) EXPECT_EQ(ids[1 + k], 3 + static_cast<unsigned char>(ch[k]));
  EXPECT_EQ(tok->decode(ids), "a" + ch);
  EXPECT_EQ(tok->token_to_piece(3 + 0xF0), "\xF0");
}

TEST(TokenizerReal, SpmSpecialTokens) {
  SLM_REQUIRE_SHARED_DATA(data);
  auto tok = load_named(data, "llama-spm");
  if (!tok) GTEST_SKIP() << "ggml-vocab-llama-spm.gguf absent";
  const Ids hello = tok->encode("Hello", false);
  // parse_special: "<s>" becomes id 1 and the text after it gets the prefix space again
  // (llama.cpp adds it at the start and after every special token).
  Ids want = {1};
  want.insert(want.end(), hello.begin(), hello.end());
  want.push_back(2);
  EXPECT_EQ(tok->encode("<s>Hello</s>", false, true), want);
  // Without parse_special the same characters are plain text.
  const Ids plain = tok->encode("<s>Hello</s>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(tok->decode(plain), "<s>Hello</s>");
  EXPECT_EQ(tok->decode(want, /*render_special=*/true), "<s> Hello</s>");
  EXPECT_TRUE(tok->is_end_of_generation(2));
  EXPECT_FALSE(tok->is_end_of_generation(1));
  EXPECT_FALSE(tok->is_end_of_generation(hello.back()));
}

TEST(TokenizerReal, BpeSpecialTokens) {
  SLM_REQUIRE_SHARED_DATA(data);
  auto tok = load_named(data, "gpt-2");
  if (!tok) GTEST_SKIP() << "ggml-vocab-gpt-2.gguf absent";
  const Ids a = tok->encode("Hello world", false);
  const Ids b = tok->encode(" again", false);
  Ids want = a;
  want.push_back(50256);
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(tok->encode("Hello world<|endoftext|> again", false, true), want);
  const Ids plain = tok->encode("Hello world<|endoftext|> again", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(tok->decode(plain), "Hello world<|endoftext|> again");
  EXPECT_EQ(tok->decode(want), "Hello world again");
  EXPECT_EQ(tok->decode(want, true), "Hello world<|endoftext|> again");
  EXPECT_TRUE(tok->is_end_of_generation(50256));
  // Invalid UTF-8 survives a round trip through the byte alphabet.
  const std::string bad = "ok\xFF\xC3(\x80";
  EXPECT_EQ(tok->decode(tok->encode(bad, false)), bad);
}

TEST(TokenizerReal, Phi3EndTokens) {
  SLM_REQUIRE_SHARED_DATA(data);
  auto tok = load_named(data, "phi-3");
  if (!tok) GTEST_SKIP() << "ggml-vocab-phi-3.gguf absent";
  EXPECT_TRUE(tok->is_end_of_generation(32000));  // <|endoftext|> (EOS)
  EXPECT_TRUE(tok->is_end_of_generation(32007));  // <|end|>
  EXPECT_FALSE(tok->is_end_of_generation(32010)); // <|user|>
  // Phi-3's added tokens swallow the whitespace after them (rstrip).
  const Ids ids = tok->encode("<|user|>\nHi<|end|>", false, true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 32010);
  EXPECT_EQ(ids.back(), 32007);
  Ids hi = tok->encode("Hi", false);
  EXPECT_EQ(Ids(ids.begin() + 1, ids.end() - 1), hi);
}

TEST(TokenizerReal, LargeTextEncodesAndRoundTrips) {
  SLM_REQUIRE_SHARED_DATA(data);
  const fs::path corpus = data / "corpora" / "brown.txt";
  if (!fs::exists(corpus)) GTEST_SKIP() << "brown.txt absent";
  std::string text = slurp(corpus).substr(0, 1 << 20);
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();
  for (const char* name : {"gpt-2", "llama-spm", "deepseek-llm"}) {
    auto tok = load_named(data, name);
    if (!tok) continue;
    const Ids ids = tok->encode(text, false);
    EXPECT_GT(ids.size(), text.size() / 8) << name;
    EXPECT_LT(ids.size(), text.size() / 2) << name;
    EXPECT_EQ(tok->decode(ids), text) << name;
  }
}

// --- small hand-made vocabularies --------------------------------------------------------------

const std::string kU = "\xE2\x96\x81";  // U+2581

// A SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then the pieces given.
Vocab spm_vocab(const std::vector<std::pair<std::string, float>>& pieces) {
  Vocab v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::Unknown, TokenType::Control, TokenType::Control};
  v.scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.tokens.push_back(buf);
    v.types.push_back(TokenType::Byte);
    v.scores.push_back(0);
  }
  for (const auto& [t, s] : pieces) {
    v.tokens.push_back(t);
    v.types.push_back(TokenType::Normal);
    v.scores.push_back(s);
  }
  v.bos = 1;
  v.eos = 2;
  v.unk = 0;
  v.add_bos = true;
  return v;
}

TEST(TokenizerSpm, MergesHighestScoreFirst) {
  // ids: 259 ▁, 260 a, 261 b, 262 c, 263 ab, 264 bc, 265 ▁a, 266 abc
  auto make = [&](float ab, float bc) {
    return Tokenizer::from_vocab(spm_vocab({{kU, -1}, {"a", -1}, {"b", -1}, {"c", -1},
                                            {"ab", ab}, {"bc", bc}, {kU + "a", -5}, {"abc", -4}}));
  };
  // "abc" -> ▁ a b c. ab (-2) beats bc (-3): ▁ ab c, then "abc" (-4) beats ▁a? "▁ab" is no token;
  // ab+c = abc: ▁ abc.
  EXPECT_EQ(make(-2, -3)->encode("abc", false), (Ids{259, 266}));
  // bc first: ▁ a bc; then ▁a (-5) and abc (-4): abc wins -> ▁ abc.
  EXPECT_EQ(make(-3, -2)->encode("abc", false), (Ids{259, 266}));
  // "ab": ▁a (-5) vs ab (-2): ab -> ▁ ab.
  EXPECT_EQ(make(-2, -3)->encode("ab", false), (Ids{259, 263}));
  // Equal scores: the leftmost pair merges first: "bcb" -> ▁ b c b; bc (-1) twice? only the
  // leftmost "bc" exists; then nothing else -> ▁ bc b.
  EXPECT_EQ(make(-1, -1)->encode("bcb", false), (Ids{259, 264, 261}));
  // No prefix space when the vocabulary says so.
  Vocab v = spm_vocab({{kU, -1}, {"a", -1}, {"b", -1}, {"ab", -1}});
  v.add_space_prefix = false;
  auto tok = Tokenizer::from_vocab(v);
  EXPECT_EQ(tok->encode("ab a", false), (Ids{262, 259, 260}));
  EXPECT_EQ(tok->decode(tok->encode("ab a", false)), "ab a");
}

TEST(TokenizerSpm, TiesGoToTheLeftmostPair) {
  // "aaa": pairs (a,a) at 0 and 1 have the same score; the left one merges: aa a.
  auto tok = Tokenizer::from_vocab(spm_vocab({{kU, -9}, {"a", -1}, {"aa", -1}}));
  EXPECT_EQ(tok->encode("aaa", false), (Ids{259, 261, 260}));
}

TEST(TokenizerSpm, ByteFallbackAndUnknown) {
  auto tok = Tokenizer::from_vocab(spm_vocab({{kU, -1}, {"a", -1}}));
  // "é" (C3 A9) is no token: its bytes come out as <0xC3> <0xA9> (ids 3 + byte).
  EXPECT_EQ(tok->encode("a\xC3\xA9", false), (Ids{259, 260, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->decode(tok->encode("a\xC3\xA9", false)), "a\xC3\xA9");
  // Without byte tokens, an unknown character becomes one <unk>.
  Vocab v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>", kU, "a"};
  v.types = {TokenType::Unknown, TokenType::Control, TokenType::Control, TokenType::Normal,
             TokenType::Normal};
  v.unk = 0;
  v.bos = 1;
  auto t2 = Tokenizer::from_vocab(v);
  EXPECT_EQ(t2->encode("a\xC3\xA9", false), (Ids{3, 4, 0}));
  EXPECT_EQ(t2->token_to_piece(0), "");
  EXPECT_EQ(t2->token_to_piece(0, true), "<unk>");
}

TEST(TokenizerSpm, SpecialTokensAndUserDefined) {
  Vocab v = spm_vocab({{kU, -1}, {"a", -1}, {"<tag>", 0}});
  v.types.back() = TokenType::UserDefined;  // id 261
  auto tok = Tokenizer::from_vocab(v);
  // User-defined tokens are split out even without parse_special; control ones only with it.
  EXPECT_EQ(tok->encode("a<tag>a", false), (Ids{259, 260, 261, 259, 260}));
  EXPECT_EQ(tok->encode("a</s>", false, true), (Ids{259, 260, 2}));
  const Ids plain = tok->encode("</s>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(tok->decode(plain), "</s>");
  EXPECT_EQ(tok->encode("", true), (Ids{1}));
  EXPECT_EQ(tok->encode("", false), (Ids{}));
}

TEST(TokenizerSpm, SpecialTokensLongestFirstWithoutOverlap) {
  // User-defined "cde" (261), "abc" (262), "ab" (263). llama.cpp's rule: longest first (ties: lower
  // id), each at its leftmost non-overlapping occurrences in what is still text. In "abcde", "cde"
  // is taken first, "abc" would overlap it, then "ab" fits: [ab][cde], not [abc] d e.
  Vocab v = spm_vocab({{kU, -1}, {"d", -1}, {"cde", 0}, {"abc", 0}, {"ab", 0}});
  for (size_t i = v.tokens.size() - 3; i < v.tokens.size(); ++i) v.types[i] = TokenType::UserDefined;
  auto tok = Tokenizer::from_vocab(v);
  EXPECT_EQ(tok->encode("abcde", false), (Ids{263, 261}));
  EXPECT_EQ(tok->encode("abcd", false), (Ids{262, 259, 260}));  // [abc] then text "d" -> ▁ d
  EXPECT_EQ(tok->decode(tok->encode("abcde", false)), "abcde");
}

TEST(TokenizerReal, ConcurrentEncodeMatchesSerial) {
  SLM_REQUIRE_SHARED_DATA(data);
  for (const char* name : {"gpt-2", "llama-spm"}) {
    auto tok = load_named(data, name);
    if (!tok) continue;
    const auto texts = read_golden(data / "tokenizer" / ("ggml-vocab-" + std::string(name) + ".gguf")).texts;
    std::vector<Ids> serial;
    for (const auto& t : texts) serial.push_back(tok->encode(t, false));
    std::vector<int> bad(4, 0);
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k)
      threads.emplace_back([&, k] {
        for (int rep = 0; rep < 5; ++rep)
          for (size_t i = 0; i < texts.size(); ++i) bad[k] += tok->encode(texts[i], false) != serial[i];
      });
    for (auto& t : threads) t.join();
    for (int k = 0; k < 4; ++k) EXPECT_EQ(bad[k], 0) << name << " thread " << k;
  }
}

// A byte-level BPE vocabulary over the byte alphabet plus the merged tokens.
Vocab bpe_vocab(const std::vector<std::string>& merges) {
  Vocab v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  // Alphabet for the letters used here, and Ġ (space).
  v.tokens = {"a", "b", "c", "\xC4\xA0", "<|end|>"};
  v.types.assign(v.tokens.size(), TokenType::Normal);
  v.types[4] = TokenType::Control;
  for (const auto& m : merges) {
    std::string t = m;
    t.erase(t.find(' '), 1);
    v.tokens.push_back(t);
    v.types.push_back(TokenType::Normal);
  }
  v.merges = merges;
  v.eos = 4;
  return v;
}

TEST(TokenizerBpe, MergesByRank) {
  // ids: 5, 6, 7 in merge order.
  auto tok = Tokenizer::from_vocab(bpe_vocab({"b c", "a b", "a bc"}));
  // "abc": (b,c) has rank 0 -> a bc, then (a,bc) rank 2 -> abc.
  EXPECT_EQ(tok->encode("abc", false), (Ids{7}));
  auto tok2 = Tokenizer::from_vocab(bpe_vocab({"a b", "b c", "ab c"}));
  // (a,b) rank 0 first -> ab c -> abc (id 7).
  EXPECT_EQ(tok2->encode("abc", false), (Ids{7}));
  // " ab" is a word of its own (gpt-2 regex " ?\p{L}+"); Ġ has no merge with a here.
  EXPECT_EQ(tok2->encode("c ab", false), (Ids{2, 3, 5}));
  EXPECT_EQ(tok2->decode(tok2->encode("c ab", false)), "c ab");
  // Equal-rank ties cannot happen between different pairs; repeated pairs go leftmost first.
  auto tok3 = Tokenizer::from_vocab(bpe_vocab({"a a"}));
  EXPECT_EQ(tok3->encode("aaa", false), (Ids{5, 0}));
  // A character outside the vocabulary with no unknown token cannot be encoded: an error, not a
  // silent drop.
  EXPECT_THROW(tok3->encode("x", false), Error);
  Vocab v = bpe_vocab({"a a"});
  v.tokens.push_back("<unk>");
  v.types.push_back(TokenType::Unknown);
  v.unk = 6;
  EXPECT_EQ(Tokenizer::from_vocab(v)->encode("xa", false), (Ids{6, 0}));
}

TEST(TokenizerBpe, SpecialAndEndOfGeneration) {
  auto tok = Tokenizer::from_vocab(bpe_vocab({"a b"}));
  EXPECT_EQ(tok->encode("ab<|end|>c", false, true), (Ids{5, 4, 2}));
  EXPECT_TRUE(tok->is_end_of_generation(4));
  EXPECT_TRUE(tok->is_control(4));
  EXPECT_FALSE(tok->is_end_of_generation(5));
  EXPECT_EQ(tok->find_token("ab"), 5);
  EXPECT_EQ(tok->find_token("zz"), -1);
  EXPECT_THROW(tok->token_to_piece(99), Error);
}

// Byte-level vocabulary with the whole byte alphabet (ids 0..255 in byte order) plus merges.
Vocab alphabet_vocab(const std::string& pre, const std::vector<std::string>& merges) {
  Vocab v;
  v.model = "gpt2";
  v.pre = pre;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_to_unicode(static_cast<uint8_t>(b)));
  for (const auto& m : merges) {
    std::string t = m;
    t.erase(t.find(' '), 1);
    v.tokens.push_back(t);
  }
  v.merges = merges;
  return v;
}

TEST(TokenizerBpe, EveryPreTokenizerCompilesAndRoundTrips) {
  const std::string text = "Hello, World! It's 2024: 12345 apples\n\n  \t x\xC3\xA9\xE4\xB8\xAD\xE6\x96\x87 "
                           "\xF0\x9F\x98\x80 don't <b>IMGIMGAZ</b>";
  for (const std::string& name : pretokenizer_names()) {
    std::unique_ptr<Tokenizer> tok;
    ASSERT_NO_THROW(tok = Tokenizer::from_vocab(alphabet_vocab(name, {}))) << name;
    const Ids ids = tok->encode(text, false);
    EXPECT_EQ(ids.size(), text.size()) << name << ": one token per byte without merges";
    EXPECT_EQ(tok->decode(ids), text) << name;
  }
}

TEST(TokenizerBpe, PreTokenizerDecidesWordBoundaries) {
  // Merges that can build "12345" from its digits, and "45" on its own.
  const std::vector<std::string> merges = {"1 2", "12 3", "123 4", "1234 5", "4 5"};
  auto ids_of = [&](const std::string& pre) {
    return Tokenizer::from_vocab(alphabet_vocab(pre, merges))->encode("12345", false);
  };
  const int32_t t12345 = 259, t123 = 257, t45 = 260;
  EXPECT_EQ(ids_of("gpt-2"), (Ids{t12345}));         // " ?\p{N}+": one word
  EXPECT_EQ(ids_of("deepseek-llm"), (Ids{t12345}));  // "\p{N}+"
  EXPECT_EQ(ids_of("llama-bpe"), (Ids{t123, t45}));  // "\p{N}{1,3}": 123 | 45
  EXPECT_EQ(ids_of("qwen2"), (Ids{'1', '2', '3', '4', '5'}));      // "\p{N}": digit by digit
  EXPECT_EQ(ids_of("starcoder"), (Ids{'1', '2', '3', '4', '5'}));  // "\p{N}" first
  EXPECT_EQ(ids_of("default"), (Ids{t123, t45}));  // ... then "[0-9][0-9][0-9]" splits 123 | 45
}

TEST(TokenizerBpe, ArbitraryBytesRoundTrip) {
  // Byte-level BPE and SentencePiece with byte fallback are lossless on any byte string,
  // invalid UTF-8 included.
  auto bpe = Tokenizer::from_vocab(alphabet_vocab("llama-bpe", {"a b", "ab c"}));
  auto spm = Tokenizer::from_vocab(spm_vocab({{kU, -1}, {"a", -1}, {"b", -1}, {"ab", -2}}));
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 300; ++iter) {
    std::string text(rng() % 40, '\0');
    for (char& c : text) {
      const uint32_t r = rng();
      c = static_cast<char>(r % 4 == 0 ? "ab c\n"[r / 4 % 5] : r / 4 % 256);
    }
    EXPECT_EQ(bpe->decode(bpe->encode(text, false)), text);
    EXPECT_EQ(spm->decode(spm->encode(text, true)), text);
  }
}

// --- errors --------------------------------------------------------------------------------

void expect_error(Vocab v, const std::string& needle) {
  try {
    Tokenizer::from_vocab(std::move(v));
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, BrokenVocabularies) {
  Vocab v = bpe_vocab({"a b"});
  v.model = "";
  expect_error(v, "tokenizer.ggml.model");
  v.model = "wordpiece-x";
  expect_error(v, "wordpiece-x");
  v = bpe_vocab({"a b"});
  v.pre = "no-such-pre";
  expect_error(v, "no-such-pre");
  v = bpe_vocab({"a b"});
  v.merges.push_back("abc");
  expect_error(v, "tokenizer.ggml.merges[1]");
  v = bpe_vocab({"a b"});
  v.merges.push_back(" b");
  expect_error(v, "tokenizer.ggml.merges[1]");
  v = bpe_vocab({"a b"});
  v.types.pop_back();
  expect_error(v, "tokenizer.ggml.token_type");
  v = bpe_vocab({"a b"});
  v.scores = {1, 2};
  expect_error(v, "tokenizer.ggml.scores");
  v = bpe_vocab({"a b"});
  v.eos = 6;
  expect_error(v, "tokenizer.ggml.eos_token_id");
  v = bpe_vocab({"a b"});
  v.bos = -7;
  expect_error(v, "tokenizer.ggml.bos_token_id");
  v = bpe_vocab({"a b"});
  v.add_bos = true;
  expect_error(v, "add_bos_token");
  v = bpe_vocab({});
  v.tokens.clear();
  v.types.clear();
  expect_error(v, "tokenizer.ggml.tokens");
}

TEST(TokenizerErrors, FromGgufNamesFileAndKey) {
  test::TempDir dir;
  const std::string path = (dir / "vocab.gguf").string();
  auto write = [&](bool with_merges, const std::string& model, const std::string& pre) {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", model);
    w.set_string("tokenizer.ggml.pre", pre);
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
    w.set_i32_array("tokenizer.ggml.token_type", {1, 1, 1});
    if (with_merges) w.set_string_array("tokenizer.ggml.merges", {"a b"});
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.write(path);
  };
  auto error_of = [&]() -> std::string {
    try {
      load(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  write(true, "gpt2", "gpt-2");
  auto tok = load(path);
  EXPECT_EQ(tok->encode("ab", false), (Ids{2}));
  EXPECT_FALSE(tok->vocab().add_bos);
  write(false, "gpt2", "gpt-2");
  std::string e = error_of();
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("tokenizer.ggml.merges"), std::string::npos) << e;
  write(true, "t5-unigram", "gpt-2");
  e = error_of();
  EXPECT_NE(e.find("t5-unigram"), std::string::npos) << e;
  write(true, "gpt2", "mystery");
  e = error_of();
  EXPECT_NE(e.find("mystery"), std::string::npos) << e;
  // The llama3 family adds BOS by default (llama.cpp's rule when the file does not say).
  write(true, "gpt2", "llama-bpe");
  EXPECT_THROW(load(path), Error) << "add_bos defaults to true but there is no BOS id";
}

}  // namespace
}  // namespace slm
