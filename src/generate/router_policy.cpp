#include "generate/router_policy.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace slm {

RouterPolicy::RouterPolicy(TokenRouter router, float threshold, bool weigh_by_remaining)
    : router_(std::move(router)), threshold_(threshold), weigh_(weigh_by_remaining) {
  if (!(threshold >= 0.0f && threshold <= 1.0f))
    throw Error("router threshold must be in [0, 1], got " + std::to_string(threshold));
}

bool RouterPolicy::escalate(std::span<const float> small_logits, std::span<const float> small_hidden,
                            double remaining) {
  last_p_ = router_.probability(small_logits, small_hidden);
  return (weigh_ ? last_p_ * remaining : static_cast<double>(last_p_)) >= threshold_;
}

std::string RouterPolicy::describe() const {
  char buf[48];
  std::snprintf(buf, sizeof buf, weigh_ ? "router*rem>=%.2f" : "router>=%.2f", static_cast<double>(threshold_));
  return buf;
}

}  // namespace slm
