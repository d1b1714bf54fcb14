// The output side of a decode loop, shared by generate() and the collaboration decoders: each
// sampled token goes through push(), which applies the rules of generator.h in one place:
// - an end-of-generation token (when stop_at_eog) ends the run with "eog"; it is neither emitted
//   nor added to tokens;
// - otherwise the token is appended to result.tokens (and its logprob entry, when asked), its
//   bytes go through Utf8Stream then StopMatcher, and the released text is streamed to on_text;
// - a completed stop string ends the run with "stop", on_text returning false with "cancelled",
//   reaching max_tokens with "length" (checked in that order);
// - finish() releases what was held back (an incomplete character as U+FFFD, a partial stop
//   string) unless the run ended with "stop" or "cancelled".
// The decoder keeps what only it knows: when the context is full it calls end("length").
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "generate/generator.h"
#include "generate/stop_matcher.h"
#include "generate/utf8_stream.h"

namespace slm {

class TokenEmitter {
 public:
  using PieceFn = std::function<std::string(int32_t id)>;  // the bytes of a token
  using EogFn = std::function<bool(int32_t id)>;           // is it an end-of-generation token

  // Validates options.max_tokens, options.top_logits and the stop strings (throws slm::Error).
  // result receives tokens, text, logprobs and stop_reason; it, the options and the callbacks must
  // outlive the emitter. max_tokens == 0 ends the run ("length") before any push.
  TokenEmitter(const GenerateOptions& options, PieceFn piece, EogFn is_eog,
               const TextCallback& on_text, GenerateResult& result);

  // Handles one sampled token. raw_log_probs: log_softmax of the raw logits row it was drawn
  // from ([n_vocab]), required when options.logprobs, else ignored. Returns !done(). Must not be
  // called once done().
  bool push(int32_t id, std::span<const float> raw_log_probs = {});

  // Ends the run for a reason the decoder knows (e.g. "length" when the context is full).
  void end(const std::string& reason);

  bool done() const { return !result_.stop_reason.empty(); }
  // Tokens accepted by push() so far, the end-of-generation token included if it ended the run:
  // what the model has to have seen (all but the last) for the cache contract of generator.h.
  int64_t pushed() const { return pushed_; }

  // Releases held-back text (see the header comment). Call once, after the loop.
  void finish();

 private:
  bool emit(const std::string& piece);

  const GenerateOptions& options_;
  PieceFn piece_;
  EogFn is_eog_;
  const TextCallback& on_text_;
  GenerateResult& result_;
  StopMatcher stop_;
  Utf8Stream utf8_;
  int64_t pushed_ = 0;
};

}  // namespace slm
