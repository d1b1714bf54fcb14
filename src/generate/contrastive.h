// Contrastive decoding (Li et al. 2023, "Contrastive Decoding: Open-ended Text Generation as
// Optimization"): prefer tokens the large (expert) model likes more than the small (amateur) one,
// among the tokens the expert finds plausible.
//
// Both models are fed every token. For the next-token distributions p_L (expert) and p_S (amateur):
//   logits_i = log p_L(i) - beta * log p_S(i)   if p_L(i) >= alpha * max_j p_L(j)
//            = -inf                              otherwise (implausible under the expert)
// alpha in [0, 1] (0: every token plausible; 1: only the expert's arg max, plus exact ties), beta
// >= 0 (0: the expert alone, its log-softmax). The arg max of the expert is always plausible, so
// at least one logit is finite. Greedy decoding of this row is the paper's search objective for
// one step; sampling it (temperature > 0) is allowed too.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "generate/decode_model.h"

namespace slm {

struct ContrastiveParams {
  float alpha = 0.1f;  // plausibility cutoff, [0, 1]
  float beta = 1.0f;   // weight of the amateur, >= 0
  void validate() const;  // throws slm::Error naming the field and the range
};

// The contrastive row from the two raw logits rows (both [n_vocab]) into out [n_vocab].
void contrastive_logits(std::span<const float> expert, std::span<const float> amateur,
                        const ContrastiveParams& params, std::span<float> out);

// Both models must outlive the object and share the vocabulary (the caller checks it with
// check_shared_vocab; here only n_vocab is compared). piece/EOG come from the expert.
class ContrastiveDecodeModel : public DecodeModel {
 public:
  ContrastiveDecodeModel(DecodeModel& expert, DecodeModel& amateur, ContrastiveParams params = {});
  int64_t n_vocab() const override { return expert_.n_vocab(); }
  int64_t room() const override;
  void forward(std::span<const int32_t> tokens, std::span<float> logits) override;
  std::string piece(int32_t id) const override { return expert_.piece(id); }
  bool is_end_of_generation(int32_t id) const override { return expert_.is_end_of_generation(id); }

 private:
  DecodeModel& expert_;
  DecodeModel& amateur_;
  ContrastiveParams params_;
  std::vector<float> expert_row_, amateur_row_;  // [n_vocab] each
};

}  // namespace slm
