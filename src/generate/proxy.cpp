#include "generate/proxy.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "generate/sampler.h"

namespace slm {
namespace {

void check_alpha(float alpha) {
  if (!(alpha >= 0.0f) || std::isinf(alpha))
    throw Error("proxy tuning: alpha must be finite and >= 0, got " + std::to_string(alpha));
}

}  // namespace

void proxy_logits(std::span<const float> large, std::span<const float> tuned,
                  std::span<const float> base, float alpha, std::span<float> out) {
  check_alpha(alpha);
  if (large.empty() || tuned.size() != large.size() || base.size() != large.size() ||
      out.size() != large.size())
    throw Error("proxy tuning: rows of different or zero sizes (large " + std::to_string(large.size()) +
                ", tuned " + std::to_string(tuned.size()) + ", base " + std::to_string(base.size()) +
                ", out " + std::to_string(out.size()) + ")");
  const std::vector<float> l = log_softmax(large), t = log_softmax(tuned), b = log_softmax(base);
  for (size_t i = 0; i < out.size(); ++i) out[i] = l[i] + alpha * (t[i] - b[i]);
}

ProxyDecodeModel::ProxyDecodeModel(DecodeModel& large, DecodeModel& tuned_small,
                                   DecodeModel& base_small, float alpha)
    : large_(large), tuned_(tuned_small), base_(base_small), alpha_(alpha) {
  check_alpha(alpha);
  if (tuned_small.n_vocab() != large.n_vocab() || base_small.n_vocab() != large.n_vocab())
    throw Error("proxy tuning: the models have " + std::to_string(large.n_vocab()) + " (large), " +
                std::to_string(tuned_small.n_vocab()) + " (tuned) and " +
                std::to_string(base_small.n_vocab()) + " (base) tokens (they must share the vocabulary)");
  for (auto* row : {&large_row_, &tuned_row_, &base_row_}) row->resize(static_cast<size_t>(large.n_vocab()));
}

int64_t ProxyDecodeModel::room() const { return std::min({large_.room(), tuned_.room(), base_.room()}); }

void ProxyDecodeModel::forward(std::span<const int32_t> tokens, std::span<float> logits) {
  large_.forward(tokens, large_row_);
  tuned_.forward(tokens, tuned_row_);
  base_.forward(tokens, base_row_);
  proxy_logits(large_row_, tuned_row_, base_row_, alpha_, logits);
}

}  // namespace slm
