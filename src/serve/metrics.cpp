#include "serve/metrics.h"

#include <chrono>
#include <charconv>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace slm {

const std::vector<double>& latency_buckets_seconds() {
  static const std::vector<double> bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    30,   60};
  return bounds;
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  if (ec != std::errc()) throw std::logic_error("format_metric_value: to_chars failed");
  return std::string(buf, end);
}

Histogram::Histogram(std::vector<double> upper_bounds) : upper_bounds_(std::move(upper_bounds)) {
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    if (!std::isfinite(upper_bounds_[i]))
      throw std::invalid_argument("Histogram: upper bound " + std::to_string(i) +
                                  " is not finite (+Inf is implied)");
    if (i > 0 && !(upper_bounds_[i] > upper_bounds_[i - 1]))
      throw std::invalid_argument("Histogram: upper bounds must increase strictly, but bound " +
                                  std::to_string(i) + " = " + format_metric_value(upper_bounds_[i]) +
                                  " follows " + format_metric_value(upper_bounds_[i - 1]));
  }
  bucket_counts_.assign(upper_bounds_.size() + 1, 0);
}

void Histogram::observe(double v) {
  size_t bucket = 0;  // first bound with v <= bound; NaN and v > last bound land in +Inf
  while (bucket < upper_bounds_.size() && !(v <= upper_bounds_[bucket])) ++bucket;
  ++bucket_counts_[bucket];
  sum_ += v;
  ++count_;
}

std::vector<uint64_t> Histogram::cumulative_counts() const {
  std::vector<uint64_t> out(bucket_counts_.size());
  uint64_t running = 0;
  for (size_t i = 0; i < bucket_counts_.size(); ++i) out[i] = running += bucket_counts_[i];
  return out;
}

namespace {

using LabelValues = std::vector<std::string>;

// One metric family: its series keyed by label values (in label_names order), so std::map
// iteration gives the sorted output order.
template <typename Value>
struct Family {
  std::string name;
  std::string help;
  std::vector<std::string> label_names;
  std::map<LabelValues, Value> series;
};

// `{a="x",b="y"}`, with an optional trailing `le` label; empty when there are no labels at all.
std::string label_set(const std::vector<std::string>& names, const LabelValues& values,
                      const std::string* le = nullptr) {
  if (names.empty() && le == nullptr) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i] + "=\"" + escape_label_value(values[i]) + '"';
  }
  if (le != nullptr) {
    if (!names.empty()) out += ',';
    out += "le=\"" + *le + '"';
  }
  return out + '}';
}

std::string header(const std::string& name, const std::string& help, const char* type) {
  return "# HELP " + name + ' ' + help + "\n# TYPE " + name + ' ' + type + '\n';
}

std::string render_scalar_family(const Family<int64_t>& f, const char* type) {
  std::string out = header(f.name, f.help, type);
  for (const auto& [labels, value] : f.series)
    out += f.name + label_set(f.label_names, labels) + ' ' + std::to_string(value) + '\n';
  return out;
}

std::string render_histogram_family(const Family<Histogram>& f) {
  std::string out = header(f.name, f.help, "histogram");
  for (const auto& [labels, h] : f.series) {
    const std::vector<uint64_t> cumulative = h.cumulative_counts();
    for (size_t i = 0; i < cumulative.size(); ++i) {
      const std::string le = i < h.upper_bounds().size()
                                 ? format_metric_value(h.upper_bounds()[i])
                                 : std::string("+Inf");
      out += f.name + "_bucket" + label_set(f.label_names, labels, &le) + ' ' +
             std::to_string(cumulative[i]) + '\n';
    }
    out += f.name + "_sum" + label_set(f.label_names, labels) + ' ' +
           format_metric_value(h.sum()) + '\n';
    out += f.name + "_count" + label_set(f.label_names, labels) + ' ' + std::to_string(h.count()) +
           '\n';
  }
  return out;
}

void check_non_negative(const char* what, int64_t n) {
  if (n < 0)
    throw std::invalid_argument(std::string("ServerMetrics: ") + what + " must be >= 0, got " +
                                std::to_string(n));
}

Histogram& histogram_series(Family<Histogram>& f, LabelValues labels) {
  return f.series.try_emplace(std::move(labels), latency_buckets_seconds()).first->second;
}

}  // namespace

struct ServerMetrics::State {
  std::function<double()> seconds_since_start;
  mutable std::mutex mutex;

  Family<int64_t> requests{"slm_requests_total",
                           "Requests finished, by model, endpoint and HTTP status.",
                           {"model", "endpoint", "status"}, {}};
  Family<Histogram> request_duration{"slm_request_duration_seconds",
                                     "Time from receiving a request to sending its last byte.",
                                     {"endpoint"}, {}};
  Family<int64_t> prompt_tokens{"slm_prompt_tokens_total", "Prompt tokens processed.", {"model"},
                                {}};
  Family<int64_t> completion_tokens{"slm_completion_tokens_total", "Completion tokens generated.",
                                    {"model"}, {}};
  Family<int64_t> pair_tokens{"slm_pair_tokens_total",
                              "Tokens emitted by each member of a model pair.",
                              {"model", "member"}, {}};
  Family<Histogram> time_to_first_token{"slm_time_to_first_token_seconds",
                                        "Time from receiving a request to its first token.",
                                        {"model"}, {}};
  Family<Histogram> inter_token_latency{"slm_inter_token_latency_seconds",
                                        "Time between consecutive tokens of one response.",
                                        {"model"}, {}};
  Family<int64_t> queue_depth{"slm_queue_depth", "Requests waiting for a decoding slot.",
                              {"model"}, {}};
  Family<int64_t> active_slots{"slm_active_slots", "Requests decoding now.", {"model"}, {}};
  Family<int64_t> rejected{"slm_rejected_requests_total",
                           "Requests refused or abandoned, by reason.", {"model", "reason"}, {}};
};

ServerMetrics::ServerMetrics()
    : ServerMetrics([start = std::chrono::steady_clock::now()] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }) {}

ServerMetrics::ServerMetrics(std::function<double()> seconds_since_start)
    : state_(std::make_unique<State>()) {
  state_->seconds_since_start = std::move(seconds_since_start);
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::request_finished(const std::string& model, const std::string& endpoint,
                                     int status, double seconds) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  ++state_->requests.series[{model, endpoint, std::to_string(status)}];
  histogram_series(state_->request_duration, {endpoint}).observe(seconds);
}

void ServerMetrics::tokens(const std::string& model, int64_t prompt, int64_t completion) {
  check_non_negative("prompt tokens", prompt);
  check_non_negative("completion tokens", completion);
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->prompt_tokens.series[{model}] += prompt;
  state_->completion_tokens.series[{model}] += completion;
}

void ServerMetrics::tokens_by_member(const std::string& model, const std::string& member,
                                     int64_t n) {
  check_non_negative("member tokens", n);
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->pair_tokens.series[{model, member}] += n;
}

void ServerMetrics::time_to_first_token(const std::string& model, double seconds) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  histogram_series(state_->time_to_first_token, {model}).observe(seconds);
}

void ServerMetrics::inter_token_latency(const std::string& model, double seconds) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  histogram_series(state_->inter_token_latency, {model}).observe(seconds);
}

void ServerMetrics::set_queue_depth(const std::string& model, int64_t n) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->queue_depth.series[{model}] = n;
}

void ServerMetrics::set_active_slots(const std::string& model, int64_t n) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->active_slots.series[{model}] = n;
}

void ServerMetrics::rejected(const std::string& model, const std::string& reason) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  ++state_->rejected.series[{model, reason}];
}

std::string ServerMetrics::render() const {
  std::map<std::string, std::string> by_name;  // family name -> its text, for alphabetical order
  std::lock_guard<std::mutex> lock(state_->mutex);
  const State& s = *state_;
  for (const Family<int64_t>* f : {&s.requests, &s.prompt_tokens, &s.completion_tokens,
                                   &s.pair_tokens, &s.rejected})
    if (!f->series.empty()) by_name[f->name] = render_scalar_family(*f, "counter");
  for (const Family<int64_t>* f : {&s.queue_depth, &s.active_slots})
    if (!f->series.empty()) by_name[f->name] = render_scalar_family(*f, "gauge");
  for (const Family<Histogram>* f :
       {&s.request_duration, &s.time_to_first_token, &s.inter_token_latency})
    if (!f->series.empty()) by_name[f->name] = render_histogram_family(*f);
  by_name["slm_uptime_seconds"] =
      header("slm_uptime_seconds", "Seconds since the server started.", "gauge") +
      "slm_uptime_seconds " + format_metric_value(s.seconds_since_start()) + '\n';

  std::string out;
  for (const auto& [name, text] : by_name) out += text;
  return out;
}

}  // namespace slm
