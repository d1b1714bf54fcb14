#include "serve/api_response.h"

#include <bit>
#include <cstring>

namespace slm {

using nlohmann::json;

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json usage_json(const TokenCounts& c, const std::string& pair_kind) {
  json u = {{"prompt_tokens", c.prompt}, {"completion_tokens", c.completion},
            {"total_tokens", c.prompt + c.completion}};
  if (c.cached > 0) u["prompt_tokens_details"] = {{"cached_tokens", c.cached}};
  // Non-standard: for a pair, how many of the completion tokens each model decided.
  if (!pair_kind.empty()) u["slm"] = {{"strategy", pair_kind}, {"small_tokens", c.small}, {"large_tokens", c.large}};
  return u;
}

namespace {

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char ch : s) b.push_back(static_cast<int>(ch));
  return b;
}

json finish_value(const std::string& reason) { return reason.empty() ? json(nullptr) : json(reason); }

json header(const CompletionMeta& m, const char* object) {
  return {{"id", m.id}, {"object", object}, {"created", m.created}, {"model", m.model},
          {"system_fingerprint", "slm"}};
}

}  // namespace

json chat_logprobs_json(const std::vector<TokenLogprob>& lps, const Tokenizer& tok) {
  json content = json::array();
  for (const TokenLogprob& lp : lps) {
    const std::string piece = tok.token_to_piece(lp.id);
    json top = json::array();
    for (const auto& [id, l] : lp.top) {
      const std::string p = tok.token_to_piece(id);
      top.push_back({{"token", p}, {"logprob", l}, {"bytes", bytes_of(p)}});
    }
    content.push_back({{"token", piece}, {"logprob", lp.logprob}, {"bytes", bytes_of(piece)}, {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

json completion_logprobs_json(const std::vector<TokenLogprob>& lps, const Tokenizer& tok, int64_t offset0) {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       offsets = json::array();
  int64_t offset = offset0;
  for (const TokenLogprob& lp : lps) {
    const std::string piece = tok.token_to_piece(lp.id);
    tokens.push_back(piece);
    token_logprobs.push_back(lp.logprob);
    json top = json::object();
    for (const auto& [id, l] : lp.top) top[tok.token_to_piece(id)] = l;
    top_logprobs.push_back(top);
    offsets.push_back(offset);
    offset += static_cast<int64_t>(piece.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs},
          {"text_offset", offsets}};
}

json chat_completion_json(const CompletionMeta& m, const std::string& text, const std::string& finish_reason,
                          const TokenCounts& counts, const json& logprobs) {
  json r = header(m, "chat.completion");
  r["choices"] = json::array({{{"index", 0},
                               {"message", {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}}},
                               {"logprobs", logprobs},
                               {"finish_reason", finish_value(finish_reason)}}});
  r["usage"] = usage_json(counts, m.pair_kind);
  return r;
}

json text_completion_json(const CompletionMeta& m, const std::string& text, const std::string& finish_reason,
                          const TokenCounts& counts, const json& logprobs) {
  json r = header(m, "text_completion");
  r["choices"] = json::array(
      {{{"index", 0}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", finish_value(finish_reason)}}});
  r["usage"] = usage_json(counts, m.pair_kind);
  return r;
}

json chat_chunk_json(const CompletionMeta& m, const json& delta, const std::string& finish_reason,
                     const json& logprobs) {
  json r = header(m, "chat.completion.chunk");
  r["choices"] = json::array(
      {{{"index", 0}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish_value(finish_reason)}}});
  return r;
}

json text_chunk_json(const CompletionMeta& m, const std::string& text, const std::string& finish_reason,
                     const json& logprobs) {
  json r = header(m, "text_completion");
  r["choices"] = json::array(
      {{{"index", 0}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", finish_value(finish_reason)}}});
  return r;
}

TextChunkEvent::TextChunkEvent(const CompletionMeta& m, bool chat) {
  // The text is the first string in the dump (keys are sorted: "choices" comes before the id and
  // the model name), so a marker there cannot be confused with one in a user-given name.
  static const char kMarker[] = "@@text@@";
  const std::string j = dump_json(chat ? chat_chunk_json(m, {{"content", kMarker}}, "", nullptr)
                                       : text_chunk_json(m, kMarker, "", nullptr));
  const size_t at = j.find(kMarker);
  head_ = "data: " + j.substr(0, at);
  tail_ = j.substr(at + sizeof kMarker - 1) + "\n\n";
}

void TextChunkEvent::render(std::string_view text, std::string& out) const {
  // The text escaped as the JSON library writes a string (invalid UTF-8 replaced), quotes cut.
  const std::string quoted = dump_json(json(std::string(text)));
  out.assign(head_);
  out.append(quoted, 1, quoted.size() - 2);
  out += tail_;
}

json usage_chunk_json(const CompletionMeta& m, bool chat, const TokenCounts& counts) {
  json r = header(m, chat ? "chat.completion.chunk" : "text_completion");
  r["choices"] = json::array();
  r["usage"] = usage_json(counts, m.pair_kind);
  return r;
}

std::string base64_encode(const void* data, size_t n) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (i + 1 < n) v |= uint32_t{p[i + 1]} << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

json embedding_value_json(const std::vector<float>& v, bool base64) {
  if (!base64) return v;
  static_assert(std::endian::native == std::endian::little, "base64 embeddings assume a little-endian host");
  return base64_encode(v.data(), v.size() * sizeof(float));
}

}  // namespace slm
