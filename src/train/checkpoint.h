// Training checkpoints: one GGUF file holding everything a run needs to continue exactly where it
// was: the parameters (GGUF llama tensor names, F32), AdamW's two moments ("adam.m.<name>",
// "adam.v.<name>"), and as metadata the model's llama.* keys, the training config (JSON), the
// step, tokens seen, the data sampler's RNG state, elapsed time, and the tokenizer (tokenizer.*
// keys, copied from the data directory's tokenizer.gguf) with its fingerprint.
//
// Written atomically (io/atomic_file.h through GgufWriter): a kill at any moment leaves the
// previous checkpoint or the new one, never a torn file. Being a llama GGUF, a checkpoint also
// loads in `slm generate` (the optimizer tensors are ignored) and is what `slm export` reads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "train/adamw.h"
#include "train/train_config.h"
#include "train/train_model.h"

namespace slm {

class GgufFile;

struct TrainState {
  int64_t step = 0;                  // optimizer steps done
  uint64_t tokens_seen = 0;          // training tokens consumed
  std::array<uint64_t, 4> rng{};     // data sampler state after `step` steps
  double elapsed_s = 0.0;            // training time before this run segment
  uint64_t tokenizer_fingerprint = 0;  // 0 for random-data runs
};

// tokenizer: the GGUF whose tokenizer.* keys to embed, or nullptr (random-data runs).
void save_checkpoint(const std::string& path, const TrainConfig& config, const TrainModel& model,
                     const AdamW& opt, const TrainState& state, const GgufFile* tokenizer);

struct Checkpoint {
  std::unique_ptr<GgufFile> file;
  TrainConfig config;
  ModelConfig model;
  TrainState state;
};

// Opens and validates a checkpoint (format version, every tensor present with the right shape);
// throws slm::Error naming the file and what is wrong or missing.
Checkpoint open_checkpoint(const std::string& path);

// Copies parameters and optimizer state out of an opened checkpoint.
void restore_checkpoint(const Checkpoint& ckpt, TrainModel& model, AdamW& opt);

}  // namespace slm
