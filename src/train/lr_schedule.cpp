#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace slm {

float learning_rate(const TrainConfig& c, int64_t step) {
  const double lr = c.lr, lo = c.min_lr;
  if (step < c.warmup_steps) return static_cast<float>(lr * static_cast<double>(step + 1) / c.warmup_steps);
  const double total = static_cast<double>(std::max<int64_t>(c.steps, 1));
  switch (c.schedule) {
    case LrSchedule::Constant:
      return static_cast<float>(lr);
    case LrSchedule::Cosine: {
      const double span = std::max(1.0, total - c.warmup_steps);
      const double progress = std::min(1.0, (step - c.warmup_steps) / span);
      return static_cast<float>(lo + (lr - lo) * 0.5 * (1.0 + std::cos(M_PI * progress)));
    }
    case LrSchedule::Wsd:
    case LrSchedule::Wsdc: {
      const double tail = c.schedule == LrSchedule::Wsdc ? std::round(c.wsdc_constant_fraction * total) : 0.0;
      const double decay_end = total - tail;
      const double decay_len = std::max(1.0, std::round(c.decay_fraction * total));
      const double decay_start = std::max<double>(c.warmup_steps, decay_end - decay_len);
      const double s = static_cast<double>(step);
      if (s < decay_start) return static_cast<float>(lr);
      if (s >= decay_end) return static_cast<float>(lo);
      // Reaches min_lr at the last decay step.
      const double frac = (s - decay_start + 1) / std::max(1.0, decay_end - decay_start);
      return static_cast<float>(lr + (lo - lr) * std::min(1.0, frac));
    }
  }
  return static_cast<float>(lr);
}

}  // namespace slm
