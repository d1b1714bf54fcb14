// Exporting a trained model: from a checkpoint (or any F32/F16 llama GGUF) to a GGUF model file
// with the llama architecture's standard tensor names and metadata keys and the tokenizer, so
// that slm and other GGUF runtimes (llama.cpp) load it. Optimizer state and slm.* keys are left
// out. Matrices are stored as `dtype` (F32, F16 or Q8_0; a matrix whose rows are not a multiple
// of the Q8_0 block stays F16); norm weights always stay F32, as GGUF runtimes expect.
#pragma once

#include <string>

#include "core/dtype.h"

namespace slm {

class GgufFile;

struct ExportOptions {
  DType dtype = DType::F32;
  std::string name;  // general.name; empty keeps the source's
};

// Throws slm::Error if the source has no tokenizer metadata, is not a llama model, or dtype is
// not one of F32, F16, Q8_0. Written atomically.
void export_model(const GgufFile& source, const std::string& out_path, const ExportOptions& opt);

}  // namespace slm
