#include "train/adamw.h"

#include <cmath>

#include "core/ops_backward.h"

namespace slm {

AdamW::AdamW(const ParamLayout& layout, AdamWParams hp) : hp_(hp) {
  m_.assign(static_cast<size_t>(layout.total()), 0.0f);
  v_.assign(static_cast<size_t>(layout.total()), 0.0f);
  for (const ParamTensor& t : layout.tensors()) {
    const bool decay = t.is_matrix && (!t.is_embedding || hp_.decay_embeddings);
    ranges_.push_back({t.offset, t.offset + t.size, decay});
  }
}

void AdamW::update(ThreadPool& pool, std::vector<float>& params, const std::vector<float>& grads,
                   float lr) {
  ++step_;
  const double bc1 = 1.0 - std::pow(static_cast<double>(hp_.beta1), static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(static_cast<double>(hp_.beta2), static_cast<double>(step_));
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = hp_.beta1, b2 = hp_.beta2, eps = hp_.eps;
  for (const Range& r : ranges_) {
    const float keep = r.decay ? 1.0f - lr * hp_.weight_decay : 1.0f;
    pool.parallel_for(r.end - r.begin, 4096, [&](int64_t i0, int64_t i1) {
      const int64_t at = r.begin + i0;
      adamw_update(params.data() + at, grads.data() + at, m_.data() + at, v_.data() + at, i1 - i0,
                   AdamWStep{keep, b1, b2, step_size, inv_sqrt_bc2, eps});
    });
  }
}

double grad_norm(const std::vector<float>& grads) {
  double ss = 0.0;
  for (float g : grads) ss += static_cast<double>(g) * g;
  return std::sqrt(ss);
}

double clip_grad_norm(std::vector<float>& grads, double max_norm) {
  const double norm = grad_norm(grads);
  if (max_norm > 0.0) {
    const double factor = max_norm / (norm + 1e-6);
    if (factor < 1.0)
      for (float& g : grads) g = static_cast<float>(g * factor);
  }
  return norm;
}

}  // namespace slm
