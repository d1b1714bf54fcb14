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
  // its final hidden state (after the output norm) at the same position. True: the large model
  // produces this token.
  virtual bool escalate(std::span<const float> small_logits, std::span<const float> small_hidden) = 0;
  // For reports: "entropy>2.5", "router>0.4", ...
  virtual std::string describe() const = 0;
};

}  // namespace slm
