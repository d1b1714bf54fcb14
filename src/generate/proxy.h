// Proxy tuning (Liu et al. 2024, "Tuning Language Models by Proxy"): steer a large base model with
// the difference a fine-tuning made to a small model, without touching the large model's weights.
//
// The three models are fed every token. With log-softmax of each raw logits row:
//   logits = lsm(large) + alpha * (lsm(tuned small) - lsm(base small))
// Using log-softmax instead of the raw logits of the paper changes each row only by a constant,
// which softmax removes: the sampled distribution is the same, and the row is comparable across
// steps. alpha (>= 0, default 1) scales the steering; 0 gives the large model alone.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "generate/decode_model.h"

namespace slm {

// The proxy row from three raw logits rows (all [n_vocab]) into out [n_vocab]. Throws
// slm::Error on size mismatch or a negative / non-finite alpha.
void proxy_logits(std::span<const float> large, std::span<const float> tuned,
                  std::span<const float> base, float alpha, std::span<float> out);

// The models must outlive the object and share the vocabulary (the caller checks it with
// check_shared_vocab; here only n_vocab is compared). piece/EOG come from the large model.
class ProxyDecodeModel : public DecodeModel {
 public:
  ProxyDecodeModel(DecodeModel& large, DecodeModel& tuned_small, DecodeModel& base_small, float alpha = 1.0f);
  int64_t n_vocab() const override { return large_.n_vocab(); }
  int64_t room() const override;
  void forward(std::span<const int32_t> tokens, std::span<float> logits) override;
  std::string piece(int32_t id) const override { return large_.piece(id); }
  bool is_end_of_generation(int32_t id) const override { return large_.is_end_of_generation(id); }

 private:
  DecodeModel& large_;
  DecodeModel& tuned_;
  DecodeModel& base_;
  float alpha_;
  std::vector<float> large_row_, tuned_row_, base_row_;  // [n_vocab] each
};

}  // namespace slm
