// The response side of slm serve's OpenAI API: base64 against RFC 4648's vectors, embeddings as
// base64 of little-endian float32, JSON that survives invalid UTF-8, the shapes of whole responses
// and streamed chunks, and both logprobs shapes with the real tokenizer of the shipped model.
#include "serve/api_response.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace slm {
namespace {

using json = nlohmann::json;

std::string b64(const std::string& s) { return base64_encode(s.data(), s.size()); }

TEST(ServeResponse, Base64MatchesRfc4648Vectors) {
  // RFC 4648, section 10.
  EXPECT_EQ(b64(""), "");
  EXPECT_EQ(b64("f"), "Zg==");
  EXPECT_EQ(b64("fo"), "Zm8=");
  EXPECT_EQ(b64("foo"), "Zm9v");
  EXPECT_EQ(b64("foob"), "Zm9vYg==");
  EXPECT_EQ(b64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b64("foobar"), "Zm9vYmFy");
}

TEST(ServeResponse, Base64UsesPlusAndSlashForHighBytes) {
  // 0xFB 0xFF = 111110 111111 1111(00): indices 62, 63, 60 -> "+/8=".
  const unsigned char two[] = {0xFB, 0xFF};
  EXPECT_EQ(base64_encode(two, 2), "+/8=");
  // 0xFF 0xFE 0xFD = 111111 111111 111011 111101 -> "//79".
  const unsigned char three[] = {0xFF, 0xFE, 0xFD};
  EXPECT_EQ(base64_encode(three, 3), "//79");
  const unsigned char zeros[] = {0, 0, 0, 0};
  EXPECT_EQ(base64_encode(zeros, 4), "AAAAAA==");
}

TEST(ServeResponse, EmbeddingBase64IsLittleEndianFloat32) {
  // 1.0f = 0x3F800000 -> bytes 00 00 80 3F.
  EXPECT_EQ(embedding_value_json({1.0f}, true), json("AACAPw=="));
  // -2.0f = 0xC0000000 -> 00 00 80 3F 00 00 00 C0.
  EXPECT_EQ(embedding_value_json({1.0f, -2.0f}, true), json("AACAPwAAAMA="));
  // 0.5f = 0x3F000000, 0.0f, -0.0f = 0x80000000.
  EXPECT_EQ(embedding_value_json({0.5f, 0.0f, -0.0f}, true), json("AAAAPwAAAAAAAACA"));
  EXPECT_EQ(embedding_value_json({}, true), json(""));
}

TEST(ServeResponse, EmbeddingFloatsStayAnArray) {
  const json j = embedding_value_json({1.0f, -2.0f, 0.25f}, false);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0].get<float>(), 1.0f);
  EXPECT_EQ(j[1].get<float>(), -2.0f);
  EXPECT_EQ(j[2].get<float>(), 0.25f);
  EXPECT_TRUE(embedding_value_json({}, false).is_array());
}

TEST(ServeResponse, DumpJsonReplacesInvalidUtf8) {
  const json j = {{"text", std::string("a\xC3(b\xFF")}};
  EXPECT_THROW((void)j.dump(), json::type_error);  // what dump_json exists to avoid
  std::string out;
  ASSERT_NO_THROW(out = dump_json(j));
  // Each invalid byte becomes U+FFFD (EF BF BD); valid text around it is kept as is.
  EXPECT_EQ(out, "{\"text\":\"a\xEF\xBF\xBD(b\xEF\xBF\xBD\"}");
  // Valid UTF-8 is not escaped (ensure_ascii off) and comes back equal.
  const json ok = {{"text", "h\xC3\xA9llo \xE2\x82\xAC"}};
  EXPECT_EQ(dump_json(ok), "{\"text\":\"h\xC3\xA9llo \xE2\x82\xAC\"}");
  EXPECT_EQ(json::parse(dump_json(ok)), ok);
}

CompletionMeta meta(const std::string& id, const std::string& pair_kind = "") {
  return CompletionMeta{id, 1700000000, "brown", pair_kind};
}

void expect_header(const json& r, const std::string& id, const std::string& object) {
  EXPECT_EQ(r.at("id"), id);
  EXPECT_EQ(r.at("object"), object);
  EXPECT_EQ(r.at("created"), 1700000000);
  EXPECT_EQ(r.at("model"), "brown");
  EXPECT_TRUE(r.at("system_fingerprint").is_string());
}

TEST(ServeResponse, ChatCompletionShape) {
  const TokenCounts c{7, 5, 0, 0};
  const json r = chat_completion_json(meta("chatcmpl-1"), "Hello", "stop", c, nullptr);
  expect_header(r, "chatcmpl-1", "chat.completion");
  ASSERT_EQ(r.at("choices").size(), 1u);
  const json& ch = r["choices"][0];
  EXPECT_EQ(ch.at("index"), 0);
  EXPECT_EQ(ch.at("message").at("role"), "assistant");
  EXPECT_EQ(ch.at("message").at("content"), "Hello");
  EXPECT_TRUE(ch.at("logprobs").is_null());
  EXPECT_EQ(ch.at("finish_reason"), "stop");
  EXPECT_EQ(r.at("usage"), json({{"prompt_tokens", 7}, {"completion_tokens", 5}, {"total_tokens", 12}}));
  EXPECT_FALSE(r["usage"].contains("slm"));
}

TEST(ServeResponse, TextCompletionShape) {
  const TokenCounts c{3, 4, 0, 0};
  const json lp = {{"tokens", json::array()}};
  const json r = text_completion_json(meta("cmpl-9"), " world", "length", c, lp);
  expect_header(r, "cmpl-9", "text_completion");
  ASSERT_EQ(r.at("choices").size(), 1u);
  const json& ch = r["choices"][0];
  EXPECT_EQ(ch.at("index"), 0);
  EXPECT_EQ(ch.at("text"), " world");
  EXPECT_EQ(ch.at("logprobs"), lp);
  EXPECT_EQ(ch.at("finish_reason"), "length");
  EXPECT_EQ(r["usage"]["total_tokens"], 7);
  // An unfinished reason is null, not "".
  const json open = text_completion_json(meta("cmpl-9"), "", "", c, nullptr);
  EXPECT_TRUE(open["choices"][0].at("finish_reason").is_null());
}

TEST(ServeResponse, PairUsageNamesWhoDecided) {
  const TokenCounts c{10, 6, 4, 2};
  const json u = usage_json(c, "speculative");
  EXPECT_EQ(u.at("prompt_tokens"), 10);
  EXPECT_EQ(u.at("completion_tokens"), 6);
  EXPECT_EQ(u.at("total_tokens"), 16);
  EXPECT_EQ(u.at("slm"), json({{"strategy", "speculative"}, {"small_tokens", 4}, {"large_tokens", 2}}));
  const json r = chat_completion_json(meta("chatcmpl-2", "speculative"), "x", "stop", c, nullptr);
  EXPECT_EQ(r.at("usage"), u);
  EXPECT_FALSE(usage_json(c, "").contains("slm"));
}

TEST(ServeResponse, ChatChunkShapes) {
  const json first = chat_chunk_json(meta("chatcmpl-3"), {{"role", "assistant"}, {"content", ""}}, "", nullptr);
  expect_header(first, "chatcmpl-3", "chat.completion.chunk");
  ASSERT_EQ(first.at("choices").size(), 1u);
  EXPECT_EQ(first["choices"][0].at("delta"), json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["choices"][0].at("finish_reason").is_null());
  EXPECT_TRUE(first["choices"][0].at("logprobs").is_null());
  EXPECT_FALSE(first.contains("usage"));

  const json last = chat_chunk_json(meta("chatcmpl-3"), json::object(), "length", nullptr);
  EXPECT_EQ(last["choices"][0].at("delta"), json::object());
  EXPECT_EQ(last["choices"][0].at("finish_reason"), "length");

  const json usage = usage_chunk_json(meta("chatcmpl-3"), true, TokenCounts{2, 3, 0, 0});
  expect_header(usage, "chatcmpl-3", "chat.completion.chunk");
  EXPECT_EQ(usage.at("choices"), json::array());
  EXPECT_EQ(usage.at("usage").at("total_tokens"), 5);
}

// The per-token event is byte for byte what the JSON library makes of the whole chunk, for
// every byte value (control characters, quotes, invalid UTF-8 replaced), multi-byte UTF-8, and
// a model name that contains the marker the template is cut at.
TEST(ServeResponse, TextChunkEventEqualsTheDumpedChunk) {
  std::vector<std::string> texts = {"", "abc", " the", "say \"hi\"\\", "tab\tnew\nline\r", "h\xc3\xa9llo",
                                    "\xf0\x9f\x98\x80 ok", "bad \xc3", "\x7f\x01\x1f", "@@text@@"};
  for (int b = 0; b < 256; ++b) texts.push_back(std::string(1, static_cast<char>(b)) + "x");
  for (const CompletionMeta& m : {meta("chatcmpl-9"), CompletionMeta{"cmpl-\"7", 1700000000, "na@@text@@me\"", ""}}) {
    for (const bool chat : {true, false}) {
      const TextChunkEvent ev(m, chat);
      std::string out = "stale";
      for (const std::string& t : texts) {
        const json chunk = chat ? chat_chunk_json(m, {{"content", t}}, "", nullptr) : text_chunk_json(m, t, "", nullptr);
        ev.render(t, out);
        EXPECT_EQ(out, "data: " + dump_json(chunk) + "\n\n") << "chat " << chat << ", text of " << t.size() << " bytes";
      }
    }
  }
}

TEST(ServeResponse, TextChunkShapes) {
  const json c = text_chunk_json(meta("cmpl-4"), "abc", "", nullptr);
  expect_header(c, "cmpl-4", "text_completion");
  EXPECT_EQ(c["choices"][0].at("text"), "abc");
  EXPECT_TRUE(c["choices"][0].at("finish_reason").is_null());
  const json end = text_chunk_json(meta("cmpl-4"), "", "stop", nullptr);
  EXPECT_EQ(end["choices"][0].at("finish_reason"), "stop");
  const json usage = usage_chunk_json(meta("cmpl-4"), false, TokenCounts{1, 1, 0, 0});
  EXPECT_EQ(usage.at("object"), "text_completion");
  EXPECT_EQ(usage.at("choices"), json::array());
  EXPECT_EQ(usage.at("usage").at("total_tokens"), 2);
}

// The model ships a byte-level BPE (GPT-2 style) vocabulary: "H" and "i" are single-byte tokens,
// "Ġthe" is the piece " the" (4 bytes), and "Ã" stands for the lone byte 0xC3.
class ServeResponseTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = Model::load(SLM_SOURCE_DIR "/models/slm-brown-6m.gguf").release(); }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  const Tokenizer& tok() const { return model_->tokenizer(); }
  int32_t id(const std::string& text) const {
    const int32_t i = tok().find_token(text);
    EXPECT_GE(i, 0) << "no token '" << text << "'";
    return i;
  }
  static Model* model_;
};
Model* ServeResponseTokenizer::model_ = nullptr;

TEST_F(ServeResponseTokenizer, PiecesAreWhatTheTestAssumes) {
  EXPECT_EQ(tok().token_to_piece(id("H")), "H");
  EXPECT_EQ(tok().token_to_piece(id("i")), "i");
  EXPECT_EQ(tok().token_to_piece(id("\xC4\xA0the")), " the");  // "Ġthe"
  EXPECT_EQ(tok().token_to_piece(id("\xC3\x83")), "\xC3");      // "Ã" -> byte 0xC3
}

TEST_F(ServeResponseTokenizer, CompletionLogprobsAccumulateTextOffsets) {
  const int32_t h = id("H"), i = id("i"), the = id("\xC4\xA0the");
  std::vector<TokenLogprob> lps = {
      {h, -0.5f, {{h, -0.5f}, {i, -1.5f}}},
      {i, -0.25f, {}},
      {the, -2.0f, {{the, -2.0f}}},
      {h, -1.0f, {}},
  };
  const json j = completion_logprobs_json(lps, tok(), 10);
  EXPECT_EQ(j.at("tokens"), json({"H", "i", " the", "H"}));
  EXPECT_EQ(j.at("token_logprobs"), json({-0.5f, -0.25f, -2.0f, -1.0f}));
  // 10, then + 1 ("H"), + 1 ("i"), + 4 (" the").
  EXPECT_EQ(j.at("text_offset"), json({10, 11, 12, 16}));
  ASSERT_EQ(j.at("top_logprobs").size(), 4u);
  EXPECT_EQ(j["top_logprobs"][0], json({{"H", -0.5f}, {"i", -1.5f}}));
  EXPECT_EQ(j["top_logprobs"][1], json::object());
  EXPECT_EQ(j["top_logprobs"][2], json({{" the", -2.0f}}));

  // Default offset0 is 0; no tokens gives empty arrays.
  EXPECT_EQ(completion_logprobs_json(lps, tok()).at("text_offset"), json({0, 1, 2, 6}));
  const json none = completion_logprobs_json({}, tok());
  EXPECT_EQ(none.at("tokens"), json::array());
  EXPECT_EQ(none.at("text_offset"), json::array());
}

TEST_F(ServeResponseTokenizer, ChatLogprobsCarryBytes) {
  const int32_t the = id("\xC4\xA0the"), c3 = id("\xC3\x83");
  std::vector<TokenLogprob> lps = {
      {the, -0.75f, {{the, -0.75f}, {c3, -3.0f}}},
      {c3, -1.25f, {}},
  };
  const json j = chat_logprobs_json(lps, tok());
  EXPECT_TRUE(j.at("refusal").is_null());
  const json& content = j.at("content");
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0].at("token"), " the");
  EXPECT_EQ(content[0].at("logprob"), -0.75f);
  EXPECT_EQ(content[0].at("bytes"), json({32, 116, 104, 101}));
  ASSERT_EQ(content[0].at("top_logprobs").size(), 2u);
  EXPECT_EQ(content[0]["top_logprobs"][1].at("bytes"), json({0xC3}));
  EXPECT_EQ(content[0]["top_logprobs"][1].at("logprob"), -3.0f);
  // A lone lead byte: bytes keep it exactly; the token string is replaced only on the wire.
  EXPECT_EQ(content[1].at("bytes"), json({195}));
  EXPECT_EQ(content[1].at("top_logprobs"), json::array());
  const json wire = json::parse(dump_json(j));
  EXPECT_EQ(wire["content"][1]["token"], "\xEF\xBF\xBD");
  EXPECT_EQ(wire["content"][1]["bytes"], json({195}));
  // A control token decodes to "" and has no bytes.
  std::vector<TokenLogprob> bos = {{tok().bos(), -0.1f, {}}};
  const json jb = chat_logprobs_json(bos, tok());
  EXPECT_EQ(jb["content"][0].at("token"), "");
  EXPECT_EQ(jb["content"][0].at("bytes"), json::array());
}

}  // namespace
}  // namespace slm
