#include "model/model_metadata.h"

#include "io/gguf_writer.h"

namespace slm {

uint32_t llama_file_type(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q4_K: return 14;
    case DType::Q5_K: return 16;
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;
  }
}

void set_model_metadata(GgufWriter& w, const ModelConfig& c, DType file_type) {
  const std::string& a = c.arch;
  w.set_string("general.architecture", a);
  if (!c.name.empty()) w.set_string("general.name", c.name);
  w.set_u32("general.alignment", 32);
  w.set_u32("general.file_type", llama_file_type(file_type));
  w.set_u32(a + ".context_length", static_cast<uint32_t>(c.ctx_len));
  w.set_u32(a + ".embedding_length", static_cast<uint32_t>(c.dim));
  w.set_u32(a + ".block_count", static_cast<uint32_t>(c.n_layers));
  w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(c.ffn_dim));
  w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  if (c.head_dim * c.n_heads != c.dim) {
    w.set_u32(a + ".attention.key_length", static_cast<uint32_t>(c.head_dim));
    w.set_u32(a + ".attention.value_length", static_cast<uint32_t>(c.head_dim));
  }
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", c.norm_eps);
  w.set_f32(a + ".rope.freq_base", c.rope_base);
  w.set_u32(a + ".vocab_size", static_cast<uint32_t>(c.n_vocab));
}

}  // namespace slm
