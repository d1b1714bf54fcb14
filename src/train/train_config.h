// What `slm train` does, read from a TOML or JSON file (chosen by extension) whose keys are the
// field names below; command-line flags override single keys. Unknown keys are errors (a typo
// must not silently train with a default).
//
// Example (TOML):
//   data = "data/brown"          # directory from `slm data prepare`
//   out_dir = "runs/brown"       # checkpoints, log.jsonl, final model
//   dim = 288
//   n_layers = 6
//   n_heads = 6
//   n_kv_heads = 6
//   seq_len = 256
//   batch_size = 8
//   steps = 2000
//   lr = 1e-3
//   schedule = "cosine"          # cosine | wsd | wsdc | constant
#pragma once

#include <cstdint>
#include <string>

namespace slm {

enum class LrSchedule { Cosine, Wsd, Wsdc, Constant };

struct TrainConfig {
  // Data and output
  std::string data;             // data directory (train.bin, val.bin, tokenizer.gguf)
  bool random_data = false;     // uniform random tokens instead of data (benchmarks); needs vocab_size
  std::string out_dir = "run";  // checkpoint.gguf, log.jsonl, model.gguf

  // Model (the llama architecture the engine runs)
  int64_t dim = 288;
  int64_t n_layers = 6;
  int64_t n_heads = 6;
  int64_t n_kv_heads = 0;       // 0: = n_heads
  int64_t ffn_dim = 0;          // 0: llama rule, 2/3 * 4 * dim rounded up to a multiple of 32
  int64_t vocab_size = 0;       // 0: the tokenizer's
  int64_t seq_len = 256;
  bool tie_embeddings = true;
  float rope_base = 10000.0f;
  float norm_eps = 1e-5f;
  float init_std = 0.02f;       // normal init; output projections scaled by 1/sqrt(2 * n_layers)
  std::string init_from;        // fine-tuning: start from this GGUF model's (or checkpoint's) weights,
                                // which must have the configured shapes and the data's tokenizer
  std::string teacher;          // logit-level distillation: a llama GGUF model with the data's tokenizer
                                // whose logits at every position are soft targets (empty: off)
  float distill_weight = 0.5f;  // w: loss = (1 - w) CE + w T^2 KL(teacher_T || student_T)
  float distill_temperature = 1.0f;  // T

  // Optimisation
  int64_t batch_size = 8;       // sequences per micro-batch
  int64_t grad_accum = 1;       // micro-batches per optimizer step
  int64_t steps = 1000;         // optimizer steps
  float lr = 1e-3f;
  float min_lr = 1e-4f;         // floor of cosine; end of the WSD decay; WSDC's constant
  int64_t warmup_steps = 100;
  LrSchedule schedule = LrSchedule::Cosine;
  float decay_fraction = 0.2f;  // WSD/WSDC: share of steps in the decay phase
  float wsdc_constant_fraction = 0.1f;  // WSDC: share of steps held at min_lr after the decay
  float weight_decay = 0.1f;    // decoupled; never applied to norms; embeddings only if decay_embeddings
  bool decay_embeddings = false;
  float beta1 = 0.9f, beta2 = 0.95f, adam_eps = 1e-8f;
  float grad_clip = 1.0f;       // global L2 norm; 0 = off

  // Bookkeeping
  int64_t eval_every = 100;     // validation loss every N steps (and at the end); 0 = only at the end
  int64_t eval_batches = 8;     // micro-batches of validation data per evaluation
  int64_t checkpoint_every = 100;
  uint64_t seed = 1234;
  int threads = 0;              // 0: all cores

  // Reads a .toml or .json file; throws slm::Error naming the file and key on any problem.
  static TrainConfig load(const std::string& path);
  // The same from JSON text (checkpoints store their config this way).
  static TrainConfig from_json(const std::string& text);
  // Sets one key from its text form ("lr", "3e-4"); throws slm::Error on an unknown key or bad value.
  void set(const std::string& key, const std::string& value);
  // Throws slm::Error describing the first inconsistent setting (dim % n_heads, ...).
  void validate() const;
  std::string to_json() const;
};

const char* lr_schedule_name(LrSchedule s);

}  // namespace slm
