// Model::load: every tensor the config implies, checked for presence, shape and a type the matrix
// products support, before any forward pass can read it. Matrices stay in the mapping.
#include "model/model.h"

#include <cstring>
#include <string>

#include "core/error.h"
#include "core/fp16.h"
#include "core/quant.h"

namespace slm {
namespace {

std::string shape_string(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

class Loader {
 public:
  explicit Loader(const GgufFile& f) : f_(f) {}

  const GgufTensorInfo& tensor(const std::string& name, std::vector<int64_t> shape) const {
    const GgufTensorInfo* t = f_.find_tensor(name);
    if (!t) throw Error(f_.path() + ": tensor '" + name + "' is missing");
    if (t->shape != shape)
      throw Error(f_.path() + ": tensor '" + name + "' has shape " + shape_string(t->shape) +
                  ", expected " + shape_string(shape) + " (ne[0] first)");
    return *t;
  }

  // A matrix [rows, cols] (GGUF shape {cols, rows}) in a type the matrix products handle.
  WeightView matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const GgufTensorInfo& t = tensor(name, {cols, rows});
    const DTypeInfo& info = dtype_info(t.type);
    if (!info.matmul)
      throw Error(f_.path() + ": tensor '" + name + "' has type " + std::string(info.name) +
                  ", which slm cannot multiply with (supported: f32, f16, bf16, q4_0, q4_1, q5_0, "
                  "q5_1, q8_0, q4_k, q5_k, q6_k)");
    if (cols % info.block_size != 0)
      throw Error(f_.path() + ": tensor '" + name + "': rows of " + std::to_string(cols) +
                  " values are not whole " + std::string(info.name) + " blocks");
    WeightView w;
    w.type = t.type;
    w.data = t.data;
    w.rows = rows;
    w.cols = cols;
    return w;
  }

  // A vector [n] converted to F32 whatever its stored type.
  std::vector<float> vector(const std::string& name, int64_t n) const {
    const GgufTensorInfo& t = tensor(name, {n});
    std::vector<float> v(static_cast<size_t>(n));
    if (t.type == DType::F32) {
      std::memcpy(v.data(), t.data, static_cast<size_t>(n) * 4);
    } else if (dtype_info(t.type).matmul && n % dtype_info(t.type).block_size == 0) {
      dequantize_row(t.type, t.data, v.data(), n);
    } else {
      throw Error(f_.path() + ": tensor '" + name + "' has unsupported type " +
                  std::string(dtype_name(t.type)) + " for a vector");
    }
    return v;
  }

  bool has(const std::string& name) const { return f_.find_tensor(name) != nullptr; }

 private:
  const GgufFile& f_;
};

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path) {
  std::unique_ptr<Model> m(new Model());
  m->gguf_ = GgufFile::open(path);
  const GgufFile& f = *m->gguf_;
  m->config_ = ModelConfig::from_gguf(f);
  const ModelConfig& c = m->config_;
  m->tokenizer_ = Tokenizer::from_gguf(f);
  if (m->tokenizer_->vocab_size() > c.n_vocab)
    throw Error(path + ": tokenizer.ggml.tokens has " + std::to_string(m->tokenizer_->vocab_size()) +
                " tokens but token_embd.weight only " + std::to_string(c.n_vocab) + " rows");

  const Loader L(f);
  ModelWeights& w = m->weights_;
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  w.token_embd = L.matrix("token_embd.weight", c.n_vocab, c.dim);
  w.output_norm = L.vector("output_norm.weight", c.dim);
  w.output = c.tied_output ? w.token_embd : L.matrix("output.weight", c.n_vocab, c.dim);
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    lw.attn_norm = L.vector(p + "attn_norm.weight", c.dim);
    lw.wq = L.matrix(p + "attn_q.weight", q_dim, c.dim);
    lw.wk = L.matrix(p + "attn_k.weight", kv_dim, c.dim);
    lw.wv = L.matrix(p + "attn_v.weight", kv_dim, c.dim);
    lw.wo = L.matrix(p + "attn_output.weight", c.dim, q_dim);
    if (c.qkv_bias) {
      lw.bq = L.vector(p + "attn_q.bias", q_dim);
      lw.bk = L.vector(p + "attn_k.bias", kv_dim);
      lw.bv = L.vector(p + "attn_v.bias", kv_dim);
    } else if (L.has(p + "attn_q.bias") || L.has(p + "attn_k.bias") || L.has(p + "attn_v.bias")) {
      throw Error(path + ": tensor '" + p + "attn_q/k/v.bias' present but architecture '" + c.arch +
                  "' has no attention biases");
    }
    lw.ffn_norm = L.vector(p + "ffn_norm.weight", c.dim);
    lw.w_gate = L.matrix(p + "ffn_gate.weight", c.ffn_dim, c.dim);
    lw.w_up = L.matrix(p + "ffn_up.weight", c.ffn_dim, c.dim);
    lw.w_down = L.matrix(p + "ffn_down.weight", c.dim, c.ffn_dim);
  }
  return m;
}

int64_t Model::parameter_count() const {
  int64_t n = 0;
  for (const GgufTensorInfo& t : gguf_->tensors()) n += t.n_elements();
  return n;
}

}  // namespace slm
