#include "train/adamw.h"

#include <algorithm>
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

double grad_norm(ThreadPool& pool, const std::vector<float>& grads) {
  constexpr int64_t kChunk = int64_t{1} << 16;  // fixed: the sum order ignores the thread count
  const int64_t n = static_cast<int64_t>(grads.size()), chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      const float* g = grads.data() + ch * kChunk;
      const int64_t len = std::min(kChunk, n - ch * kChunk);
      // Four interleaved sums: the additions' latency, not memory, bounds one chain.
      double s[4] = {0.0, 0.0, 0.0, 0.0};
      int64_t i = 0;
      for (; i + 4 <= len; i += 4)
        for (int k = 0; k < 4; ++k) s[k] += static_cast<double>(g[i + k]) * g[i + k];
      for (; i < len; ++i) s[0] += static_cast<double>(g[i]) * g[i];
      partial[static_cast<size_t>(ch)] = (s[0] + s[1]) + (s[2] + s[3]);
    }
  });
  double ss = 0.0;
  for (double p : partial) ss += p;
  return std::sqrt(ss);
}

double clip_grad_norm(ThreadPool& pool, std::vector<float>& grads, double max_norm) {
  const double norm = grad_norm(pool, grads);
  if (max_norm > 0.0) {
    const double factor = max_norm / (norm + 1e-6);
    if (factor < 1.0) {
      const float f = static_cast<float>(factor);
      pool.parallel_for(static_cast<int64_t>(grads.size()), 4096, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) grads[static_cast<size_t>(i)] *= f;
      });
    }
  }
  return norm;
}

}  // namespace slm
