#include "generate/generator.h"

#include <chrono>

#include "core/error.h"
#include "generate/stop_matcher.h"
#include "generate/utf8_stream.h"

namespace slm {
namespace {

using Clock = std::chrono::steady_clock;

int64_t micros_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
}

}  // namespace

GenerateResult generate(DecodeModel& model, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const TextCallback& on_text,
                        const LogitsCallback& on_logits) {
  if (options.max_tokens < 0)
    throw Error("generate: max_tokens must be >= 0, got " + std::to_string(options.max_tokens));
  if (options.top_logits < 0)
    throw Error("generate: top_logits must be >= 0, got " + std::to_string(options.top_logits));
  Sampler sampler(options.sampler);  // validates the sampler params
  StopMatcher stop(options.stop);    // validates the stop strings
  if (prompt.empty()) throw Error("generate: the prompt is empty (expected at least one token)");
  const int64_t n_vocab = model.n_vocab();
  for (int32_t id : prompt)
    if (id < 0 || id >= n_vocab)
      throw Error("generate: prompt token id " + std::to_string(id) +
                  " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
  if (static_cast<int64_t>(prompt.size()) > model.room())
    throw Error("generate: the prompt has " + std::to_string(prompt.size()) +
                " tokens but the context has room for " + std::to_string(model.room()));

  GenerateResult r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  std::vector<float> logits(static_cast<size_t>(n_vocab));  // [n_vocab]
  std::vector<int32_t> history(prompt.begin(), prompt.end());  // what the penalties look at

  auto t0 = Clock::now();
  model.forward(prompt, logits);
  r.prompt_eval_us = micros_since(t0);
  if (options.top_logits > 0) r.last_prompt_top = top_logits(logits, options.top_logits);

  Utf8Stream utf8;
  // Streams a piece; returns false if the caller cancelled.
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return true;
    r.text += piece;
    return on_text ? on_text(piece) : true;
  };

  if (options.max_tokens == 0) r.stop_reason = "length";
  while (r.stop_reason.empty()) {
    if (on_logits) on_logits(logits);
    std::vector<float> lsm;
    if (options.logprobs) lsm = log_softmax(logits);  // before the sampler scrambles the row
    t0 = Clock::now();
    const int32_t tok = sampler.sample(logits, history);
    r.gen_eval_us += micros_since(t0);

    if (options.stop_at_eog && model.is_end_of_generation(tok)) {
      r.stop_reason = "eog";
      break;
    }
    r.tokens.push_back(tok);
    history.push_back(tok);
    if (options.logprobs) r.logprobs.push_back({tok, lsm[tok], top_logits(lsm, options.top_logits)});

    const StopMatcher::Result s = stop.push(utf8.push(model.piece(tok)));
    if (!emit(s.text)) r.stop_reason = "cancelled";
    else if (s.stopped) r.stop_reason = "stop";
    else if (static_cast<int64_t>(r.tokens.size()) >= options.max_tokens) r.stop_reason = "length";
    else if (model.room() < 1) r.stop_reason = "length";  // context full: nothing more can be fed
    if (!r.stop_reason.empty()) break;

    t0 = Clock::now();
    model.forward(std::span<const int32_t>(&tok, 1), logits);
    r.gen_eval_us += micros_since(t0);
  }

  if (r.stop_reason != "stop" && r.stop_reason != "cancelled") {
    // Release what was held back: an incomplete character (as U+FFFD) and a partial stop string.
    const StopMatcher::Result s = stop.push(utf8.flush());
    emit(s.text);
    if (s.stopped) r.stop_reason = "stop";
    else emit(stop.flush());
  }
  return r;
}

}  // namespace slm
