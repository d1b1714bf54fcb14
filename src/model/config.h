// Hyper-parameters of a LLaMA-family transformer, read from GGUF metadata ("<arch>.*" keys).
#pragma once

#include <cstdint>
#include <string>

namespace slm {

class GgufFile;

enum class RopeStyle {
  Adjacent,  // rotate pairs (x[2i], x[2i+1]): llama in GGUF (ggml "normal" rope)
  NeoX,      // rotate pairs (x[i], x[i + head_dim/2]): qwen2 and other NeoX-style models
};

struct ModelConfig {
  std::string arch;        // general.architecture: "llama", "qwen2"
  std::string name;        // general.name if present
  int64_t n_vocab = 0;
  int64_t dim = 0;         // embedding length
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // == n_heads without GQA; 1 for MQA
  int64_t head_dim = 0;    // dim / n_heads unless the file says otherwise
  int64_t ffn_dim = 0;
  int64_t ctx_len = 0;     // training context length
  float norm_eps = 1e-5f;
  float rope_base = 10000.0f;
  RopeStyle rope_style = RopeStyle::Adjacent;
  bool qkv_bias = false;   // qwen2: q/k/v projections carry biases
  bool tied_output = false;  // no output.weight: the head reuses token_embd

  // Reads and validates the config (positive sizes, heads dividing evenly); throws slm::Error
  // naming the file and the key. The architecture must be registered (model/architecture.h).
  static ModelConfig from_gguf(const GgufFile& file);
};

}  // namespace slm
