// Two models can only be combined token by token if a token id means the same text in both.
// check_shared_vocab verifies that at load time and refuses, saying what differs, otherwise.
//
// Shared means: the same number of tokens, the same token text at every id, and the same BOS and
// EOS ids (special tokens steer generation, so a pair that disagrees on them is not shared either).
// Merges and scores may differ: they decide how text becomes ids, but once both models read the
// same ids every id means the same thing. Models whose vocabularies differ are refused; a declared
// id mapping between two vocabularies is not supported yet.
#pragma once

#include <string>

#include "tokenizer/tokenizer.h"

namespace slm {

// Throws slm::Error naming both models (name_a, name_b: paths or roles such as "small model
// models/x.gguf") and the first difference found: the sizes, or the first id whose texts differ
// (with both texts and how many ids differ in all), or the BOS/EOS ids.
void check_shared_vocab(const Tokenizer& a, const std::string& name_a, const Tokenizer& b,
                        const std::string& name_b);

}  // namespace slm
