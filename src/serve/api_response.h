// The response side of the OpenAI-compatible API: JSON bodies of completions, chat completions,
// their streamed chunks, logprobs in both of OpenAI's shapes, usage, embeddings. Pure functions
// of their inputs, so tests check the shapes without a server.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "generate/generator.h"
#include "serve/request_state.h"
#include "tokenizer/tokenizer.h"

namespace slm {

// Serialises for the wire: invalid UTF-8 (a token's partial bytes) becomes U+FFFD instead of
// throwing.
std::string dump_json(const nlohmann::json& j);

// What the response header of one completion carries.
struct CompletionMeta {
  std::string id;          // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;     // Unix seconds
  std::string model;       // the served name the client asked for
  std::string pair_kind;   // "" for a single model, else the pair strategy
};

nlohmann::json usage_json(const TokenCounts& c, const std::string& pair_kind);

// Chat shape: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}, ...]}.
nlohmann::json chat_logprobs_json(const std::vector<TokenLogprob>& lps, const Tokenizer& tok);
// Completions shape: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}.
// text_offset counts bytes from offset0 (the start of the generated text).
nlohmann::json completion_logprobs_json(const std::vector<TokenLogprob>& lps, const Tokenizer& tok,
                                        int64_t offset0 = 0);

// Whole responses (stream: false).
nlohmann::json chat_completion_json(const CompletionMeta& m, const std::string& text,
                                    const std::string& finish_reason, const TokenCounts& counts,
                                    const nlohmann::json& logprobs);
nlohmann::json text_completion_json(const CompletionMeta& m, const std::string& text,
                                    const std::string& finish_reason, const TokenCounts& counts,
                                    const nlohmann::json& logprobs);

// Streamed chunks. delta: {"role": "assistant"} first, then {"content": ...}, then {} with the
// finish reason. finish_reason "" and logprobs null when not set.
nlohmann::json chat_chunk_json(const CompletionMeta& m, const nlohmann::json& delta,
                               const std::string& finish_reason, const nlohmann::json& logprobs);
nlohmann::json text_chunk_json(const CompletionMeta& m, const std::string& text,
                               const std::string& finish_reason, const nlohmann::json& logprobs);
// The server-sent event of a text chunk without log-probabilities ("data: " + the chunk's JSON
// + a blank line), exactly as dump_json(chat_chunk_json(m, {{"content", text}}, "", nullptr))
// (or text_chunk_json) would give it. A stream sends one per token: rendering the constant part
// once per request instead of building and dumping a JSON tree per token takes most of the
// handler's per-token allocations away.
class TextChunkEvent {
 public:
  TextChunkEvent(const CompletionMeta& m, bool chat);
  // Replaces out's contents with the event of `text` (out's capacity is reused).
  void render(std::string_view text, std::string& out) const;

 private:
  std::string head_, tail_;
};

// The final chunk of a stream with stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk_json(const CompletionMeta& m, bool chat, const TokenCounts& counts);

// Standard base64 (RFC 4648, with padding) of bytes.
std::string base64_encode(const void* data, size_t n);
// An embedding as the API returns it: a float array, or base64 of little-endian float32 values.
nlohmann::json embedding_value_json(const std::vector<float>& v, bool base64);

}  // namespace slm
