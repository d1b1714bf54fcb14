// When a small model generates and a large one may step in, an EscalationPolicy decides, token by
// token, whether the large model produces the next token. The uncertainty thresholds (FS-GEN:
// max probability, top-1/top-2 margin, entropy) and the trained token router (R2R) both implement
// it, so the cascade decoder (collab_models.h) runs either.
#pragma once

#include <span>
#include <string>

namespace slm {

class EscalationPolicy {
 public:
  virtual ~EscalationPolicy() = default;
  // small_logits: [n_vocab], the small model's raw logits for the next token; small_hidden: [dim],
  // its final hidden state (after the output norm) at the same position; remaining: the share of
  // the request's tokens still to come, this one included, in (0, 1] (1 when the request's length
  // is not known). True: the large model produces this token. A policy that weighs by the
  // remaining share (its own option) spends the large model early, where a divergence from the
  // large model's continuation changes more of the output.
  virtual bool escalate(std::span<const float> small_logits, std::span<const float> small_hidden,
                        double remaining) = 0;
  bool escalate(std::span<const float> small_logits, std::span<const float> small_hidden) {
    return escalate(small_logits, small_hidden, 1.0);
  }
  // For reports: "entropy>2.5", "router>0.4", ...
  virtual std::string describe() const = 0;
};

}  // namespace slm
