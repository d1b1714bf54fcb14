// Writing a model's hyper-parameters as GGUF metadata: the "<arch>.*" keys that
// ModelConfig::from_gguf reads back (and llama.cpp reads), with general.* keys. One definition
// for every writer of model files (slm init, slm export, training checkpoints).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "model/config.h"

namespace slm {

class GgufWriter;

// general.file_type: the llama.cpp "ftype" of a file whose matrices are mostly of type t (GGUF
// tools print it as the model's type; K-quant files without a mix are the "_S" variants).
uint32_t llama_file_type(DType t);

// general.architecture, general.name (if c.name is set), general.file_type and the
// architecture's keys: context_length, embedding_length, block_count, feed_forward_length,
// attention.head_count(_kv), rope.dimension_count, attention.key/value_length when head_dim
// differs from dim / n_heads, attention.layer_norm_rms_epsilon, rope.freq_base, vocab_size.
void set_model_metadata(GgufWriter& w, const ModelConfig& c, DType file_type);

}  // namespace slm
