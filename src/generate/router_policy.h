// The trained token router (R2R, model/token_router.h) as an EscalationPolicy: the large model
// produces a token when the router's probability that the small model would diverge is at least
// the threshold. The cascade decoder runs it like any other policy.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "generate/escalation.h"
#include "model/token_router.h"

namespace slm {

class RouterPolicy : public EscalationPolicy {
 public:
  // threshold in [0, 1] (0: always escalate; above 1 is refused as it would never). Throws
  // slm::Error otherwise. Weighed by the remaining share r of the request: p * r >= threshold.
  RouterPolicy(TokenRouter router, float threshold, bool weigh_by_remaining = false);

  // Checks the sizes against the small model the router was trained for (slm::Error otherwise).
  using EscalationPolicy::escalate;
  bool escalate(std::span<const float> small_logits, std::span<const float> small_hidden,
                double remaining) override;
  std::string describe() const override;  // "router>=0.50", weighed "router*rem>=0.50"

  const TokenRouter& router() const { return router_; }
  float threshold() const { return threshold_; }
  float last_probability() const { return last_p_; }  // of the latest escalate() call

 private:
  TokenRouter router_;
  float threshold_;
  bool weigh_;
  float last_p_ = 0.0f;
};

}  // namespace slm
