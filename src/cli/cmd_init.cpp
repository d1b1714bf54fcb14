// slm init: a random-weight model of a given shape, written as GGUF, for tests and benchmarks
// (no model can be downloaded on the machines slm is developed on). The tokenizer metadata is
// copied from --vocab-from. Weight types follow what GGUF quantizers do: a type whose blocks do
// not divide a tensor's rows falls back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, legacy quants
// -> F16), and by default the output matrix (or the tied embedding) of a 4/5-bit model is Q6_K,
// as llama-quantize does, so that benchmarks compare like with like.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "model/architecture.h"
#include "model/config.h"
#include "model/model_metadata.h"

namespace slm::cli {
namespace {

struct InitFlags {
  std::string arch = "llama";
  int64_t dim = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0, ctx = 2048, head_dim = 0;
  std::string vocab_from, out, dtype = "f32", output_dtype;
  bool tie = false;
  float rope_base = 10000.0f, norm_eps = 1e-5f;
  uint64_t seed = 42;
  int threads = 0;
};

// Deterministic normal numbers (splitmix64 + Box-Muller): the same seed gives the same file.
class NormalRng {
 public:
  explicit NormalRng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  float next() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double u1 = (static_cast<double>(bits() >> 11) + 0.5) / 9007199254740992.0;
    const double u2 = static_cast<double>(bits() >> 11) / 9007199254740992.0;
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = static_cast<float>(r * std::sin(2 * M_PI * u2));
    have_spare_ = true;
    return static_cast<float>(r * std::cos(2 * M_PI * u2));
  }

 private:
  uint64_t bits() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
  float spare_ = 0;
  bool have_spare_ = false;
};

// The type a matrix with rows of `cols` values gets when `wanted` is asked for.
DType fit_type(DType wanted, int64_t cols) {
  const int64_t block = dtype_info(wanted).block_size;
  if (cols % block == 0) return wanted;
  switch (wanted) {
    case DType::Q4_K: return fit_type(DType::Q5_0, cols);
    case DType::Q5_K: return fit_type(DType::Q5_1, cols);
    case DType::Q6_K: return fit_type(DType::Q8_0, cols);
    default: return DType::F16;
  }
}

class ModelWriter {
 public:
  ModelWriter(const InitFlags& f, ThreadPool& pool) : f_(f), pool_(pool), rng_(f.seed) {}
  GgufWriter& writer() { return w_; }

  // A [rows, cols] matrix (GGUF shape [cols, rows]) of N(0, std^2) values stored as `type`.
  void matrix(const std::string& name, int64_t rows, int64_t cols, float std, DType type) {
    type = fit_type(type, cols);
    std::vector<float> values(static_cast<size_t>(rows * cols));
    for (float& v : values) v = rng_.next() * std;
    const size_t rb = row_bytes(type, cols);
    std::vector<uint8_t> bytes(rb * static_cast<size_t>(rows));
    pool_.parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        quantize_row(type, values.data() + r * cols, bytes.data() + r * rb, cols);
    });
    w_.add_tensor(name, type, {cols, rows}, std::move(bytes));
  }

  // A vector around `mean` (norm weights near 1, so a missing norm would show) stored as F32.
  void vector(const std::string& name, int64_t n, float mean, float std) {
    std::vector<uint8_t> bytes(static_cast<size_t>(n) * 4);
    for (int64_t i = 0; i < n; ++i) {
      const float v = mean + rng_.next() * std;
      std::memcpy(bytes.data() + i * 4, &v, 4);
    }
    w_.add_tensor(name, DType::F32, {n}, std::move(bytes));
  }

 private:
  const InitFlags& f_;
  ThreadPool& pool_;
  NormalRng rng_;
  GgufWriter w_;
};

// Without --vocab-from: a byte-level BPE vocabulary of the 256 bytes (in GPT-2's byte-to-unicode
// alphabet) and <|endoftext|>, with no merges; every text is representable.
constexpr int64_t kByteVocabSize = 257;

void write_byte_vocab(GgufWriter& w) {
  std::vector<std::string> tokens(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const int cp = printable ? b : next++;
    std::string s;  // UTF-8 of cp (< 0x800)
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    tokens[b] = s;
  }
  tokens.push_back("<|endoftext|>");
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;  // control
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "default");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {});
  w.set_u32("tokenizer.ggml.bos_token_id", 256);
  w.set_u32("tokenizer.ggml.eos_token_id", 256);
  w.set_bool("tokenizer.ggml.add_bos_token", false);
}

void check_positive(int64_t v, const char* flag) {
  if (v <= 0) throw Error(std::string(flag) + " must be a positive integer, got " + std::to_string(v));
}

void run_init(const InitFlags& f) {
  const ArchSpec* spec = find_architecture(f.arch);
  if (!spec) {
    std::string names;
    for (const auto& n : architecture_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error("unknown --arch '" + f.arch + "' (supported: " + names + ")");
  }
  check_positive(f.dim, "--dim");
  check_positive(f.layers, "--layers");
  check_positive(f.heads, "--heads");
  check_positive(f.ffn, "--ffn");
  check_positive(f.ctx, "--ctx");
  const int64_t kv_heads = f.kv_heads == 0 ? f.heads : f.kv_heads;
  check_positive(kv_heads, "--kv-heads");
  if (f.heads % kv_heads != 0)
    throw Error("--heads (" + std::to_string(f.heads) + ") must be a multiple of --kv-heads (" +
                std::to_string(kv_heads) + ")");
  const int64_t head_dim = f.head_dim ? f.head_dim : f.dim / f.heads;
  if (f.head_dim == 0 && f.dim % f.heads != 0)
    throw Error("--dim (" + std::to_string(f.dim) + ") must be a multiple of --heads (" +
                std::to_string(f.heads) + ") unless --head-dim is given");
  if (head_dim % 2 != 0) throw Error("the head dimension must be even for RoPE, got " + std::to_string(head_dim));
  if (!(f.rope_base > 0)) throw Error("--rope-base must be positive");
  const auto dtype = dtype_from_name(f.dtype);
  if (!dtype || !dtype_info(*dtype).matmul)
    throw Error("--dtype must be one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k; got '" + f.dtype + "'");
  DType out_type = *dtype;
  if (!f.output_dtype.empty()) {
    const auto t = dtype_from_name(f.output_dtype);
    if (!t || !dtype_info(*t).matmul) throw Error("unknown --output-dtype '" + f.output_dtype + "'");
    out_type = *t;
  } else if (is_quantized(*dtype) && *dtype != DType::Q8_0 && *dtype != DType::Q6_K) {
    out_type = DType::Q6_K;
  }

  std::unique_ptr<GgufFile> vocab;
  int64_t n_vocab = kByteVocabSize;
  if (!f.vocab_from.empty()) {
    vocab = GgufFile::open(f.vocab_from);
    n_vocab = static_cast<int64_t>(vocab->get_string_array("tokenizer.ggml.tokens").size());
    if (n_vocab == 0) throw Error(f.vocab_from + ": tokenizer.ggml.tokens is empty");
  }

  ThreadPool pool(f.threads > 0 ? f.threads : default_thread_count());
  ModelWriter mw(f, pool);
  GgufWriter& w = mw.writer();
  const std::string a = f.arch;
  ModelConfig mc;
  mc.arch = a;
  mc.name = "slm-init " + a + " d" + std::to_string(f.dim) + " l" + std::to_string(f.layers);
  mc.n_vocab = n_vocab;
  mc.dim = f.dim;
  mc.n_layers = f.layers;
  mc.n_heads = f.heads;
  mc.n_kv_heads = kv_heads;
  mc.head_dim = head_dim;
  mc.ffn_dim = f.ffn;
  mc.ctx_len = f.ctx;
  mc.norm_eps = f.norm_eps;
  mc.rope_base = f.rope_base;
  set_model_metadata(w, mc, *dtype);
  if (vocab)
    w.copy_metadata(*vocab, "tokenizer.");
  else
    write_byte_vocab(w);

  // Scales: projections ~ 1/sqrt(fan_in) keep activations O(1); the embedding is scaled so that
  // the tied head gives peaked logits, which keeps greedy decoding away from near-ties.
  const float embd_std = 2.0f / std::sqrt(static_cast<float>(f.dim));
  const float in_std = 1.0f / std::sqrt(static_cast<float>(f.dim));
  const float attn_out_std = 1.0f / std::sqrt(static_cast<float>(f.heads * head_dim));
  const float down_std = 1.0f / std::sqrt(static_cast<float>(f.ffn));
  mw.matrix("token_embd.weight", n_vocab, f.dim, embd_std, f.tie ? out_type : *dtype);
  for (int64_t l = 0; l < f.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    mw.vector(p + "attn_norm.weight", f.dim, 1.0f, 0.1f);
    mw.matrix(p + "attn_q.weight", f.heads * head_dim, f.dim, in_std, *dtype);
    mw.matrix(p + "attn_k.weight", kv_heads * head_dim, f.dim, in_std, *dtype);
    mw.matrix(p + "attn_v.weight", kv_heads * head_dim, f.dim, in_std, *dtype);
    if (spec->qkv_bias) {
      mw.vector(p + "attn_q.bias", f.heads * head_dim, 0.0f, 0.1f);
      mw.vector(p + "attn_k.bias", kv_heads * head_dim, 0.0f, 0.1f);
      mw.vector(p + "attn_v.bias", kv_heads * head_dim, 0.0f, 0.1f);
    }
    mw.matrix(p + "attn_output.weight", f.dim, f.heads * head_dim, attn_out_std, *dtype);
    mw.vector(p + "ffn_norm.weight", f.dim, 1.0f, 0.1f);
    mw.matrix(p + "ffn_gate.weight", f.ffn, f.dim, in_std, *dtype);
    mw.matrix(p + "ffn_up.weight", f.ffn, f.dim, in_std, *dtype);
    mw.matrix(p + "ffn_down.weight", f.dim, f.ffn, down_std, *dtype);
  }
  mw.vector("output_norm.weight", f.dim, 1.0f, 0.1f);
  if (!f.tie) mw.matrix("output.weight", n_vocab, f.dim, embd_std, out_type);
  w.write(f.out);
  std::printf("wrote %s\n", f.out.c_str());
}

}  // namespace

void register_init(CLI::App& app) {
  auto f = std::make_shared<InitFlags>();
  CLI::App* cmd = app.add_subcommand("init", "Write a random-weight model of a given shape (for tests and benchmarks)");
  cmd->add_option("--arch", f->arch, "architecture: llama or qwen2")->capture_default_str();
  cmd->add_option("--dim", f->dim, "embedding width")->required();
  cmd->add_option("--layers", f->layers, "transformer blocks")->required();
  cmd->add_option("--heads", f->heads, "attention heads")->required();
  cmd->add_option("--kv-heads", f->kv_heads, "key/value heads (GQA; 1 = MQA); default = --heads");
  cmd->add_option("--head-dim", f->head_dim, "per-head width; default dim / heads");
  cmd->add_option("--ffn", f->ffn, "feed-forward width")->required();
  cmd->add_option("--ctx", f->ctx, "context length written to the metadata")->capture_default_str();
  cmd->add_option("--vocab-from", f->vocab_from, "GGUF file whose tokenizer the model gets (default: a built-in byte-level vocabulary of 257 tokens)");
  cmd->add_flag("--tie", f->tie, "tie the output head to the token embedding");
  cmd->add_option("--rope-base", f->rope_base, "RoPE frequency base")->capture_default_str();
  cmd->add_option("--norm-eps", f->norm_eps, "RMSNorm epsilon")->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k")->capture_default_str();
  cmd->add_option("--output-dtype", f->output_dtype, "type of the output head (default: q6_k for 4/5-bit types, else --dtype)");
  cmd->add_option("--seed", f->seed, "random seed")->capture_default_str();
  cmd->add_option("-t,--threads", f->threads, "threads for quantization; 0 = all cores")->capture_default_str();
  cmd->add_option("-o,--output", f->out, "output GGUF path")->required();
  cmd->callback([f] { run_init(*f); });
}

}  // namespace slm::cli
