#include "generate/token_emitter.h"

#include <utility>

#include "core/error.h"

namespace slm {

TokenEmitter::TokenEmitter(const GenerateOptions& options, PieceFn piece, EogFn is_eog,
                           const TextCallback& on_text, GenerateResult& result)
    : options_(options),
      piece_(std::move(piece)),
      is_eog_(std::move(is_eog)),
      on_text_(on_text),
      result_(result),
      stop_(options.stop) {  // validates the stop strings
  if (options.max_tokens < 0)
    throw Error("generate: max_tokens must be >= 0, got " + std::to_string(options.max_tokens));
  if (options.top_logits < 0)
    throw Error("generate: top_logits must be >= 0, got " + std::to_string(options.top_logits));
  if (options.max_tokens == 0) result_.stop_reason = "length";
}

bool TokenEmitter::emit(const std::string& piece) {
  if (piece.empty()) return true;
  result_.text += piece;
  return on_text_ ? on_text_(piece) : true;
}

bool TokenEmitter::push(int32_t id, std::span<const float> raw_log_probs) {
  if (done()) throw Error("TokenEmitter::push after the run ended (" + result_.stop_reason + ")");
  ++pushed_;
  if (options_.stop_at_eog && is_eog_(id)) {
    result_.stop_reason = "eog";
    return false;
  }
  result_.tokens.push_back(id);
  if (options_.logprobs) {
    if (id < 0 || static_cast<size_t>(id) >= raw_log_probs.size())
      throw Error("TokenEmitter: logprobs asked but the log-probability row (" +
                  std::to_string(raw_log_probs.size()) + " values) does not hold token " +
                  std::to_string(id));
    result_.logprobs.push_back({id, raw_log_probs[id], top_logits(raw_log_probs, options_.top_logits)});
  }
  const StopMatcher::Result s = stop_.push(utf8_.push(piece_(id)));
  if (!emit(s.text)) result_.stop_reason = "cancelled";
  else if (s.stopped) result_.stop_reason = "stop";
  else if (static_cast<int64_t>(result_.tokens.size()) >= options_.max_tokens) result_.stop_reason = "length";
  return !done();
}

void TokenEmitter::end(const std::string& reason) {
  if (!done()) result_.stop_reason = reason;
}

void TokenEmitter::finish() {
  if (result_.stop_reason == "stop" || result_.stop_reason == "cancelled") return;
  // Release what was held back: an incomplete character (as U+FFFD) and a partial stop string.
  const StopMatcher::Result s = stop_.push(utf8_.flush());
  emit(s.text);
  if (s.stopped) result_.stop_reason = "stop";
  else emit(stop_.flush());
}

}  // namespace slm
