// The training loop behind `slm train`: data, model, optimizer, schedule, evaluation, logging,
// checkpoints and the final model export, for one TrainConfig.
//
// Each optimizer step: grad_accum micro-batches of batch_size windows of seq_len + 1 tokens drawn
// at uniformly random offsets of the training shard (the sampler's RNG state is the data
// position: a checkpoint stores it, so a resumed run draws the same windows), mean cross-entropy
// over all targets (with a teacher: the distillation objective of train_model.h's
// DistillTargets, the teacher's logits computed on the same windows), global-norm clipping,
// AdamW at the schedule's learning rate. Validation uses fixed, evenly spaced windows of the
// validation shard, the same at every evaluation.
//
// Files in out_dir: checkpoint.gguf (every checkpoint_every steps and at the end), log.jsonl
// (one JSON object per step: step, loss, lr, grad_norm, tokens, tokens_per_s, step_ms,
// elapsed_s, and kl when distilling; per evaluation: step, val_loss, val_ppl, tokens,
// elapsed_s; events: start, resume, end), model.gguf (the exported F32 model, at the end, when
// there is a tokenizer).
#pragma once

#include <functional>
#include <string>

#include "train/train_config.h"

namespace slm {

struct TrainerOptions {
  bool resume = false;     // continue from out_dir/checkpoint.gguf (error if absent or mismatched)
  bool progress = true;    // progress bar / lines on stderr
  int64_t stop_after = 0;  // stop (with a checkpoint) after this many steps of this run; 0 = no
};

struct TrainSummary {
  int64_t steps = 0;
  double final_loss = 0.0;     // mean of the last step's micro-batches
  double val_loss = -1.0;      // last evaluation, -1 if none
  double seconds = 0.0;
  double tokens_per_s = 0.0;   // median over this run's steps
};

TrainSummary run_training(const TrainConfig& config, const TrainerOptions& opt);

}  // namespace slm
