// Token shards and `slm data prepare`.
// Referees: the byte layout written down in train/token_shards.h (headers and checksums are
// rebuilt here by hand from the spec), and the tokenizer itself (every stored document must equal
// [BOS] + encode(text) + EOS of the text the test cut out by hand).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/data_prepare.h"
#include "train/token_shards.h"

namespace slm {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string slurp(const fs::path& p) { return test::read_text(p); }
void spit(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// FNV-1a 64 written out from its definition (offset basis, prime), independent of fnv1a64().
uint64_t reference_fnv(const std::string& bytes) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

// A shard built byte by byte from the format description.
std::string reference_shard(uint32_t token_bytes, uint32_t vocab, uint64_t fp,
                            const std::vector<std::vector<int32_t>>& docs) {
  std::string toks;
  uint64_t n = 0;
  for (const auto& d : docs)
    for (int32_t id : d) {
      toks += le(static_cast<uint32_t>(id), token_bytes);
      ++n;
    }
  std::string h("SLMTOKS\0", 8);
  h += le(1, 4) + le(token_bytes, 4) + le(vocab, 4) + le(0, 4) + le(fp, 8) + le(n, 8) +
       le(docs.size(), 8) + le(reference_fnv(toks), 8) + le(0, 8);
  return h + toks;
}

std::vector<int32_t> all_tokens(const TokenShard& s) {
  std::vector<int32_t> out(static_cast<size_t>(s.size()));
  if (!out.empty()) s.read(0, s.size(), out.data());
  return out;
}

void write_shard(const fs::path& p, uint32_t vocab, uint64_t fp,
                 const std::vector<std::vector<int32_t>>& docs) {
  ShardWriter w(p.string(), vocab, fp);
  for (const auto& d : docs) w.add_document(d);
  w.finish();
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no slm::Error)";
}

// --- shard format ------------------------------------------------------------------------------

TEST(TokenShard, RoundTripTwoByteTokensMatchesTheSpecBytes) {
  TempDir dir;
  const std::vector<std::vector<int32_t>> docs = {{1, 300, 65, 2}, {1, 999, 0, 257, 2}, {1, 2}};
  write_shard(dir / "a.bin", 1000, 0x0123456789abcdefULL, docs);
  EXPECT_EQ(slurp(dir / "a.bin"), reference_shard(2, 1000, 0x0123456789abcdefULL, docs));
  auto s = TokenShard::open((dir / "a.bin").string());
  EXPECT_EQ(s->header().token_bytes, 2u);
  EXPECT_EQ(s->header().vocab_size, 1000u);
  EXPECT_EQ(s->header().n_documents, 3u);
  EXPECT_EQ(s->size(), 11);
  EXPECT_EQ(all_tokens(*s), (std::vector<int32_t>{1, 300, 65, 2, 1, 999, 0, 257, 2, 1, 2}));
  int32_t mid[3];
  s->read(4, 3, mid);
  EXPECT_EQ(mid[0], 1);
  EXPECT_EQ(mid[1], 999);
  EXPECT_EQ(mid[2], 0);
  EXPECT_THROW(s->read(9, 3, mid), Error);
  EXPECT_THROW(s->read(-1, 1, mid), Error);
  s->read(11, 0, mid);  // an empty range at the end is fine
  // No temporary file is left beside the shard.
  int files = 0;
  for (auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(TokenShard, RoundTripFourByteTokens) {
  TempDir dir;
  const std::vector<std::vector<int32_t>> docs = {{100000, 65535, 65536, 5, 150000}, {7}};
  write_shard(dir / "b.bin", 151936, 42, docs);
  EXPECT_EQ(slurp(dir / "b.bin"), reference_shard(4, 151936, 42, docs));
  auto s = TokenShard::open((dir / "b.bin").string());
  EXPECT_EQ(s->header().token_bytes, 4u);
  EXPECT_EQ(all_tokens(*s), (std::vector<int32_t>{100000, 65535, 65536, 5, 150000, 7}));
  EXPECT_EQ(fs::file_size(dir / "b.bin"), 64u + 6 * 4);
}

TEST(TokenShard, TokenWidthFollowsTheVocabulary) {
  EXPECT_EQ(shard_token_bytes(65536), 2u);  // ids 0..65535 fit 16 bits
  EXPECT_EQ(shard_token_bytes(65537), 4u);
  TempDir dir;
  write_shard(dir / "c.bin", 65536, 1, {{65535, 0}});
  EXPECT_EQ(all_tokens(*TokenShard::open((dir / "c.bin").string())),
            (std::vector<int32_t>{65535, 0}));
}

TEST(TokenShard, EmptyShardIsValid) {
  TempDir dir;
  write_shard(dir / "e.bin", 32000, 9, {});
  EXPECT_EQ(fs::file_size(dir / "e.bin"), 64u);
  auto s = TokenShard::open((dir / "e.bin").string());
  EXPECT_EQ(s->size(), 0);
  EXPECT_EQ(s->header().n_documents, 0u);
}

TEST(TokenShard, WriterRejectsIdsOutsideTheVocabAndCleansUp) {
  TempDir dir;
  {
    ShardWriter w((dir / "x.bin").string(), 100, 1);
    w.add_document({1, 2, 3});
    EXPECT_THROW(w.add_document({1, 100}), Error);
    EXPECT_THROW(w.add_document({-1}), Error);
    // destroyed without finish(): nothing may remain
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(TokenShard, CorruptFilesAreRefusedWithClearErrors) {
  TempDir dir;
  const std::vector<std::vector<int32_t>> docs = {{1, 10, 20, 30, 2}, {1, 40, 2}};
  const std::string good = reference_shard(2, 1000, 5, docs);
  auto check = [&](const std::string& bytes, const std::string& expect) {
    spit(dir / "bad.bin", bytes);
    const std::string msg = error_of([&] { TokenShard::open((dir / "bad.bin").string()); });
    EXPECT_NE(msg.find(expect), std::string::npos) << "message: " << msg;
    EXPECT_NE(msg.find("bad.bin"), std::string::npos) << "message: " << msg;
  };
  spit(dir / "ok.bin", good);
  EXPECT_NO_THROW(TokenShard::open((dir / "ok.bin").string()));

  std::string b = good;
  b[0] = 'X';
  check(b, "bad magic");
  b = good;
  b[8] = 2;
  check(b, "version 2");
  b = good;
  b[12] = 3;
  check(b, "bytes per token");
  check(good.substr(0, good.size() - 1), "truncated");
  check(good.substr(0, good.size() - 2), "truncated");
  check(good.substr(0, 40), "truncated");
  check(good + "xy", "unexpected bytes");
  b = good;
  b[64 + 3] ^= 0x10;  // flip one bit of a token
  check(b, "checksum mismatch");
  b = good;
  b[48] ^= 1;  // or of the stored checksum
  check(b, "checksum mismatch");
  // A token id beyond the vocabulary, with a consistent checksum: caught at open.
  check(reference_shard(2, 30, 5, docs), "outside the vocabulary");
  check(reference_shard(2, 0, 5, docs), "vocabulary size is 0");
  spit(dir / "empty.bin", "");
  EXPECT_THROW(TokenShard::open((dir / "empty.bin").string()), Error);
  EXPECT_THROW(TokenShard::open((dir / "missing.bin").string()), Error);
}

TEST(TokenShard, CheckShardTokenizer) {
  TempDir dir;
  write_shard(dir / "t.bin", 1000, 0xabcdef0123456789ULL, {{1, 2}});
  auto s = TokenShard::open((dir / "t.bin").string());
  EXPECT_NO_THROW(check_shard_tokenizer(*s, "t.bin", 0xabcdef0123456789ULL, 1000));
  const std::string msg =
      error_of([&] { check_shard_tokenizer(*s, "t.bin", 0x1111111111111111ULL, 1000); });
  EXPECT_NE(msg.find("abcdef0123456789"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1111111111111111"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t.bin"), std::string::npos) << msg;
  EXPECT_THROW(check_shard_tokenizer(*s, "t.bin", 0xabcdef0123456789ULL, 1001), Error);
}

// --- split rule --------------------------------------------------------------------------------

TEST(DataSplit, RuleIsDeterministicAndRespectsTheFraction) {
  int val = 0, differ = 0;
  for (uint64_t i = 0; i < 100000; ++i) {
    const bool v = is_validation_document(7, i, 0.1);
    EXPECT_EQ(v, is_validation_document(7, i, 0.1));
    val += v;
    differ += v != is_validation_document(8, i, 0.1);
    EXPECT_FALSE(is_validation_document(7, i, 0.0));
    EXPECT_TRUE(is_validation_document(7, i, 1.0));
    // Monotone in the fraction: a document held out at 10% is also held out at 20%.
    if (v) {
      EXPECT_TRUE(is_validation_document(7, i, 0.2));
    }
  }
  // Binomial(100000, 0.1): sd ~ 95, so +-1000 is > 10 sd.
  EXPECT_NEAR(val, 10000, 1000);
  EXPECT_GT(differ, 5000);  // another seed gives another split
  EXPECT_THROW(parse_doc_split("para"), Error);
  EXPECT_EQ(parse_doc_split("line"), DocSplit::Line);
}

// --- data prepare ------------------------------------------------------------------------------

// A tiny SentencePiece-style vocabulary (control tokens, 256 byte tokens, a few pieces) written
// as a vocabulary-only GGUF, so the prepare tests run without the shared data. `pad_to` adds
// unused filler tokens (to reach 4-byte token ids).
void write_tiny_tokenizer(const fs::path& p, size_t pad_to = 0) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::vector<float> scores = {0, 0, 0};
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.push_back(buf);
    types.push_back(6);
    scores.push_back(0);
  }
  const char* pieces[] = {"\xe2\x96\x81", "e", "t", "h", "th", "\xe2\x96\x81t", "\xe2\x96\x81th",
                          "\xe2\x96\x81the", "a", "\xe2\x96\x81" "a", "n", "an", "d", "and"};
  float score = -1;
  for (const char* s : pieces) {
    tokens.push_back(s);
    types.push_back(1);
    scores.push_back(score -= 0.5f);
  }
  for (size_t i = tokens.size(); i < pad_to; ++i) {
    tokens.push_back("<filler" + std::to_string(i) + ">");
    types.push_back(5);
    scores.push_back(-1e9f);
  }
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.write(p.string());
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& p) {
  return Tokenizer::from_gguf(*GgufFile::open(p.string()));
}

std::vector<int32_t> stored(const Tokenizer& tok, const std::string& text) {
  std::vector<int32_t> ids;
  if (tok.vocab().add_bos && tok.bos() >= 0) ids.push_back(tok.bos());
  for (int32_t id : tok.encode(text, false, false)) ids.push_back(id);
  if (tok.eos() >= 0) ids.push_back(tok.eos());
  return ids;
}

// What train.bin and val.bin must hold for these documents, by the documented rule.
struct Expected {
  std::vector<int32_t> train, val;
  uint64_t train_docs = 0, val_docs = 0;
};
Expected expected_split(const Tokenizer& tok, const std::vector<std::string>& docs, uint64_t seed,
                        double fraction) {
  std::vector<bool> is_val(docs.size());
  size_t n_val = 0;
  for (size_t i = 0; i < docs.size(); ++i) n_val += is_val[i] = is_validation_document(seed, i, fraction);
  if (n_val == 0 && fraction > 0 && docs.size() >= 2) is_val.back() = true;
  Expected e;
  for (size_t i = 0; i < docs.size(); ++i) {
    auto ids = stored(tok, docs[i]);
    auto& dst = is_val[i] ? e.val : e.train;
    dst.insert(dst.end(), ids.begin(), ids.end());
    ++(is_val[i] ? e.val_docs : e.train_docs);
  }
  return e;
}

void expect_prepared(const fs::path& out, const Tokenizer& tok, const std::vector<std::string>& docs,
                     uint64_t seed, double fraction) {
  const Expected e = expected_split(tok, docs, seed, fraction);
  auto train = TokenShard::open((out / "train.bin").string());
  auto val = TokenShard::open((out / "val.bin").string());
  EXPECT_EQ(all_tokens(*train), e.train);
  EXPECT_EQ(all_tokens(*val), e.val);
  EXPECT_EQ(train->header().n_documents, e.train_docs);
  EXPECT_EQ(val->header().n_documents, e.val_docs);
  for (const auto* s : {train.get(), val.get()}) {
    EXPECT_NO_THROW(check_shard_tokenizer(*s, "shard", tok.fingerprint(), tok.vocab_size()));
  }
  // tokenizer.gguf tokenizes exactly as the source and holds no tensors.
  auto copy_file = GgufFile::open((out / "tokenizer.gguf").string());
  EXPECT_TRUE(copy_file->tensors().empty());
  for (const auto& kv : copy_file->metadata())
    EXPECT_TRUE(kv.first.rfind("tokenizer.", 0) == 0 || kv.first.rfind("general.", 0) == 0) << kv.first;
  EXPECT_EQ(Tokenizer::from_gguf(*copy_file)->fingerprint(), tok.fingerprint());
  // meta.json agrees with the shards.
  auto meta = nlohmann::json::parse(slurp(out / "meta.json"));
  char hex[20];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(tok.fingerprint()));
  EXPECT_EQ(meta["tokenizer"]["fingerprint"], hex);
  EXPECT_EQ(meta["train"]["tokens"], e.train.size());
  EXPECT_EQ(meta["val"]["documents"], e.val_docs);
  EXPECT_EQ(meta["settings"]["seed"], seed);
}

PrepareOptions options(const std::vector<fs::path>& inputs, const fs::path& tok, const fs::path& out,
                       double fraction = 0.3, uint64_t seed = 1) {
  PrepareOptions o;
  for (const auto& p : inputs) o.inputs.push_back(p.string());
  o.tokenizer = tok.string();
  o.out_dir = out.string();
  o.val_fraction = fraction;
  o.seed = seed;
  o.threads = 2;
  return o;
}

// The hand-made corpus and the documents it holds under --split blank.
const char* kCorpus =
    "\xEF\xBB\xBFThe first paragraph of the first text.\n"
    "Its second paragraph, and a line with \xc3\xa9t\xc3\xa9 in it.\n"
    "\n"
    "Second text: one line.\n"
    "\n"
    "\n"
    "  \t \n"
    "Third text after several blank lines\r\n"
    "  indented continuation\r\n"
    "\r\n"
    "Fourth, no final newline";
const std::vector<std::string> kBlankDocs = {
    "The first paragraph of the first text.\nIts second paragraph, and a line with \xc3\xa9t\xc3\xa9 in it.",
    "Second text: one line.",
    "Third text after several blank lines\n  indented continuation",
    "Fourth, no final newline",
};
const std::vector<std::string> kLineDocs = {
    "The first paragraph of the first text.",
    "Its second paragraph, and a line with \xc3\xa9t\xc3\xa9 in it.",
    "Second text: one line.",
    "Third text after several blank lines",
    "  indented continuation",
    "Fourth, no final newline",
};

TEST(DataPrepare, BlankLineDocumentsMatchTheTokenizer) {
  TempDir dir;
  write_tiny_tokenizer(dir / "tok.gguf");
  spit(dir / "c.txt", kCorpus);
  auto tok = load_tokenizer(dir / "tok.gguf");
  for (uint64_t seed : {1, 2, 3}) {
    const fs::path out = dir / ("out" + std::to_string(seed));
    PrepareResult r = prepare_data(options({dir / "c.txt"}, dir / "tok.gguf", out, 0.3, seed));
    EXPECT_EQ(r.train_documents + r.val_documents, kBlankDocs.size());
    EXPECT_GE(r.val_documents, 1u);
    EXPECT_GE(r.train_documents, 1u);
    expect_prepared(out, *tok, kBlankDocs, seed, 0.3);
  }
  // Same seed, same bytes.
  prepare_data(options({dir / "c.txt"}, dir / "tok.gguf", dir / "again", 0.3, 2));
  EXPECT_EQ(slurp(dir / "again" / "train.bin"), slurp(dir / "out2" / "train.bin"));
  EXPECT_EQ(slurp(dir / "again" / "val.bin"), slurp(dir / "out2" / "val.bin"));
}

TEST(DataPrepare, LineAndFileSplits) {
  TempDir dir;
  write_tiny_tokenizer(dir / "tok.gguf");
  spit(dir / "c.txt", kCorpus);
  spit(dir / "d.txt", "Another file.\n\nWith two paragraphs.\n\n");
  auto tok = load_tokenizer(dir / "tok.gguf");
  auto o = options({dir / "c.txt"}, dir / "tok.gguf", dir / "line", 0.5, 4);
  o.split = DocSplit::Line;
  prepare_data(o);
  expect_prepared(dir / "line", *tok, kLineDocs, 4, 0.5);

  o = options({dir / "c.txt", dir / "d.txt"}, dir / "tok.gguf", dir / "file", 0.5, 5);
  o.split = DocSplit::File;
  prepare_data(o);
  const std::string whole = std::string(kCorpus).substr(3);  // BOM dropped, no trailing newline
  expect_prepared(dir / "file", *tok, {whole, "Another file.\n\nWith two paragraphs."}, 5, 0.5);
}

TEST(DataPrepare, ValidationFractionOnManyDocumentsAndAtLeastOne) {
  TempDir dir;
  write_tiny_tokenizer(dir / "tok.gguf");
  std::string text;
  std::vector<std::string> docs;
  for (int i = 0; i < 2000; ++i) {
    docs.push_back("document number " + std::to_string(i) + " and the rest");
    text += docs.back() + "\n";
  }
  spit(dir / "many.txt", text);
  auto tok = load_tokenizer(dir / "tok.gguf");
  auto o = options({dir / "many.txt"}, dir / "tok.gguf", dir / "out", 0.2, 11);
  o.split = DocSplit::Line;
  PrepareResult r = prepare_data(o);
  // Binomial(2000, 0.2): sd ~ 18; +-120 is > 6 sd.
  EXPECT_NEAR(static_cast<double>(r.val_documents), 400, 120);
  expect_prepared(dir / "out", *tok, docs, 11, 0.2);

  // Fraction 0: every document trains, val.bin is a valid empty shard.
  o = options({dir / "many.txt"}, dir / "tok.gguf", dir / "zero", 0.0, 11);
  o.split = DocSplit::Line;
  r = prepare_data(o);
  EXPECT_EQ(r.val_documents, 0u);
  EXPECT_EQ(TokenShard::open((dir / "zero" / "val.bin").string())->size(), 0);
  EXPECT_EQ(r.train_documents, 2000u);

  // Two documents and a tiny fraction: the hash picks none for most seeds, yet one is held out.
  spit(dir / "two.txt", "alpha\n\nbeta\n");
  uint64_t seed = 0;
  while (is_validation_document(seed, 0, 0.01) || is_validation_document(seed, 1, 0.01)) ++seed;
  r = prepare_data(options({dir / "two.txt"}, dir / "tok.gguf", dir / "two", 0.01, seed));
  EXPECT_EQ(r.val_documents, 1u);
  EXPECT_EQ(r.train_documents, 1u);
  expect_prepared(dir / "two", *tok, {"alpha", "beta"}, seed, 0.01);
}

TEST(DataPrepare, JsonlInputAndErrors) {
  TempDir dir;
  write_tiny_tokenizer(dir / "tok.gguf");
  spit(dir / "d.jsonl",
       "{\"text\": \"first doc\\nwith two lines\", \"id\": 1}\n"
       "\n"
       "{\"meta\": {\"a\": [1, 2]}, \"text\": \"\\u00e9t\\u00e9 and \\\"quotes\\\"\"}\n"
       "{\"text\": \"\"}\n"
       "{\"text\": \"last\"}\n");
  auto tok = load_tokenizer(dir / "tok.gguf");
  prepare_data(options({dir / "d.jsonl"}, dir / "tok.gguf", dir / "out", 0.5, 3));
  expect_prepared(dir / "out", *tok,
                  {"first doc\nwith two lines", "\xc3\xa9t\xc3\xa9 and \"quotes\"", "last"}, 3, 0.5);

  auto fails = [&](const std::string& jsonl, const std::string& expect) {
    spit(dir / "bad.jsonl", jsonl);
    const fs::path out = dir / "badout";
    const std::string msg = error_of(
        [&] { prepare_data(options({dir / "bad.jsonl"}, dir / "tok.gguf", out, 0.5, 3)); });
    EXPECT_NE(msg.find(expect), std::string::npos) << msg;
    // No shard (nor a temporary file) is left behind.
    EXPECT_FALSE(fs::exists(out / "train.bin"));
    if (fs::exists(out)) {
      EXPECT_TRUE(fs::is_empty(out)) << "leftovers in " << out;
    }
  };
  fails("{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n", "bad.jsonl:2");
  fails("{\"text\": \"ok\"}\n\n{\"text\": 5}\n", "bad.jsonl:3");
  fails("{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n", "bad.jsonl:2: invalid JSON");
  fails("[\"text\"]\n", "bad.jsonl:1");
}

TEST(DataPrepare, FourByteTokensAndInputErrors) {
  TempDir dir;
  write_tiny_tokenizer(dir / "big.gguf", 70000);
  spit(dir / "c.txt", kCorpus);
  auto tok = load_tokenizer(dir / "big.gguf");
  prepare_data(options({dir / "c.txt"}, dir / "big.gguf", dir / "out", 0.3, 1));
  EXPECT_EQ(TokenShard::open((dir / "out" / "train.bin").string())->header().token_bytes, 4u);
  expect_prepared(dir / "out", *tok, kBlankDocs, 1, 0.3);

  EXPECT_NE(error_of([&] {
              prepare_data(options({dir / "nope.txt"}, dir / "big.gguf", dir / "x", 0.3, 1));
            }).find("nope.txt"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "x"));
  EXPECT_THROW(prepare_data(options({dir / "c.txt"}, dir / "c.txt", dir / "y", 0.3, 1)), Error);
  EXPECT_THROW(prepare_data(options({dir / "c.txt"}, dir / "big.gguf", dir / "z", 1.5, 1)), Error);
}

// Real tokenizers: a model GGUF given as -t (only its tokenizer is copied), and a byte-level BPE
// vocabulary with more than 65536 tokens.
TEST(DataPrepare, RealTokenizersFromSharedData) {
  SLM_REQUIRE_SHARED_DATA(data);
  TempDir dir;
  spit(dir / "c.txt", kCorpus);
  const fs::path model = data / "models" / "t-llama-spm-256-q4_0.gguf";
  auto tok = load_tokenizer(model);
  prepare_data(options({dir / "c.txt"}, model, dir / "spm", 0.3, 9));
  expect_prepared(dir / "spm", *tok, kBlankDocs, 9, 0.3);
  EXPECT_LT(fs::file_size(dir / "spm" / "tokenizer.gguf"), fs::file_size(model) / 4);

  const fs::path deepseek = data / "tokenizer" / "ggml-vocab-deepseek-llm.gguf";
  auto tok2 = load_tokenizer(deepseek);
  ASSERT_GT(tok2->vocab_size(), 65536);
  prepare_data(options({dir / "c.txt"}, deepseek, dir / "bpe", 0.3, 9));
  expect_prepared(dir / "bpe", *tok2, kBlankDocs, 9, 0.3);
  // The shards refuse the other tokenizer.
  auto shard = TokenShard::open((dir / "bpe" / "train.bin").string());
  EXPECT_THROW(check_shard_tokenizer(*shard, "bpe/train.bin", tok->fingerprint(),
                                     static_cast<uint32_t>(tok->vocab_size())),
               Error);
}

// --- the CLI -----------------------------------------------------------------------------------

TEST(DataPrepareCli, RunsAndReportsErrors) {
  TempDir dir;
  write_tiny_tokenizer(dir / "tok.gguf");
  spit(dir / "c.txt", kCorpus);
  spit(dir / "d.jsonl", "{\"text\": \"hello\"}\n{\"text\": \"there\"}\n");
  const std::string tok = "'" + (dir / "tok.gguf").string() + "'";
  const std::string out = "'" + (dir / "out").string() + "'";
  auto r = test::run_slm("data prepare -i '" + (dir / "c.txt").string() + "' '" +
                         (dir / "d.jsonl").string() + "' -t " + tok + " -o " + out +
                         " --val-fraction 0.3 --seed 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("6 documents"), std::string::npos) << r.err;
  auto t = load_tokenizer(dir / "tok.gguf");
  std::vector<std::string> docs = kBlankDocs;
  docs.push_back("hello");
  docs.push_back("there");
  expect_prepared(dir / "out", *t, docs, 1, 0.3);

  r = test::run_slm("data prepare -i '" + (dir / "missing.txt").string() + "' -t " + tok + " -o " + out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("missing.txt"), std::string::npos) << r.err;

  spit(dir / "bad.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\"}\n");
  r = test::run_slm("data prepare -i '" + (dir / "bad.jsonl").string() + "' -t " + tok + " -o '" +
                    (dir / "bad").string() + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad.jsonl:2"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "bad" / "train.bin"));

  r = test::run_slm("data prepare -i '" + (dir / "c.txt").string() + "' -t " + tok + " -o " + out +
                    " --split sentence");
  EXPECT_NE(r.exit_code, 0);
  r = test::run_slm("data prepare -i '" + (dir / "c.txt").string() + "' -t " + tok + " -o " + out +
                    " --val-fraction 2");
  EXPECT_NE(r.exit_code, 0);
  r = test::run_slm("data prepare -i '" + (dir / "c.txt").string() + "' -o " + out);
  EXPECT_NE(r.exit_code, 0);  // -t is required
}

}  // namespace
}  // namespace slm
