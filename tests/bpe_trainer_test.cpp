// BPE trainer tests. Referees: merges derived by hand on a small word list (including the tie
// rule and min_frequency); a naive BPE encoder written here (apply the lowest-ranked merge, leftmost
// first, until none applies); exact round trips of arbitrary bytes; the written GGUF read back
// through Tokenizer::from_gguf; the whole-text trainer against the streaming file trainer; the
// CLI's eval figures against counts computed here.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <tuple>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "test_util.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_writer.h"

namespace slm {
namespace {

using Ids = std::vector<int32_t>;
using Strings = std::vector<std::string>;

Strings repeat(const std::string& s, int n) { return Strings(static_cast<size_t>(n), s); }

// A few kilobytes of English-like text with a fixed seed (Zipf-ish word choice).
std::string sample_text(size_t n_words, uint32_t seed = 7) {
  static const char* const kWords[] = {
      "the", "of", "and", "to", "in", "that", "is", "was", "he", "for", "it", "with", "as", "his",
      "on", "be", "at", "by", "had", "not", "are", "but", "from", "or", "have", "an", "they",
      "which", "one", "you", "were", "her", "all", "she", "there", "would", "their", "we", "him",
      "been", "has", "when", "who", "will", "more", "no", "if", "out", "so", "said", "what",
      "up", "its", "about", "into", "than", "them", "can", "only", "other", "new", "some",
      "could", "time", "these", "two", "may", "then", "do", "first", "any", "my", "now", "such",
      "like", "our", "over", "man", "me", "even", "most", "made", "after", "also", "did", "many",
      "before", "must", "through", "back", "years", "where", "much", "your", "way", "well",
      "down", "should", "because", "each", "just", "those", "people", "Mr.", "how", "too",
      "little", "state", "good", "very", "make", "world", "still", "own", "see", "men", "work",
      "long", "get", "here", "between", "both", "life", "being", "under", "never", "day",
      "same", "another", "know", "while", "last", "might", "us", "great", "old", "year", "off",
      "come", "since", "against", "go", "came", "right", "used", "take", "three", "1961", "42,"};
  const size_t n = std::size(kWords);
  std::mt19937 rng(seed);
  std::string out;
  for (size_t i = 0; i < n_words; ++i) {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    const size_t k = std::min(n - 1, static_cast<size_t>(u * u * u * static_cast<double>(n)));
    out += kWords[k];
    out += (i % 13 == 12) ? ".\n" : " ";
  }
  return out;
}

// Naive BPE over one pre-tokenized word: repeatedly merge the leftmost occurrence of the
// lowest-ranked pair, until no adjacent pair has a merge; then look the pieces up by text.
Ids naive_encode(const Vocab& v, const std::string& text) {
  std::map<std::pair<std::string, std::string>, size_t> rank;
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const size_t sp = v.merges[i].find(' ');
    rank.emplace(std::make_pair(v.merges[i].substr(0, sp), v.merges[i].substr(sp + 1)), i);
  }
  std::map<std::string, int32_t> id;
  for (size_t i = 0; i < v.tokens.size(); ++i) id.emplace(v.tokens[i], static_cast<int32_t>(i));
  PreTokenizerSpec spec;
  EXPECT_TRUE(find_pretokenizer(v.pre, spec));
  RegexSplitter splitter(spec.regexes);
  Ids out;
  for (const auto& [b, e] : splitter.split(text)) {
    Strings parts;
    for (size_t i = b; i < e; ++i) parts.push_back(byte_to_unicode(static_cast<uint8_t>(text[i])));
    for (;;) {
      size_t best = SIZE_MAX, at = 0;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        auto it = rank.find({parts[i], parts[i + 1]});
        if (it != rank.end() && it->second < best) best = it->second, at = i;
      }
      if (best == SIZE_MAX) break;
      parts[at] += parts[at + 1];
      parts.erase(parts.begin() + static_cast<ptrdiff_t>(at) + 1);
    }
    for (const auto& p : parts) out.push_back(id.at(p));
  }
  return out;
}

BpeTrainOptions opts(int64_t vocab, int64_t min_frequency = 2) {
  BpeTrainOptions o;
  o.vocab_size = vocab;
  o.min_frequency = min_frequency;
  return o;
}

// The worked example: hug x10, pug x5, pun x12, bun x4, hugs x5 (each document one word).
Strings hug_corpus() {
  Strings t;
  for (const auto& [w, n] : std::vector<std::pair<std::string, int>>{
           {"hug", 10}, {"pug", 5}, {"pun", 12}, {"bun", 4}, {"hugs", 5}})
    for (const auto& s : repeat(w, n)) t.push_back(s);
  return t;
}

TEST(BpeTrainer, FirstMergesAreTheHandDerivedMostFrequentPairs) {
  // Pair counts: ug 20, pu 17, un 16, hu 15 -> "u g". Then un 16, hug 15 (h ug), pun 12 ...
  // After "p un" both (p, ug) and (hug, s) occur 5 times: the tie goes to the smaller left id,
  // 'p' (112) before "hug" (261). "b un" (4) comes last.
  const Vocab v = train_bpe_texts(hug_corpus(), opts(1000));
  const Strings want = {"u g", "u n", "h ug", "p un", "p ug", "hug s", "b un"};
  EXPECT_EQ(v.merges, want);
  ASSERT_EQ(v.tokens.size(), 259u + want.size());  // ran out of pairs before 1000
  const Strings merged(v.tokens.begin() + 259, v.tokens.end());
  EXPECT_EQ(merged, (Strings{"ug", "un", "hug", "pun", "pug", "hugs", "bun"}));

  // min_frequency 5 leaves out "b un" (4 occurrences).
  const Vocab v5 = train_bpe_texts(hug_corpus(), opts(1000, 5));
  EXPECT_EQ(v5.merges, Strings(want.begin(), want.end() - 1));
  // vocab_size caps the merges: 259 + 3 tokens.
  const Vocab v3 = train_bpe_texts(hug_corpus(), opts(262));
  EXPECT_EQ(v3.merges, Strings(want.begin(), want.begin() + 3));
  EXPECT_EQ(v3.tokens.size(), 262u);
}

TEST(BpeTrainer, SpaceIsMappedAndTiesGoToSmallerIds) {
  // Words "x", " ab" (x3), " cd" (x3): pairs (Ġ,a) (a,b) (Ġ,c) (c,d) all occur 3 times. The space
  // is byte 32 (text "Ġ"), so id 32 < 'a' 97 < 'c' 99: (Ġ, a) first; then (Ġa, b), (Ġ, c), (c, d)
  // tie at 3 and (Ġ, c) has the smallest left id.
  const Vocab v = train_bpe_texts({"x ab ab ab cd cd cd"}, opts(261));
  EXPECT_EQ(v.merges, (Strings{"\xC4\xA0 a", "\xC4\xA0 c"}));
  EXPECT_EQ(v.tokens[259], "\xC4\xA0" "a");
}

TEST(BpeTrainer, LayoutAndSpecialTokens) {
  BpeTrainOptions o = opts(400);
  o.special_tokens = {"<|im_start|>", "<|im_end|>"};
  // Special texts in the corpus are cut out before pre-tokenizing: no merge may contain '|'.
  std::string text;
  for (int i = 0; i < 50; ++i) text += "hello world<|eos|><|im_start|>user<|im_end|>";
  const Vocab v = train_bpe_texts({text}, o);
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(v.tokens[b], byte_to_unicode(static_cast<uint8_t>(b)));
    EXPECT_EQ(v.types[b], TokenType::Normal);
  }
  const Strings specials = {"<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"};
  for (size_t i = 0; i < specials.size(); ++i) {
    EXPECT_EQ(v.tokens[256 + i], specials[i]);
    EXPECT_EQ(v.types[256 + i], TokenType::Control);
  }
  EXPECT_EQ(v.bos, 256);
  EXPECT_EQ(v.eos, 257);
  EXPECT_EQ(v.pad, 258);
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_eos);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "gpt-2");
  for (const auto& m : v.merges) EXPECT_EQ(m.find('|'), std::string::npos) << m;
  EXPECT_GT(v.merges.size(), 5u);

  auto tok = Tokenizer::from_vocab(v);
  const Ids with = tok->encode("<|bos|>user<|im_start|>x<|eos|>", false, true);
  ASSERT_GE(with.size(), 4u);
  EXPECT_EQ(with.front(), 256);
  EXPECT_NE(std::find(with.begin(), with.end(), 259), with.end());
  EXPECT_EQ(with.back(), 257);
  // Without parse_special the same text is plain text and decodes back exactly.
  const Ids plain = tok->encode("<|bos|>user<|im_start|>", false, false);
  for (int32_t id : plain) EXPECT_FALSE(id >= 256 && id < 261) << id;
  EXPECT_EQ(tok->decode(plain), "<|bos|>user<|im_start|>");
  EXPECT_EQ(tok->encode("hi", true).front(), 256);
}

TEST(BpeTrainer, Deterministic) {
  const std::string a = sample_text(3000, 1), b = sample_text(3000, 2), c = sample_text(500, 3);
  const Vocab v1 = train_bpe_texts({a, b, c}, opts(600));
  const Vocab v2 = train_bpe_texts({a, b, c}, opts(600));
  // Document order changes hash-map insertion order but not the counts: same result.
  const Vocab v3 = train_bpe_texts({c, b, a}, opts(600));
  EXPECT_EQ(v1.tokens.size(), 600u);
  EXPECT_EQ(v1.tokens, v2.tokens);
  EXPECT_EQ(v1.merges, v2.merges);
  EXPECT_EQ(v1.tokens, v3.tokens);
  EXPECT_EQ(v1.merges, v3.merges);
}

TEST(BpeTrainer, RoundTripOfArbitraryBytes) {
  const Vocab v = train_bpe_texts({sample_text(5000), "日本語のテキスト 😀🎉 naïve café"}, opts(800));
  auto tok = Tokenizer::from_vocab(v);
  std::vector<std::string> cases = {
      "", " ", "\n\n  \t", "hello world", "日本語のテキストです。中文字符", "😀🎉👩‍👩‍👧 emoji",
      std::string("\xFF\xFE\x80 invalid \xC3 utf8 \xE2\x82", 21), std::string("\0a\0b", 4),
      "<|bos|> not special", sample_text(300, 9)};
  std::mt19937 rng(42);
  for (int i = 0; i < 200; ++i) {
    std::string s(rng() % 64, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng() % 256);
    cases.push_back(s);
  }
  for (const auto& s : cases) {
    const Ids ids = tok->encode(s, false);
    EXPECT_EQ(tok->decode(ids), s);
    for (int32_t id : ids) EXPECT_FALSE(tok->is_control(id));
  }
}

TEST(BpeTrainer, EncodeAgreesWithNaiveBpe) {
  const std::string train = sample_text(6000, 5);
  const Vocab v = train_bpe_texts({train}, opts(700));
  auto tok = Tokenizer::from_vocab(v);
  for (const std::string& text :
       {sample_text(800, 11), std::string("Mr. Hello, the 1961 years' worlds   of   1234567 x\n"),
        std::string("thethethe andand ofof the-the")}) {
    const Ids naive = naive_encode(v, text);
    EXPECT_EQ(tok->encode(text, false), naive);
  }
}

TEST(BpeTrainer, WrittenGgufLoadsAndCompresses) {
  test::TempDir dir;
  const std::string text = sample_text(4000);
  BpeTrainOptions o = opts(500);
  o.special_tokens = {"<|user|>"};
  o.name = "test-bpe";
  const Vocab v = train_bpe_texts({text}, o);
  const std::string path = (dir / "tok.gguf").string();
  write_tokenizer_gguf(path, v);
  auto file = GgufFile::open(path);
  EXPECT_TRUE(file->tensors().empty());
  auto tok = Tokenizer::from_gguf(*file);
  const Vocab& r = tok->vocab();
  EXPECT_EQ(r.tokens, v.tokens);
  EXPECT_EQ(r.types, v.types);
  EXPECT_EQ(r.merges, v.merges);
  EXPECT_EQ(r.model, "gpt2");
  EXPECT_EQ(r.pre, "gpt-2");
  EXPECT_EQ(r.name, "test-bpe");
  EXPECT_EQ(r.bos, 256);
  EXPECT_EQ(r.eos, 257);
  EXPECT_EQ(r.pad, 258);
  EXPECT_TRUE(r.add_bos);
  EXPECT_FALSE(r.add_eos);
  EXPECT_EQ(tok->find_token("<|user|>"), 259);
  const Ids ids = tok->encode(text, false);
  EXPECT_LT(ids.size() * 2, text.size());  // a fitted vocabulary: well under a token per byte
  EXPECT_EQ(ids, Tokenizer::from_vocab(v)->encode(text, false));
  EXPECT_EQ(tok->decode(ids), text);
}

// add_vocab_metadata is reused by model export: every golden vocabulary (SPM and BPE) written
// again must read back as the same vocabulary and tokenize the golden inputs the same way.
TEST(VocabWriter, GoldenVocabulariesRoundTrip) {
  SLM_REQUIRE_SHARED_DATA(data);
  test::TempDir dir;
  int checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(data / "tokenizer")) {
    if (e.path().extension() != ".gguf") continue;
    auto src = Tokenizer::from_gguf(*GgufFile::open(e.path().string()));
    const std::string out = (dir / e.path().filename().string()).string();
    write_tokenizer_gguf(out, src->vocab());
    auto back = Tokenizer::from_gguf(*GgufFile::open(out));
    const Vocab &a = src->vocab(), &b = back->vocab();
    SCOPED_TRACE(e.path().string());
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.types, b.types);
    EXPECT_EQ(a.scores, b.scores);
    EXPECT_EQ(a.merges, b.merges);
    EXPECT_EQ(a.model, b.model);
    EXPECT_EQ(a.pre, b.pre);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(std::make_tuple(a.bos, a.eos, a.eot, a.unk, a.pad, a.eom),
              std::make_tuple(b.bos, b.eos, b.eot, b.unk, b.pad, b.eom));
    EXPECT_EQ(std::make_tuple(a.add_bos, a.add_eos, a.add_space_prefix),
              std::make_tuple(b.add_bos, b.add_eos, b.add_space_prefix));
    const std::string text = "Hello world!  <|endoftext|> 日本語 \xF0 123456 don't";
    EXPECT_EQ(src->encode(text, true, true), back->encode(text, true, true));
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(BpeTrainer, FilesStreamedInPiecesTrainLikeTheWholeText) {
  test::TempDir dir;
  // Over 1 MiB, so the plain-text reader cuts it into pieces; lines that start with spaces keep
  // whitespace runs that a bad cut would split differently.
  std::string text;
  for (int i = 0; text.size() < (size_t{3} << 19); ++i)
    text += (i % 7 == 0 ? "   " : "") + sample_text(40, static_cast<uint32_t>(i)) + (i % 5 ? "\n" : "\n\n");
  text += "no final newline";
  {
    std::ofstream(dir / "c.txt", std::ios::binary) << text;
  }
  const Vocab whole = train_bpe_texts({text}, opts(500));
  BpeTrainStats st;
  std::vector<double> progress;
  const Vocab streamed =
      train_bpe({(dir / "c.txt").string()}, opts(500), [&](double p) { progress.push_back(p); }, &st);
  EXPECT_EQ(streamed.merges, whole.merges);
  EXPECT_EQ(streamed.tokens, whole.tokens);
  EXPECT_EQ(st.bytes, static_cast<int64_t>(text.size()));
  ASSERT_FALSE(progress.empty());
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
  EXPECT_DOUBLE_EQ(progress.back(), 1.0);

  // JSONL: each line's "text" is a document.
  const Strings docs = {"first doc\nwith lines", "second \"quoted\" doc", "日本語", "the the the"};
  {
    std::ofstream f(dir / "c.jsonl", std::ios::binary);
    for (const auto& d : docs) f << nlohmann::json{{"text", d}, {"id", 1}}.dump() << "\n\n";
  }
  EXPECT_EQ(train_bpe({(dir / "c.jsonl").string()}, opts(300)).merges,
            train_bpe_texts(docs, opts(300)).merges);
}

TEST(BpeTrainer, Errors) {
  auto throws_with = [](const std::function<void()>& f, const std::string& part) {
    try {
      f();
      ADD_FAILURE() << "no error, expected one containing '" << part << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  test::TempDir dir;
  throws_with([] { train_bpe_texts({"abc"}, opts(258)); }, "smaller than the 256 byte tokens + 3");
  EXPECT_NO_THROW(train_bpe_texts({"abc"}, opts(259)));
  BpeTrainOptions two = opts(300);
  two.special_tokens = {"<a>", "<b>"};
  two.vocab_size = 260;
  throws_with([&] { train_bpe_texts({"abc"}, two); }, "at least 261");
  BpeTrainOptions dup = opts(300);
  dup.special_tokens = {"<|eos|>"};
  throws_with([&] { train_bpe_texts({"abc"}, dup); }, "given twice");
  BpeTrainOptions byte = opts(300);
  byte.special_tokens = {"a"};
  throws_with([&] { train_bpe_texts({"abc"}, byte); }, "byte token 97");
  throws_with([] { train_bpe_texts({"", ""}, opts(300)); }, "empty");
  throws_with([] { train_bpe_texts({"<|eos|><|bos|>"}, opts(300)); }, "empty");
  const std::string missing = (dir / "missing.txt").string();
  throws_with([&] { train_bpe({missing}, opts(300)); }, missing);
  {
    std::ofstream(dir / "bad.jsonl") << "{\"text\": \"ok\"}\n{\"txt\": 1}\n";
    std::ofstream(dir / "broken.jsonl") << "{\"text\": \"ok\"\n";
    std::ofstream(dir / "empty.txt") << "";
  }
  throws_with([&] { train_bpe({(dir / "bad.jsonl").string()}, opts(300)); }, "bad.jsonl:2:");
  throws_with([&] { train_bpe({(dir / "broken.jsonl").string()}, opts(300)); }, "broken.jsonl:1:");
  throws_with([&] { train_bpe({(dir / "empty.txt").string()}, opts(300)); }, "empty");
}

TEST(BpeTrainer, CliTrainEvalAndErrors) {
  test::TempDir dir;
  const std::string text = sample_text(3000) + "日本語 😀\n";
  const std::string in = (dir / "corpus.txt").string(), out = (dir / "tok.gguf").string();
  {
    std::ofstream(in, std::ios::binary) << text;
  }
  auto r = test::run_slm("tokenizer train -i '" + in + "' --vocab 400 -o '" + out +
                         "' --special '<|im_start|>' '<|im_end|>'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("vocab 400"), std::string::npos) << r.err;
  auto tok = Tokenizer::from_gguf(*GgufFile::open(out));
  EXPECT_EQ(tok->vocab_size(), 400);
  EXPECT_EQ(tok->find_token("<|im_end|>"), 260);
  // The same vocabulary as the library trains.
  BpeTrainOptions o = opts(400);
  o.special_tokens = {"<|im_start|>", "<|im_end|>"};
  EXPECT_EQ(tok->vocab().merges, train_bpe_texts({text}, o).merges);

  r = test::run_slm("tokenizer eval -m '" + out + "' -i '" + in + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto tokens = static_cast<int64_t>(tok->encode(text, false).size());
  int64_t chars = 0;
  for (size_t i = 0; i < text.size(); ++chars) utf8_decode(text, i);
  const int64_t words = 3000 + 2;  // sample_text words, then "日本語" and "😀"
  EXPECT_EQ(j["tokens"].get<int64_t>(), tokens);
  EXPECT_EQ(j["bytes"].get<int64_t>(), static_cast<int64_t>(text.size()));
  EXPECT_EQ(j["chars"].get<int64_t>(), chars);
  EXPECT_EQ(j["words"].get<int64_t>(), words);
  EXPECT_DOUBLE_EQ(j["chars_per_token"].get<double>(), static_cast<double>(chars) / tokens);
  EXPECT_DOUBLE_EQ(j["tokens_per_word"].get<double>(), static_cast<double>(tokens) / words);
  EXPECT_EQ(j["vocab_size"].get<int>(), 400);

  r = test::run_slm("tokenizer eval -m '" + out + "' -i '" + in + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("chars/token"), std::string::npos) << r.out;

  const std::string missing = (dir / "nope.txt").string();
  r = test::run_slm("tokenizer train -i '" + missing + "' --vocab 400 -o '" + out + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("nope.txt"), std::string::npos) << r.err;
  r = test::run_slm("tokenizer train -i '" + in + "' --vocab 100 -o '" + (dir / "x.gguf").string() + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("smaller than"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "x.gguf"));
  r = test::run_slm("tokenizer eval -m '" + missing + "' -i '" + in + "'");
  EXPECT_NE(r.exit_code, 0);
}

TEST(BpeTrainer, BrownCorpus) {
  SLM_REQUIRE_SHARED_DATA(data);
  const auto brown = data / "corpora" / "brown.txt";
  if (!std::filesystem::exists(brown)) GTEST_SKIP() << brown << " is absent";
  BpeTrainStats st;
  const Vocab v = train_bpe({brown.string()}, opts(1024), {}, &st);
  EXPECT_EQ(v.tokens.size(), 1024u);
  EXPECT_EQ(st.bytes, static_cast<int64_t>(std::filesystem::file_size(brown)));
  auto tok = Tokenizer::from_vocab(v);
  const std::string text = test::read_text(brown).substr(0, 200000);
  const Ids ids = tok->encode(text, false);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(ids.size() * 2, text.size());  // English with 1k tokens: over 2 bytes per token (2.5)
  EXPECT_EQ(naive_encode(v, text.substr(0, 5000)), tok->encode(text.substr(0, 5000), false));
}

}  // namespace
}  // namespace slm
