// The decode loop: prefill a prompt, then sample and feed one token at a time, streaming text.
//
// Rules:
// - The prompt is fed in one forward call; its last position's logits give the first token.
// - An end-of-generation token (tokenizer.is_end_of_generation) ends the run with "eog" and is
//   neither emitted nor counted in `tokens` (when stop_at_eog; otherwise it is an ordinary token).
// - Stop strings: text that could still begin a stop string is held back; when one completes, the
//   text is cut where it begins (it is not emitted) and the run ends with "stop". The token that
//   completed it is in `tokens`.
// - Streamed pieces are valid UTF-8: a character split across tokens is held until complete;
//   bytes that cannot form UTF-8 become U+FFFD. `text` == the concatenation of the pieces passed
//   to on_text (held-back text released at the end included).
// - max_tokens counts generated tokens. If the KV cache fills up, the run ends with "length".
// - on_text returning false ends the run with "cancelled" (text still holds that last piece).
// - The last generated token is not fed to the model: the cache holds the prompt and every
//   generated token but the last (a caller continuing the sequence feeds it first).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "generate/decode_model.h"
#include "generate/sampler.h"

namespace slm {

struct GenerateOptions {
  int max_tokens = 128;            // >= 0
  SamplerParams sampler;
  std::vector<std::string> stop;   // stop strings, none empty
  bool stop_at_eog = true;
  int top_logits = 0;              // >= 0: entries in last_prompt_top and in each logprobs entry
  bool logprobs = false;           // fill GenerateResult::logprobs
};

// Log-probability of a generated token under the model's raw distribution (before penalties and
// sampling filters), with the top alternatives.
struct TokenLogprob {
  int32_t id = -1;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // (id, logprob), descending; top_logits entries
};

struct GenerateResult {
  std::vector<int32_t> tokens;     // generated tokens (end-of-generation token excluded)
  std::string text;                // == concatenation of the streamed pieces
  std::string stop_reason;         // "length" | "eog" | "stop" | "cancelled"
  std::vector<std::pair<int32_t, float>> last_prompt_top;  // (id, raw logit) after the prefill
  std::vector<TokenLogprob> logprobs;  // one per entry of tokens, when options.logprobs
  int64_t prompt_tokens = 0;
  int64_t prompt_eval_us = 0;      // the prefill forward call
  int64_t gen_eval_us = 0;         // forward calls and sampling after the prefill (callbacks excluded)
};

// piece: valid UTF-8; return false to cancel.
using TextCallback = std::function<bool(std::string_view piece)>;
// Raw logits [n_vocab] of each step, before penalties and sampling.
using LogitsCallback = std::function<void(std::span<const float> logits)>;

// Throws slm::Error on invalid options, an empty prompt, or a prompt that does not fit in the
// remaining context (model.room()).
GenerateResult generate(DecodeModel& model, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const TextCallback& on_text = {},
                        const LogitsCallback& on_logits = {});

// The same on a Transformer, appending to kv (which may already hold earlier positions).
inline GenerateResult generate(Transformer& transformer, KvCache& kv,
                               std::span<const int32_t> prompt, const GenerateOptions& options,
                               const TextCallback& on_text = {},
                               const LogitsCallback& on_logits = {}) {
  TransformerDecodeModel model(transformer, kv);
  return generate(model, prompt, options, on_text, on_logits);
}

}  // namespace slm
