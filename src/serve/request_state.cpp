#include "serve/request_state.h"

namespace slm {

bool RequestState::wait(Update& u, Clock::time_point until) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, until, [&] { return finished_ || !text_.empty() || new_tokens_ > 0; });
  const bool any = finished_ || !text_.empty() || new_tokens_ > 0;
  u.text += text_;
  text_.clear();
  for (TokenLogprob& lp : logprobs_) u.logprobs.push_back(std::move(lp));
  logprobs_.clear();
  u.new_tokens += new_tokens_;
  new_tokens_ = 0;
  u.finished = finished_;
  return any;
}

void RequestState::wait_finished() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return finished_; });
}

void RequestState::emit(std::string_view text, const TokenLogprob* logprob, int64_t new_tokens) {
  {
    std::lock_guard lock(mu_);
    text_ += text;
    if (logprob) logprobs_.push_back(*logprob);
    new_tokens_ += new_tokens;
  }
  cv_.notify_all();
}

void RequestState::finish(const std::string& finish_reason, const TokenCounts& counts,
                          std::vector<float> embedding) {
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    finished_ = true;
    finish_reason_ = finish_reason;
    counts_ = counts;
    embedding_ = std::move(embedding);
  }
  cv_.notify_all();
}

void RequestState::fail(int status, const std::string& message) {
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    finished_ = true;
    finish_reason_ = "error";
    error_status_ = status;
    error_message_ = message;
  }
  cv_.notify_all();
}

bool RequestState::finished() const { std::lock_guard lock(mu_); return finished_; }
std::string RequestState::finish_reason() const { std::lock_guard lock(mu_); return finish_reason_; }
TokenCounts RequestState::counts() const { std::lock_guard lock(mu_); return counts_; }
int RequestState::error_status() const { std::lock_guard lock(mu_); return error_status_; }
std::string RequestState::error_message() const { std::lock_guard lock(mu_); return error_message_; }
std::vector<float> RequestState::embedding() const { std::lock_guard lock(mu_); return embedding_; }

}  // namespace slm
