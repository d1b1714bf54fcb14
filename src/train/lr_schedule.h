// Learning rate at each optimizer step (0-based), for the schedules TrainConfig names:
//   warmup (all):  lr * (step + 1) / warmup_steps for step < warmup_steps
//   cosine:        then min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2 over the rest
//   wsd:           then lr held ("stable") until the last decay_fraction of the steps, which decay
//                  linearly to min_lr (MiniCPM's warmup-stable-decay; linear decay as in its
//                  follow-ups, so the end value is exactly min_lr)
//   wsdc:          warmup, stable, decay to min_lr, then min_lr held for the last
//                  wsdc_constant_fraction of the steps (WSD then constant, as PLM trains)
//   constant:      lr after warmup
#pragma once

#include <cstdint>

#include "train/train_config.h"

namespace slm {

float learning_rate(const TrainConfig& c, int64_t step);

}  // namespace slm
