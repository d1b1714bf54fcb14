#include "generate/generator.h"

#include <chrono>

#include "core/error.h"
#include "generate/token_emitter.h"

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
  GenerateResult r;
  // Validates max_tokens, top_logits and the stop strings; owns the per-token output rules.
  TokenEmitter out(
      options, [&model](int32_t id) { return model.piece(id); },
      [&model](int32_t id) { return model.is_end_of_generation(id); }, on_text, r);
  Sampler sampler(options.sampler);  // validates the sampler params
  if (prompt.empty()) throw Error("generate: the prompt is empty (expected at least one token)");
  const int64_t n_vocab = model.n_vocab();
  for (int32_t id : prompt)
    if (id < 0 || id >= n_vocab)
      throw Error("generate: prompt token id " + std::to_string(id) +
                  " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
  if (static_cast<int64_t>(prompt.size()) > model.room())
    throw Error("generate: the prompt has " + std::to_string(prompt.size()) +
                " tokens but the context has room for " + std::to_string(model.room()));

  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  std::vector<float> logits(static_cast<size_t>(n_vocab));  // [n_vocab]
  std::vector<int32_t> history(prompt.begin(), prompt.end());  // what the penalties look at

  auto t0 = Clock::now();
  model.forward(prompt, logits);
  r.prompt_eval_us = micros_since(t0);
  if (options.top_logits > 0) r.last_prompt_top = top_logits(logits, options.top_logits);

  while (!out.done()) {
    if (on_logits) on_logits(logits);
    std::vector<float> lsm;
    if (options.logprobs) lsm = log_softmax(logits);  // before the sampler scrambles the row
    t0 = Clock::now();
    const int32_t tok = sampler.sample(logits, history);
    r.gen_eval_us += micros_since(t0);

    if (!out.push(tok, lsm)) break;
    history.push_back(tok);
    if (model.room() < 1) {  // context full: nothing more can be fed
      out.end("length");
      break;
    }

    t0 = Clock::now();
    model.forward(std::span<const int32_t>(&tok, 1), logits);
    r.gen_eval_us += micros_since(t0);
  }
  out.finish();
  return r;
}

}  // namespace slm
