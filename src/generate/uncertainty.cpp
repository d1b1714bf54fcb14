#include "generate/uncertainty.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace slm {

UncertaintyMetric parse_uncertainty_metric(std::string_view name) {
  if (name == "maxprob") return UncertaintyMetric::kMaxProb;
  if (name == "margin") return UncertaintyMetric::kMargin;
  if (name == "entropy") return UncertaintyMetric::kEntropy;
  throw Error("unknown uncertainty metric '" + std::string(name) +
              "' (expected maxprob, margin or entropy)");
}

const char* uncertainty_metric_name(UncertaintyMetric m) {
  switch (m) {
    case UncertaintyMetric::kMaxProb: return "maxprob";
    case UncertaintyMetric::kMargin: return "margin";
    case UncertaintyMetric::kEntropy: return "entropy";
  }
  return "?";
}

double TokenUncertainty::get(UncertaintyMetric m) const {
  switch (m) {
    case UncertaintyMetric::kMaxProb: return max_prob;
    case UncertaintyMetric::kMargin: return margin;
    case UncertaintyMetric::kEntropy: return entropy;
  }
  return 0.0;
}

TokenUncertainty token_uncertainty(std::span<const float> logits) {
  if (logits.empty()) throw Error("uncertainty: the logits row is empty");
  // Max and second max of the logits: the two largest probabilities belong to them.
  double m1 = -std::numeric_limits<double>::infinity(), m2 = m1;
  for (float v : logits) {
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity())
      throw Error("uncertainty: the logits row holds NaN or +inf");
    if (v > m1) {
      m2 = m1;
      m1 = v;
    } else if (v > m2) {
      m2 = v;
    }
  }
  if (std::isinf(m1)) throw Error("uncertainty: every logit of the row is -inf");
  // With z = sum exp(l - m1): p_i = exp(l_i - m1) / z and
  // H = -sum p_i (l_i - m1 - ln z) = ln z - sum exp(l_i - m1) (l_i - m1) / z.
  double z = 0.0, s = 0.0;
  for (float v : logits) {
    if (std::isinf(v)) continue;  // -inf: probability 0, contributes nothing (0 ln 0 = 0)
    const double d = v - m1, e = std::exp(d);
    z += e;
    s += e * d;
  }
  TokenUncertainty u;
  u.max_prob = 1.0 / z;
  u.margin = std::isinf(m2) ? u.max_prob : (1.0 - std::exp(m2 - m1)) / z;
  u.entropy = std::max(0.0, std::log(z) - s / z);
  return u;
}

bool crosses_threshold(UncertaintyMetric m, double value, double threshold) {
  return m == UncertaintyMetric::kEntropy ? value > threshold : value < threshold;
}

bool UncertaintyPolicy::escalate(std::span<const float> small_logits, std::span<const float>, double remaining) {
  const double v = token_uncertainty(small_logits).get(metric_);
  if (!weigh_) return crosses_threshold(metric_, v, threshold_);
  if (metric_ == UncertaintyMetric::kEntropy) return v * remaining > threshold_;
  return (1.0 - v) * remaining > 1.0 - threshold_;
}

std::string UncertaintyPolicy::describe() const {
  std::ostringstream os;
  const bool entropy = metric_ == UncertaintyMetric::kEntropy;
  if (!weigh_) {
    os << uncertainty_metric_name(metric_) << (entropy ? ">" : "<") << threshold_;
  } else if (entropy) {
    os << "entropy*rem>" << threshold_;
  } else {
    os << "(1-" << uncertainty_metric_name(metric_) << ")*rem>" << 1.0 - threshold_;
  }
  return os.str();
}

}  // namespace slm
