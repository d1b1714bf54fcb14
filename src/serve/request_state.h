// What a request being served shares between the HTTP handler that waits for it and the engine
// thread that generates it: output produced so far, the finish, cancellation by either side.
// The engine appends; the handler takes what is new (wait) and writes it to the client.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "generate/generator.h"

namespace slm {

using Clock = std::chrono::steady_clock;

// Tokens of a request: prompt, generated, and for a pair of models who produced them.
struct TokenCounts {
  int64_t prompt = 0;
  int64_t completion = 0;
  int64_t small = 0;  // pairs only: tokens decided by the small model
  int64_t large = 0;  // pairs only: tokens decided by the large model
  int64_t cached = 0; // prompt tokens whose keys/values came from a slot's earlier sequence
};

class RequestState {
 public:
  // The output produced since the previous wait().
  struct Update {
    std::string text;
    std::vector<TokenLogprob> logprobs;
    int64_t new_tokens = 0;
    bool finished = false;
  };

  // Blocks until there is new output or the request finished, or until `until`. Moves the new
  // output into u (appending); returns whether anything new (or the finish) arrived.
  bool wait(Update& u, Clock::time_point until);
  // Blocks until the request finished.
  void wait_finished();

  // The consumer is gone (client disconnected) or the server is stopping: the engine stops the
  // generation at its next step and frees the slot.
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  // Engine side.
  void emit(std::string_view text, const TokenLogprob* logprob, int64_t new_tokens);
  // Ends the request: finish_reason "stop" | "length" | "cancelled" | "time_limit", or an error
  // (status >= 400 with a message) when it failed.
  void finish(const std::string& finish_reason, const TokenCounts& counts,
              std::vector<float> embedding = {});
  void fail(int status, const std::string& message);

  // Valid once finished.
  bool finished() const;
  std::string finish_reason() const;
  TokenCounts counts() const;
  int error_status() const;          // 0: no error
  std::string error_message() const;
  std::vector<float> embedding() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  std::vector<TokenLogprob> logprobs_;
  int64_t new_tokens_ = 0;
  bool finished_ = false;
  std::string finish_reason_;
  TokenCounts counts_;
  int error_status_ = 0;
  std::string error_message_;
  std::vector<float> embedding_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace slm
