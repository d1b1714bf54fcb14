// Token-level cascade (FS-GEN): the small model decodes every token; where an EscalationPolicy
// says so, the large model produces that token's logits instead.
//
// CascadeDecodeModel is a DecodeModel, so the unchanged generate() loop (sampling, stop strings,
// EOG, streaming) runs it. Contract of forward(tokens, logits):
//   - the small model is fed `tokens` and gives its logits and final hidden state for the last one;
//   - the policy sees those and decides;
//   - the large model is NOT fed token by token: the tokens it has not seen yet are kept pending
//     and fed in one batched forward call only when the policy escalates, so the large model's
//     cost is paid only where it decides (and a batch of k positions costs much less than k calls);
//   - `logits` = the large model's logits for the same history when escalated, the small
//     model's otherwise.
// After a run the large cache may lag behind the small one by pending() tokens; sync() feeds them.
// Both Transformers, caches and the policy must outlive the object. The two models must share the
// vocabulary (the caller checks it with check_shared_vocab; here only n_vocab is compared).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "generate/decode_model.h"
#include "generate/escalation.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace slm {

struct CascadeStats {
  int64_t decided = 0;        // forward calls = tokens whose logits this model produced
  int64_t decided_large = 0;  // of which by the large model (escalations)
  int64_t large_calls = 0;    // large model forward calls (== decided_large, plus sync() calls)
  int64_t large_fed = 0;      // positions fed to the large model
  // decided_large / decided (0 when nothing was decided).
  double large_share() const { return decided > 0 ? static_cast<double>(decided_large) / decided : 0.0; }
};

class CascadeDecodeModel : public DecodeModel {
 public:
  // Throws slm::Error if the vocabularies differ in size or the caches hold different numbers of
  // positions (they must describe the same history).
  CascadeDecodeModel(Transformer& small, KvCache& small_kv, Transformer& large, KvCache& large_kv,
                     EscalationPolicy& policy);

  int64_t n_vocab() const override;
  // The smaller of both models' rooms (the large one's counts its pending tokens as used).
  int64_t room() const override;
  void forward(std::span<const int32_t> tokens, std::span<float> logits) override;
  std::string piece(int32_t id) const override;
  bool is_end_of_generation(int32_t id) const override;

  // The request's length in tokens (its max_tokens): each decision then tells the policy the share
  // of the request still to come ((horizon - decided before it) / horizon). 0 (the default): not
  // known, the policy is told 1.
  void set_horizon(int64_t max_tokens) { horizon_ = max_tokens; }

  const CascadeStats& stats() const { return stats_; }
  // Whether the last forward() call was decided by the large model.
  bool last_escalated() const { return last_escalated_; }
  // Tokens fed to the small model but not yet to the large one.
  int64_t pending() const { return static_cast<int64_t>(pending_.size()); }
  // Feeds the pending tokens to the large model (to continue with it alone, for instance).
  void sync();

 private:
  Transformer& small_;
  KvCache& small_kv_;
  Transformer& large_;
  KvCache& large_kv_;
  EscalationPolicy& policy_;
  std::vector<int32_t> pending_;  // tokens the large model has not seen, oldest first
  std::vector<float> scratch_;    // [n_vocab] large logits thrown away by sync()
  CascadeStats stats_;
  int64_t horizon_ = 0;
  bool last_escalated_ = false;
};

}  // namespace slm
