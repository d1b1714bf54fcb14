// A loaded model: config, tokenizer and weights viewed in the memory-mapped GGUF file (weights
// are never copied or dequantized as a whole), plus the forward pass.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/matmul.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "tokenizer/tokenizer.h"

namespace slm {

// Vectors (norm weights, biases) are always F32 in the files we load; converted at load if not.
struct LayerWeights {
  std::vector<float> attn_norm;           // [dim]
  WeightView wq, wk, wv, wo;              // [n_heads*head_dim, dim], [n_kv*head_dim, dim] x2, [dim, n_heads*head_dim]
  std::vector<float> bq, bk, bv;          // qkv biases (qwen2) or empty
  std::vector<float> ffn_norm;            // [dim]
  WeightView w_gate, w_up, w_down;        // [ffn, dim], [ffn, dim], [dim, ffn]
};

struct ModelWeights {
  WeightView token_embd;                  // [n_vocab, dim]
  std::vector<LayerWeights> layers;
  std::vector<float> output_norm;         // [dim]
  WeightView output;                      // [n_vocab, dim]; == token_embd when tied
};

class Model {
 public:
  // Opens, validates (every tensor present with the expected shape and a supported type) and maps
  // a model. Throws slm::Error naming the file and the tensor or key at fault.
  static std::unique_ptr<Model> load(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& gguf() const { return *gguf_; }
  const ModelWeights& weights() const { return weights_; }
  int64_t parameter_count() const;

 private:
  Model() = default;
  std::unique_ptr<GgufFile> gguf_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ModelWeights weights_;
  std::vector<std::vector<float>> owned_;  // converted vectors
};

// Scratch buffers for the forward pass, sized for a maximum batch; reused across calls.
struct ForwardScratch;
// One thread's pool and scratch when a batch is split by sequence (transformer.cpp).
struct ForwardLane;

// One sequence's share of a batched forward pass (Transformer::forward_batch): its new tokens,
// which go to positions kv->size() .. kv->size()+n-1 of its own cache.
struct SequenceBatch {
  const int32_t* tokens = nullptr;
  int64_t n = 0;
  KvCache* kv = nullptr;
  // [n, n_vocab] if all_logits, else [1, n_vocab] for the last position; nullptr: no logits
  // (e.g. a prefill chunk that is not the prompt's last).
  float* logits = nullptr;
  bool all_logits = false;
  // Optional [n, dim]: the final normalised hidden state of every position (embeddings).
  float* hidden = nullptr;
};

// How Transformer::forward_batch splits a batch by sequence when the model is small enough: the
// lane (thread) of each sequence given its rows, or empty for the split by weight rows. Decode
// steps (at most 4 rows a sequence) need two sequences per thread and go in contiguous groups of
// about equal rows; batches with prefill chunks are split only if the longest-first assignment
// leaves no lane more than 40% over the mean.
std::vector<int> plan_sequence_lanes(std::span<const int64_t> rows, int threads);

// Runs the transformer. One instance per concurrent sequence user (it owns scratch buffers);
// the Model is shared read-only.
class Transformer {
 public:
  Transformer(const Model& model, ThreadPool& pool);
  ~Transformer();

  // Feeds tokens[0..n) at positions kv.size() .. kv.size()+n-1, appends their keys/values to kv.
  // logits: if all_logits, [n, n_vocab]; else [1, n_vocab] for the last position only.
  // Prefill runs in matrix-matrix products over chunks of positions. Throws slm::Error if a token
  // id is out of range or the cache would overflow.
  void forward(const int32_t* tokens, int64_t n, KvCache& kv, float* logits, bool all_logits = false);
  std::vector<float> forward(const std::vector<int32_t>& tokens, KvCache& kv, bool all_logits = false);

  // Several sequences, each with its own cache, in one pass: every weight matrix is applied to
  // all their rows at once (what continuous batching in the server needs; a decode step of 8
  // sequences costs far less than 8 single steps); attention stays per sequence. The rows of all
  // sequences together form one chunk: callers bound their sum (the server's prefill budget).
  // Results equal those of separate forward() calls. Throws slm::Error (nothing written) on a
  // token out of range, a cache overflow or shape mismatch, or the same cache twice.
  void forward_batch(std::span<const SequenceBatch> seqs);

  // For callers that drive the threads themselves (the server's decode sessions). Whether this
  // model is small enough that a thread should take its own group of sequences through the
  // whole pass (then forward_batch does so for a batch of at least two decoding sequences per
  // thread), and that pass for one group: lane in [0, pool().size()), run on the calling thread
  // with the lane's own scratch, results equal to forward_batch's. Different lanes may run at
  // the same time on different threads; one lane must not run on two threads at once, nor while
  // forward_batch runs. last_hidden() is not set. Throws as forward_batch does, and if the model
  // has no lanes (splits_by_sequence() is false) or `lane` is out of range.
  bool splits_by_sequence() const { return split_by_sequence_; }
  void forward_lane(int lane, std::span<const SequenceBatch> seqs);

  // Final hidden state (after output norm) of the last position of the last forward call: [dim].
  const std::vector<float>& last_hidden() const;

  const Model& model() const { return model_; }
  ThreadPool& pool() { return pool_; }

 private:
  // Whether to run the batch split by sequence and, if so, its groups (lane_seqs_, lane_edges_).
  bool plan_lanes(std::span<const SequenceBatch> seqs);
  // Checks a batch (see forward_batch).
  void validate(std::span<const SequenceBatch> seqs) const;
  // The pass itself for validated sequences, its products on `pool`, its buffers in `s`.
  void forward_rows(std::span<const SequenceBatch> seqs, ThreadPool& pool, ForwardScratch& s);

  const Model& model_;
  ThreadPool& pool_;
  std::unique_ptr<ForwardScratch> s_;
  // Small models (weights that stay in the caches) run a batch of several decoding sequences
  // per thread, each thread its own group through every layer, instead of splitting each
  // product's rows over the threads (no exchange of activations between cores; results equal).
  bool split_by_sequence_ = false;
  std::vector<std::unique_ptr<ForwardLane>> lanes_;  // one per thread when split_by_sequence_
  // The current batch's sequences grouped by lane: lane t runs lane_seqs_[lane_edges_[t],
  // lane_edges_[t + 1]); last_lane_ holds the batch's last sequence.
  std::vector<SequenceBatch> lane_seqs_;
  std::vector<size_t> lane_edges_;
  std::vector<int64_t> lane_rows_;
  size_t last_lane_ = 0;
};

}  // namespace slm
