// Server metrics for `slm serve`, rendered in the Prometheus text exposition format 0.0.4
// (GET /metrics). Calls come once per request or per token, so one mutex guards everything: a
// lock costs tens of nanoseconds next to milliseconds of decoding per token.
//
// Output contract: families appear in alphabetical order of their names, each with its # HELP and
// # TYPE lines; series within a family are sorted by their label values, so two renders of the
// same state are byte-identical. A family with no series yet is left out (as the Go client does),
// except slm_uptime_seconds, which is always there.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace slm {

// Bucket upper bounds, in seconds, shared by every latency histogram:
// 0.001 ... 60, with +Inf implied.
const std::vector<double>& latency_buckets_seconds();

// Escapes a label value for the text format: backslash, double quote and newline become \\, \"
// and \n.
std::string escape_label_value(const std::string& value);

// A number as the text format writes it: shortest round-trip decimal ("0.0025", "1", "30"),
// or "+Inf", "-Inf", "NaN".
std::string format_metric_value(double v);

// A Prometheus histogram: observations counted against fixed upper bounds (v <= bound), plus
// their sum and count. Not synchronized by itself: ServerMetrics calls it under its lock.
class Histogram {
 public:
  // upper_bounds: finite and strictly increasing; +Inf is implied and must not be listed.
  // Throws std::invalid_argument otherwise.
  explicit Histogram(std::vector<double> upper_bounds);

  void observe(double v);

  const std::vector<double>& upper_bounds() const { return upper_bounds_; }
  // Cumulative counts, one per upper bound and then one for +Inf (== count()): entry i is the
  // number of observations v <= upper_bounds()[i].
  std::vector<uint64_t> cumulative_counts() const;
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> upper_bounds_;
  std::vector<uint64_t> bucket_counts_;  // (bounds + 1), per bucket, not cumulative; last is +Inf
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  // Uptime is measured with std::chrono::steady_clock from construction.
  ServerMetrics();
  // For tests: uptime comes from `seconds_since_start` instead of the clock.
  explicit ServerMetrics(std::function<double()> seconds_since_start);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // slm_requests_total{model,endpoint,status} counter and
  // slm_request_duration_seconds{endpoint} histogram.
  void request_finished(const std::string& model, const std::string& endpoint, int status,
                        double seconds);
  // slm_prompt_tokens_total{model} and slm_completion_tokens_total{model} counters.
  // Counts must be >= 0 (std::invalid_argument otherwise): a counter never goes down.
  void tokens(const std::string& model, int64_t prompt, int64_t completion);
  // Model pairs: slm_pair_tokens_total{model,member} counter, member "small" or "large".
  void tokens_by_member(const std::string& model, const std::string& member, int64_t n);
  // slm_time_to_first_token_seconds{model} histogram.
  void time_to_first_token(const std::string& model, double seconds);
  // slm_inter_token_latency_seconds{model} histogram.
  void inter_token_latency(const std::string& model, double seconds);
  // slm_queue_depth{model} gauge: requests waiting for a slot.
  void set_queue_depth(const std::string& model, int64_t n);
  // slm_active_slots{model} gauge: requests decoding now.
  void set_active_slots(const std::string& model, int64_t n);
  // slm_rejected_requests_total{model,reason} counter; reason e.g. "queue_full", "timeout",
  // "cancelled".
  void rejected(const std::string& model, const std::string& reason);

  // The whole exposition (see the output contract above), ending with a newline.
  std::string render() const;

 private:
  struct State;  // the families, behind the mutex
  std::unique_ptr<State> state_;
};

}  // namespace slm
