// The request side of `slm serve`'s OpenAI-compatible API: the JSON bodies of
// /v1/completions, /v1/chat/completions and /v1/embeddings parsed into plain structs, with every
// mistake reported as an ApiError that the server returns as OpenAI's error body.
//
// Contract (all three parsers):
//  - The body must be a JSON object. A known field of the wrong JSON type is a 400 whose param is
//    the field ("messages[2].content[0].text" for nested ones) and whose message names the
//    expected type; an out-of-range value is a 400 naming the range. null means absent.
//  - Booleans are not numbers; integer fields take JSON integers only (2.0 is refused).
//  - Features slm does not implement (n > 1, best_of > 1, echo, suffix, logit_bias, tools,
//    response_format other than text, tool/function messages, image parts ...) are refused with a
//    400 that says so, never silently dropped. Fields nobody here knows are ignored.
//  - Checks that need the model (token ids below the vocabulary size, prompt plus max_tokens
//    within the context, the model name) belong to the server, not here.
#pragma once

#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "generate/sampler.h"
#include "tokenizer/chat_template.h"

namespace slm {

// An error the API reports: HTTP status and the fields of OpenAI's error body.
struct ApiError : std::exception {
  int status = 400;
  std::string type = "invalid_request_error";  // "authentication_error", "not_found_error",
                                               // "server_error", "rate_limit_error", ...
  std::string message;
  std::string param;  // the offending field, "" if none
  std::string code;   // "model_not_found", "context_length_exceeded", ...; "" if none

  ApiError(int status, std::string message, std::string param = "",
           std::string type = "invalid_request_error", std::string code = "");
  const char* what() const noexcept override;  // the message
};

// {"error": {"message": ..., "type": ..., "param": null or string, "code": null or string}}
nlohmann::json api_error_body(const ApiError& e);

// The sampler a request gets when it sets nothing: OpenAI's defaults (temperature 1, every
// filter and penalty off, penalties over the whole history), not the CLI's.
inline SamplerParams openai_sampler_defaults() {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  p.repeat_last_n = -1;
  p.frequency_penalty = 0.0f;
  p.presence_penalty = 0.0f;
  p.seed = 0;
  return p;
}

// A parsed /v1/completions (chat = false) or /v1/chat/completions (chat = true) request.
struct CompletionRequest {
  bool chat = false;
  std::string model;  // non-empty

  // Completions only. "prompt" is a string or an array holding exactly one string (-> prompt), or
  // an array of token ids, or an array holding exactly one such array (-> prompt_tokens, ids in
  // [0, 2^31), non-empty). Batched prompts are refused.
  std::string prompt;
  std::vector<int32_t> prompt_tokens;
  bool prompt_is_tokens = false;

  // Chat only, 1 to 4096 messages. Roles "system", "user", "assistant" ("developer" is stored as
  // "system"); content is a string or an array of {"type": "text", "text": ...} parts, whose texts
  // are concatenated with nothing between them.
  std::vector<ChatMessage> messages;

  // "max_tokens", or for chat "max_completion_tokens" (which wins when both are given): >= 1;
  // nullopt when absent (the server picks the limit).
  std::optional<int> max_tokens;

  // OpenAI semantics, not slm's CLI defaults: temperature [0, 2] default 1 (0: greedy); top_p
  // (0, 1] default 1; frequency/presence_penalty [-2, 2] default 0; and the non-standard top_k
  // (int >= 0, default 0 = off), min_p ([0, 1], default 0), repeat_penalty (> 0, default 1).
  // repeat_last_n is always -1 (the whole history, as OpenAI's penalties see it).
  // seed: any integer; negative ones are cast to uint64.
  SamplerParams sampler = openai_sampler_defaults();
  bool seed_given = false;  // false: the server picks a random seed

  std::vector<std::string> stop;  // "stop": a string or an array of at most 4; each non-empty

  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage (stream_options needs stream)

  // Chat: "logprobs" (bool) and "top_logprobs" (0..20, only with logprobs true).
  // Completions: "logprobs" is an integer 0..5 -> logprobs = true, top_logprobs = that integer.
  bool logprobs = false;
  int top_logprobs = 0;

  bool ignore_eos = false;  // non-standard "ignore_eos": keep generating past end-of-sequence
  std::string user;         // "user", an opaque end-user id

};

// Throws ApiError (400) for any request the contract above refuses.
CompletionRequest parse_completion_request(const nlohmann::json& body, bool chat);

// A parsed /v1/embeddings request. "input" is a string or an array of 1 to 2048 strings
// (-> texts; each non-empty), or an array of token ids (one input) or an array of 1 to 2048
// non-empty arrays of token ids (-> token_inputs). Exactly one of texts / token_inputs is filled.
struct EmbeddingRequest {
  std::string model;  // non-empty
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> token_inputs;
  bool base64 = false;            // "encoding_format": "float" (default) or "base64"
  std::optional<int> dimensions;  // >= 1; nullopt: the model's full width
};

// Throws ApiError (400) for any request the contract above refuses.
EmbeddingRequest parse_embedding_request(const nlohmann::json& body);

}  // namespace slm
