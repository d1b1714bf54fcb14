// LLaMA in GGUF: RoPE on adjacent pairs (the GGUF converter permutes the Q/K rows of the
// Hugging Face checkpoint so that ggml's "normal" rope is right), no projection biases.
// Also covers the llama-shaped families converted under this name (Mistral, TinyLlama, SmolLM).
#include "model/architecture.h"

namespace slm {
namespace {

const ArchRegistrar kLlama({.name = "llama", .rope_style = RopeStyle::Adjacent, .qkv_bias = false});

}  // namespace
}  // namespace slm
