// add_vocab_metadata / write_tokenizer_gguf: the inverse of vocab_gguf.cpp's read_vocab.
#include "tokenizer/vocab_writer.h"

#include "core/error.h"

namespace slm {

void add_vocab_metadata(GgufWriter& w, const Vocab& v) {
  // Validate first (the same checks the reader applies), so that no file is written that
  // Tokenizer::from_gguf would refuse.
  (void)Tokenizer::from_vocab(v);

  w.set_string("tokenizer.ggml.model", v.model);
  if (!v.pre.empty() || v.model == "gpt2") w.set_string("tokenizer.ggml.pre", v.pre);
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  std::vector<int32_t> types;
  types.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i)
    types.push_back(static_cast<int32_t>(i < v.types.size() ? v.types[i] : TokenType::Normal));
  w.set_i32_array("tokenizer.ggml.token_type", types);
  if (!v.scores.empty()) w.set_f32_array("tokenizer.ggml.scores", v.scores);
  if (!v.merges.empty() || v.model == "gpt2") w.set_string_array("tokenizer.ggml.merges", v.merges);

  auto id = [&](const char* key, int32_t x) {
    if (x >= 0) w.set_u32(key, static_cast<uint32_t>(x));
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  id("tokenizer.ggml.eot_token_id", v.eot);
  id("tokenizer.ggml.eom_token_id", v.eom);
  id("tokenizer.ggml.padding_token_id", v.pad);
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (v.model == "llama") w.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

void write_tokenizer_gguf(const std::string& path, const Vocab& v) {
  GgufWriter w;
  if (!v.name.empty()) w.set_string("general.name", v.name);
  w.set_string("general.type", "vocab");
  add_vocab_metadata(w, v);
  w.write(path);
}

}  // namespace slm
