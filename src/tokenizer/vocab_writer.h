// Writes a Vocab as GGUF tokenizer metadata: exactly the tokenizer.ggml.* keys that
// Tokenizer::from_gguf (tokenizer/vocab_gguf.cpp) reads, so that reading back gives the same
// tokenizer. Model export reuses add_vocab_metadata; write_tokenizer_gguf makes a vocabulary-only
// file (no tensors), like llama.cpp's ggml-vocab-*.gguf files.
#pragma once

#include <string>

#include "io/gguf_writer.h"
#include "tokenizer/tokenizer.h"

namespace slm {

// Sets tokenizer.ggml.{model, pre, tokens, token_type, scores, merges}, the special token ids that
// are set (bos, eos, unknown, eot, eom, padding: uint32), add_bos_token, add_eos_token and, for
// the "llama" kind, add_space_prefix. Empty scores/merges/pre are omitted. general.* keys are
// left to the caller. Throws slm::Error if the vocabulary is not one Tokenizer::from_vocab accepts.
void add_vocab_metadata(GgufWriter& w, const Vocab& v);

// A GGUF file holding general.name (when the vocab has one), general.type = "vocab" and the
// tokenizer metadata; written atomically.
void write_tokenizer_gguf(const std::string& path, const Vocab& v);

}  // namespace slm
