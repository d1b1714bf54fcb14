// ModelConfig::from_gguf: the "<arch>.*" hyper-parameters, validated so that the forward pass
// can trust every size (positive, heads dividing evenly, pairs for RoPE).
#include "model/config.h"

#include <string>

#include "core/error.h"
#include "io/gguf.h"
#include "model/architecture.h"

namespace slm {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

[[noreturn]] void fail(const GgufFile& f, const std::string& key, const std::string& what) {
  throw Error(f.path() + ": " + key + ": " + what);
}

int64_t positive(const GgufFile& f, const std::string& key, int64_t v) {
  if (v < 1) fail(f, key, "expected a positive integer, got " + std::to_string(v));
  return v;
}

}  // namespace

ModelConfig ModelConfig::from_gguf(const GgufFile& f) {
  ModelConfig c;
  c.arch = f.get_string("general.architecture");
  const ArchSpec* spec = find_architecture(c.arch);
  if (!spec)
    fail(f, "general.architecture",
         "unsupported architecture '" + c.arch + "' (supported: " + join(architecture_names()) + ")");
  c.name = f.get_string("general.name", "");
  c.rope_style = spec->rope_style;
  c.qkv_bias = spec->qkv_bias;

  const std::string a = c.arch + ".";
  c.dim = positive(f, a + "embedding_length", f.get_int(a + "embedding_length"));
  c.n_layers = positive(f, a + "block_count", f.get_int(a + "block_count"));
  // Each block has several tensors; a corrupt count must fail here, before anything is sized by
  // it (a flipped high byte would otherwise ask for billions of layers).
  if (c.n_layers > static_cast<int64_t>(f.tensors().size()))
    fail(f, a + "block_count", std::to_string(c.n_layers) + " blocks cannot fit in the file's " +
                                   std::to_string(f.tensors().size()) + " tensors");
  c.ffn_dim = positive(f, a + "feed_forward_length", f.get_int(a + "feed_forward_length"));
  c.ctx_len = positive(f, a + "context_length", f.get_int(a + "context_length"));
  c.n_heads = positive(f, a + "attention.head_count", f.get_int(a + "attention.head_count"));
  c.n_kv_heads = positive(f, a + "attention.head_count_kv",
                          f.get_int(a + "attention.head_count_kv", c.n_heads));
  if (c.n_heads % c.n_kv_heads != 0)
    fail(f, a + "attention.head_count_kv",
         std::to_string(c.n_kv_heads) + " kv heads do not divide " + std::to_string(c.n_heads) + " heads");
  if (f.has(a + "attention.key_length")) {
    c.head_dim = positive(f, a + "attention.key_length", f.get_int(a + "attention.key_length"));
  } else {
    if (c.dim % c.n_heads != 0)
      fail(f, a + "attention.head_count",
           std::to_string(c.n_heads) + " heads do not divide embedding_length " + std::to_string(c.dim));
    c.head_dim = c.dim / c.n_heads;
  }
  if (f.has(a + "attention.value_length") &&
      f.get_int(a + "attention.value_length") != c.head_dim)
    fail(f, a + "attention.value_length", "must equal the key length " + std::to_string(c.head_dim));
  if (c.head_dim % 2 != 0)
    fail(f, a + "attention.key_length", "RoPE needs an even head dimension, got " + std::to_string(c.head_dim));
  if (f.has(a + "rope.dimension_count") && f.get_int(a + "rope.dimension_count") != c.head_dim)
    fail(f, a + "rope.dimension_count",
         "partial rotary embeddings are not supported (expected " + std::to_string(c.head_dim) + ")");
  const std::string scaling = f.get_string(a + "rope.scaling.type", "none");
  if (scaling != "none")
    fail(f, a + "rope.scaling.type", "RoPE scaling '" + scaling + "' is not supported");

  const double eps = f.get_float(a + "attention.layer_norm_rms_epsilon");
  if (!(eps > 0 && eps < 1))
    fail(f, a + "attention.layer_norm_rms_epsilon", "expected a value in (0, 1), got " + std::to_string(eps));
  c.norm_eps = static_cast<float>(eps);
  const double base = f.get_float(a + "rope.freq_base", 10000.0);
  if (!(base > 1)) fail(f, a + "rope.freq_base", "expected a value > 1, got " + std::to_string(base));
  c.rope_base = static_cast<float>(base);

  // The vocabulary size is what the embedding matrix holds; the tokenizer may not exceed it.
  if (const GgufTensorInfo* t = f.find_tensor("token_embd.weight")) {
    if (t->shape.size() != 2) fail(f, "token_embd.weight", "expected a 2-D tensor");
    c.n_vocab = positive(f, "token_embd.weight", t->shape[1]);
  } else if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens")) {
    c.n_vocab = positive(f, "tokenizer.ggml.tokens", static_cast<int64_t>(tokens->items.size()));
  } else {
    c.n_vocab = positive(f, a + "vocab_size", f.get_int(a + "vocab_size"));
  }
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  return c;
}

}  // namespace slm
