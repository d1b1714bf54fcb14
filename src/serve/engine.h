// What the HTTP layer needs from whatever generates for one served model name: a single model
// with continuous batching (BatchEngine) or a small + large pair (PairEngine).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "generate/generator.h"
#include "model/model.h"
#include "serve/request_state.h"

namespace slm {

// One request as the engine runs it; the handler has tokenized and validated it.
struct GenerationJob {
  std::vector<int32_t> prompt;   // non-empty, shorter than the context
  GenerateOptions options;       // max_tokens, sampler (seeded), stop, stop_at_eog, logprobs, top_logits
  Clock::time_point submitted = Clock::now();
  Clock::time_point deadline = Clock::time_point::max();
  bool embedding = false;        // no generation: mean of the final hidden states, L2-normalised
};

// Thrown by submit() when the request cannot be queued (maps to HTTP 429 or 503).
struct EngineBusy {
  int status;                    // 429: queue full; 503: shutting down
  std::string message;
  int retry_after_s = 1;
};

struct EngineLoad {
  int64_t queued = 0;
  int64_t active = 0;
  int64_t slots = 0;
};

// The checks every engine's submit() makes before queueing: a non-empty prompt that leaves room
// for at least one generated token. Returns a state already failed with a 400, or nullptr.
inline std::shared_ptr<RequestState> refuse_prompt(const GenerationJob& job, int64_t context) {
  std::string why;
  if (job.prompt.empty()) why = "the prompt is empty";
  else if (static_cast<int64_t>(job.prompt.size()) >= context)
    why = "the prompt has " + std::to_string(job.prompt.size()) + " tokens; the context holds " +
          std::to_string(context) + " positions per request, prompt and completion together";
  if (why.empty()) return nullptr;
  auto state = std::make_shared<RequestState>();
  state->fail(400, why);
  return state;
}

class Engine {
 public:
  virtual ~Engine() = default;
  // Queues a job; throws EngineBusy. The returned state receives the output.
  virtual std::shared_ptr<RequestState> submit(GenerationJob job) = 0;
  // Stops taking jobs; lets running ones go on for up to `grace`, then cancels them (and fails
  // queued ones with 503); joins the worker threads. Idempotent.
  virtual void shutdown(std::chrono::milliseconds grace) = 0;
  virtual EngineLoad load() const = 0;
  // The model whose tokenizer and context apply to requests (a pair's large model).
  virtual const Model& model() const = 0;
  // Positions one request may use (prompt + generated).
  virtual int64_t context() const = 0;
  virtual bool supports_embeddings() const = 0;
  // "single" or the pair strategy.
  virtual std::string kind() const = 0;
};

}  // namespace slm
