// Qwen2 (and Qwen2.5): NeoX-style RoPE on the two halves of each head, biases on the q/k/v
// projections; rope.freq_base is usually 1e6 and the output head is often tied to the embeddings.
#include "model/architecture.h"

namespace slm {
namespace {

const ArchRegistrar kQwen2({.name = "qwen2", .rope_style = RopeStyle::NeoX, .qkv_bias = true});

}  // namespace
}  // namespace slm
