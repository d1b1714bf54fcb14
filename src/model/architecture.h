// The registry of supported architectures. Each architecture is one file (arch_llama.cpp,
// arch_qwen2.cpp) that describes how its GGUF metadata and tensors map onto the shared
// transformer (model/transformer.h): RoPE style, biases, which tensors are optional. Adding an
// architecture is adding a file that registers an ArchSpec; nothing else changes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace slm {

struct ArchSpec {
  std::string name;           // general.architecture value
  RopeStyle rope_style;
  bool qkv_bias;              // expects attn_q/k/v.bias tensors
};

// Returns the spec for an architecture name, or nullptr.
const ArchSpec* find_architecture(std::string_view name);
std::vector<std::string> architecture_names();

// Called by each arch_*.cpp through a static registrar.
void register_architecture(ArchSpec spec);
struct ArchRegistrar {
  explicit ArchRegistrar(ArchSpec spec) { register_architecture(std::move(spec)); }
};

}  // namespace slm
