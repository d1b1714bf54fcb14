// Per-token uncertainty of a logits row, and the escalation policy built on it (FS-GEN: the small
// model decodes and the large model steps in where the small one is unsure).
//
// For one row of raw logits [n_vocab], with p = softmax(logits) (computed in double, -inf logits
// count as probability 0):
//   maxprob  = max_i p_i                      in [1/n, 1]; low means unsure
//   margin   = p_(1) - p_(2), top-1 minus top-2 in [0, 1];  low means unsure
//   entropy  = -sum_i p_i ln p_i, in nats      in [0, ln n]; high means unsure
// UncertaintyPolicy escalates when maxprob < t, margin < t, or entropy > t (strictly), so a
// threshold outside the metric's range always or never escalates (maxprob < 2: always; entropy >
// -1: always; entropy > 1e9: never). Weighed by the remaining share r of the request (option):
// entropy * r > t, (1 - maxprob) * r > 1 - t, (1 - margin) * r > 1 - t (the same rules at r = 1;
// the bar rises towards the end of the request).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "generate/escalation.h"

namespace slm {

enum class UncertaintyMetric { kMaxProb, kMargin, kEntropy };

// "maxprob" | "margin" | "entropy"; throws slm::Error listing the accepted names otherwise.
UncertaintyMetric parse_uncertainty_metric(std::string_view name);
const char* uncertainty_metric_name(UncertaintyMetric m);

struct TokenUncertainty {
  double max_prob = 0.0;  // largest probability
  double margin = 0.0;    // largest minus second largest probability (second = 0 if none)
  double entropy = 0.0;   // nats
  double get(UncertaintyMetric m) const;
};

// All three measures of one row, in one pass plus one exp per logit. Throws slm::Error for an
// empty row, a NaN or +inf logit, or a row whose logits are all -inf.
TokenUncertainty token_uncertainty(std::span<const float> logits);

// True when `value` of metric m is on the unsure side of threshold (see the file comment).
bool crosses_threshold(UncertaintyMetric m, double value, double threshold);

class UncertaintyPolicy : public EscalationPolicy {
 public:
  UncertaintyPolicy(UncertaintyMetric metric, double threshold, bool weigh_by_remaining = false)
      : metric_(metric), threshold_(threshold), weigh_(weigh_by_remaining) {}
  using EscalationPolicy::escalate;
  bool escalate(std::span<const float> small_logits, std::span<const float> small_hidden,
                double remaining) override;
  // "entropy>2", "maxprob<0.5", "margin<0.1"; weighed: "entropy*rem>2", "(1-maxprob)*rem>0.5"
  std::string describe() const override;
  UncertaintyMetric metric() const { return metric_; }
  double threshold() const { return threshold_; }

 private:
  UncertaintyMetric metric_;
  double threshold_;
  bool weigh_;
};

}  // namespace slm
