#include "generate/contrastive.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "generate/sampler.h"

namespace slm {

void ContrastiveParams::validate() const {
  if (!(alpha >= 0.0f && alpha <= 1.0f))
    throw Error("contrastive: alpha (plausibility cutoff) must be in [0, 1], got " + std::to_string(alpha));
  if (!(beta >= 0.0f) || std::isinf(beta))
    throw Error("contrastive: beta (amateur weight) must be finite and >= 0, got " + std::to_string(beta));
}

void contrastive_logits(std::span<const float> expert, std::span<const float> amateur,
                        const ContrastiveParams& params, std::span<float> out) {
  params.validate();
  if (expert.size() != amateur.size() || out.size() != expert.size() || expert.empty())
    throw Error("contrastive: rows of different or zero sizes (expert " + std::to_string(expert.size()) +
                ", amateur " + std::to_string(amateur.size()) + ", out " + std::to_string(out.size()) + ")");
  const std::vector<float> lp_l = log_softmax(expert), lp_s = log_softmax(amateur);
  // p_L(i) >= alpha * max p_L  <=>  log p_L(i) >= max log p_L + log alpha (log 0 = -inf: all pass).
  const float cutoff = *std::max_element(lp_l.begin(), lp_l.end()) + std::log(params.alpha);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = lp_l[i] >= cutoff ? lp_l[i] - params.beta * lp_s[i] : -std::numeric_limits<float>::infinity();
}

ContrastiveDecodeModel::ContrastiveDecodeModel(DecodeModel& expert, DecodeModel& amateur,
                                               ContrastiveParams params)
    : expert_(expert), amateur_(amateur), params_(params) {
  params_.validate();
  if (expert.n_vocab() != amateur.n_vocab())
    throw Error("contrastive: the expert has " + std::to_string(expert.n_vocab()) +
                " tokens and the amateur " + std::to_string(amateur.n_vocab()) +
                " (they must share the vocabulary)");
  expert_row_.resize(static_cast<size_t>(expert.n_vocab()));
  amateur_row_.resize(static_cast<size_t>(expert.n_vocab()));
}

int64_t ContrastiveDecodeModel::room() const { return std::min(expert_.room(), amateur_.room()); }

void ContrastiveDecodeModel::forward(std::span<const int32_t> tokens, std::span<float> logits) {
  expert_.forward(tokens, expert_row_);
  amateur_.forward(tokens, amateur_row_);
  contrastive_logits(expert_row_, amateur_row_, params_, logits);
}

}  // namespace slm
