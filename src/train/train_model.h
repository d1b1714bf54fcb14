// The trainable form of the llama architecture the engine runs: F32 parameters in one flat buffer
// (so the optimizer, clipping and checkpoints see one array), a forward pass that keeps the
// activations the backward pass needs, and that backward pass.
//
// The layer math is core/ops.h (the same rmsnorm, rope, softmax and silu_mul inference uses) and
// core/ops_backward.h; matrix products go through core/gemm.h. The block is the one
// model/transformer.cpp computes (pre-norm attention with adjacent-pair RoPE and GQA, SwiGLU
// FFN, final norm, tied or separate head), so an exported model generates what was trained:
// train_model_test checks its logits against Transformer::forward on the same weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "model/config.h"

namespace slm {

class GgufFile;

// One parameter tensor's place in the flat buffer. shape is GGUF order (ne[0], the contiguous
// dimension, first), names are GGUF's llama tensor names.
struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;   // in floats
  int64_t size = 0;     // in floats
  bool is_matrix = false;
  bool is_embedding = false;  // token_embd (also the head when tied)
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& c);
  // Any other set of tensors (e.g. the token router's MLP), in order; 2-D tensors are matrices.
  explicit ParamLayout(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors);
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  int64_t total() const { return total_; }
  // Throws slm::Error if there is no such tensor.
  const ParamTensor& get(std::string_view name) const;

 private:
  void add(std::string name, std::vector<int64_t> shape, bool embedding = false);
  std::vector<ParamTensor> tensors_;
  int64_t total_ = 0;
};

struct TrainActivations;

// Logit-level distillation of one forward_backward call (core/ops_backward.h,
// distill_cross_entropy_row): the teacher's logits at the same positions, the weight w of the
// soft part and the temperature T.
struct DistillTargets {
  const float* teacher_logits = nullptr;  // [batch * seq_len, n_vocab], the student's vocabulary
  float weight = 0.5f;
  float temperature = 1.0f;
  double* kl_sum = nullptr;  // if set, the summed KL(teacher || student) is ADDED here
};

class TrainModel {
 public:
  // c must describe a llama model (adjacent RoPE, no biases); throws slm::Error otherwise.
  explicit TrainModel(const ModelConfig& c);
  ~TrainModel();
  TrainModel(const TrainModel&) = delete;
  TrainModel& operator=(const TrainModel&) = delete;

  const ModelConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  std::vector<float>& params() { return params_; }
  const std::vector<float>& params() const { return params_; }
  std::vector<float>& grads() { return grads_; }
  const std::vector<float>& grads() const { return grads_; }
  float* param(std::string_view name) { return params_.data() + layout_.get(name).offset; }
  float* grad(std::string_view name) { return grads_.data() + layout_.get(name).offset; }

  // Normal(0, std) matrices, the two residual-output projections (attn_output, ffn_down) scaled
  // by 1/sqrt(2 n_layers) as GPT-2 does, norm weights 1. Deterministic for a seed.
  void init_random(uint64_t seed, float std);
  // Copies every parameter from a GGUF model of the same shape (any weight type, dequantized).
  // Throws slm::Error naming the tensor that is missing or has the wrong shape.
  void load_params(const GgufFile& file);
  void zero_grads();
  void zero_grads(ThreadPool& pool);  // the same, split over the pool

  // tokens: [batch, seq_len + 1]; inputs are each row's first seq_len ids, targets the last
  // seq_len. Returns the summed negative log-likelihood (nats) of the batch * seq_len targets.
  // If grad_scale != 0, runs the backward pass too and ADDS grad_scale * d(sum NLL)/d(param) to
  // grads() (so micro-batches accumulate). Throws slm::Error on an out-of-range token id.
  // With `distill`, the gradient is that of the distillation objective (DistillTargets) and the
  // return value is still the summed cross-entropy of the targets; logits() is then not valid.
  double forward_backward(ThreadPool& pool, const int32_t* tokens, int64_t batch, int64_t seq_len,
                          float grad_scale, const DistillTargets* distill = nullptr);
  // Logits of the last call, [batch * seq_len, n_vocab]; valid only after a call with
  // grad_scale == 0 (the backward pass overwrites them with their gradient).
  const float* logits() const;
  // The forward pass alone (a distillation teacher's): returns logits(), [batch * seq_len,
  // n_vocab], without computing any loss. Same tokens layout and errors as forward_backward.
  const float* forward_logits(ThreadPool& pool, const int32_t* tokens, int64_t batch, int64_t seq_len);

 private:
  ModelConfig config_;
  ParamLayout layout_;
  std::vector<float> params_, grads_;
  std::unique_ptr<TrainActivations> act_;

  double run(ThreadPool& pool, const int32_t* tokens, int64_t batch, int64_t seq_len, float grad_scale,
             const DistillTargets* distill, bool with_loss);
};

// The llama rule for the SwiGLU hidden size: floor(8 dim / 3) rounded up to a multiple of 32
// (llama2.c's multiple_of = 32).
int64_t llama_ffn_dim(int64_t dim);

}  // namespace slm
