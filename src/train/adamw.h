// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, as torch.optim.AdamW computes it
//   p -= lr * wd * p                     (only tensors with decay)
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// over the flat parameter buffer of a TrainModel, plus global-norm gradient clipping.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "train/train_model.h"

namespace slm {

struct AdamWParams {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
  bool decay_embeddings = false;  // norms never decay; matrices always do
};

class AdamW {
 public:
  AdamW(const ParamLayout& layout, AdamWParams hp);

  // One update with learning rate lr; step() counts updates from 1 for the bias correction.
  void update(ThreadPool& pool, std::vector<float>& params, const std::vector<float>& grads, float lr);

  int64_t step() const { return step_; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  void set_step(int64_t s) { step_ = s; }
  const AdamWParams& hyper() const { return hp_; }

 private:
  AdamWParams hp_;
  std::vector<float> m_, v_;
  struct Range { int64_t begin, end; bool decay; };
  std::vector<Range> ranges_;
  int64_t step_ = 0;
};

// L2 norm of all gradients: double sums over fixed chunks of the vector, run on the pool, added
// in chunk order (the same value at every thread count).
double grad_norm(ThreadPool& pool, const std::vector<float>& grads);
// Scales the gradients so their global norm is at most max_norm (torch's clip_grad_norm_:
// factor max_norm / (norm + 1e-6) when that is below 1). Returns the norm before clipping.
double clip_grad_norm(ThreadPool& pool, std::vector<float>& grads, double max_norm);

}  // namespace slm
