#include "train/train_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/gemm.h"
#include "core/ops.h"
#include "core/ops_backward.h"
#include "core/quant.h"
#include "io/gguf.h"
#include "train/rng.h"

namespace slm {

int64_t llama_ffn_dim(int64_t dim) {
  const int64_t hidden = 8 * dim / 3;
  return (hidden + 31) / 32 * 32;
}

// ---------------------------------------------------------------------------------------------
// Parameter layout

ParamLayout::ParamLayout(const ModelConfig& c) {
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  add("token_embd.weight", {c.dim, c.n_vocab}, /*embedding=*/true);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {c.dim});
    add(p + "attn_q.weight", {c.dim, q_dim});
    add(p + "attn_k.weight", {c.dim, kv_dim});
    add(p + "attn_v.weight", {c.dim, kv_dim});
    add(p + "attn_output.weight", {q_dim, c.dim});
    add(p + "ffn_norm.weight", {c.dim});
    add(p + "ffn_gate.weight", {c.dim, c.ffn_dim});
    add(p + "ffn_up.weight", {c.dim, c.ffn_dim});
    add(p + "ffn_down.weight", {c.ffn_dim, c.dim});
  }
  add("output_norm.weight", {c.dim});
  if (!c.tied_output) add("output.weight", {c.dim, c.n_vocab});
}

ParamLayout::ParamLayout(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
  for (const auto& [name, shape] : tensors) add(name, shape);
}

void ParamLayout::add(std::string name, std::vector<int64_t> shape, bool embedding) {
  ParamTensor t;
  t.name = std::move(name);
  t.size = 1;
  for (int64_t d : shape) t.size *= d;
  t.is_matrix = shape.size() == 2;
  t.is_embedding = embedding;
  t.shape = std::move(shape);
  t.offset = total_;
  total_ += t.size;
  tensors_.push_back(std::move(t));
}

const ParamTensor& ParamLayout::get(std::string_view name) const {
  for (const ParamTensor& t : tensors_)
    if (t.name == name) return t;
  throw Error("no parameter tensor named '" + std::string(name) + "'");
}

// ---------------------------------------------------------------------------------------------
// Activations kept for the backward pass, and the backward pass's scratch. Sized for one
// (batch, seq_len) and regrown when a call needs more.

// Row chunks of the rmsnorm backward (fixed, so its sums do not depend on the thread count).
constexpr int64_t kNormChunks = 16;

struct LayerActivations {
  std::vector<float> x_in;    // [n, dim] residual stream entering the layer
  std::vector<float> xn1;     // [n, dim] attn_norm output
  std::vector<float> q, k, v; // [n, q_dim], [n, kv_dim] x2, after RoPE (q, k)
  std::vector<float> probs;   // [batch, n_heads, t, t] attention probabilities
  std::vector<float> att;     // [n, q_dim] attention output (input of attn_output)
  std::vector<float> x_mid;   // [n, dim] residual stream after attention
  std::vector<float> xn2;     // [n, dim] ffn_norm output
  std::vector<float> g, u, h; // [n, ffn] gate and up pre-activations, silu(g) * u
};

struct TrainActivations {
  int64_t batch = 0, t = 0;
  std::vector<LayerActivations> layers;
  std::vector<float> x;        // [n, dim] residual stream
  std::vector<float> x_final;  // [n, dim] before output_norm
  std::vector<float> xnf;      // [n, dim] after output_norm
  std::vector<float> logits;   // [n, vocab], then its gradient
  std::vector<float> cos_sin, cos_msin;  // [t, head_dim] RoPE tables, forward and inverse
  std::vector<float> inv_freq;
  std::vector<int32_t> inputs, targets;  // [n]
  std::vector<double> row_loss;          // [n]
  std::vector<double> row_kl;            // [n], distillation only
  // backward scratch
  std::vector<float> dx, dxn, r, dq, dk, dv, datt, dh, dg, du;
  std::vector<float> att_scratch;        // [threads, t, t]
  std::vector<float> norm_partial;       // [kNormChunks, dim] rmsnorm weight-gradient partials

  void reserve(const ModelConfig& c, int64_t b, int64_t seq, int threads) {
    const auto sz = [](int64_t a, int64_t w) { return static_cast<size_t>(a * w); };
    const int64_t n = b * seq, q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
    if (b != batch || seq != t) {
      layers.resize(static_cast<size_t>(c.n_layers));
      for (LayerActivations& L : layers) {
        L.x_in.resize(sz(n, c.dim));
        L.xn1.resize(sz(n, c.dim));
        L.q.resize(sz(n, q_dim));
        L.k.resize(sz(n, kv_dim));
        L.v.resize(sz(n, kv_dim));
        L.probs.resize(sz(b * c.n_heads, seq * seq));
        L.att.resize(sz(n, q_dim));
        L.x_mid.resize(sz(n, c.dim));
        L.xn2.resize(sz(n, c.dim));
        L.g.resize(sz(n, c.ffn_dim));
        L.u.resize(sz(n, c.ffn_dim));
        L.h.resize(sz(n, c.ffn_dim));
      }
      x.resize(sz(n, c.dim));
      x_final.resize(sz(n, c.dim));
      xnf.resize(sz(n, c.dim));
      logits.resize(sz(n, c.n_vocab));
      inputs.resize(static_cast<size_t>(n));
      targets.resize(static_cast<size_t>(n));
      row_loss.resize(static_cast<size_t>(n));
      row_kl.resize(static_cast<size_t>(n));
      dx.resize(sz(n, c.dim));
      dxn.resize(sz(n, c.dim));
      r.resize(static_cast<size_t>(n));
      dq.resize(sz(n, q_dim));
      dk.resize(sz(n, kv_dim));
      dv.resize(sz(n, kv_dim));
      datt.resize(sz(n, q_dim));
      dh.resize(sz(n, c.ffn_dim));
      dg.resize(sz(n, c.ffn_dim));
      du.resize(sz(n, c.ffn_dim));
      norm_partial.resize(sz(kNormChunks, c.dim));
      inv_freq.resize(static_cast<size_t>(c.head_dim / 2));
      rope_inv_freq(c.head_dim, c.rope_base, inv_freq.data());
      cos_sin.resize(sz(seq, c.head_dim));
      cos_msin.resize(sz(seq, c.head_dim));
      for (int64_t p = 0; p < seq; ++p) {
        float* cs = cos_sin.data() + p * c.head_dim;
        rope_cos_sin(p, inv_freq.data(), c.head_dim, cs);
        float* cm = cos_msin.data() + p * c.head_dim;
        for (int64_t i = 0; i < c.head_dim; i += 2) {
          cm[i] = cs[i];
          cm[i + 1] = -cs[i + 1];
        }
      }
      batch = b;
      t = seq;
    }
    if (att_scratch.size() < sz(threads, seq * seq)) att_scratch.resize(sz(threads, seq * seq));
  }
};

// ---------------------------------------------------------------------------------------------

TrainModel::TrainModel(const ModelConfig& c) : config_(c), layout_(c) {
  if (c.rope_style != RopeStyle::Adjacent || c.qkv_bias)
    throw Error("training supports the llama architecture (adjacent-pair RoPE, no biases)");
  if (c.dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 ||
      c.ffn_dim <= 0 || c.n_vocab <= 0 || c.head_dim % 2 != 0 || c.n_heads % c.n_kv_heads != 0)
    throw Error("invalid model shape for training (sizes must be positive, head_dim even, "
                "n_heads a multiple of n_kv_heads)");
  params_.assign(static_cast<size_t>(layout_.total()), 0.0f);
  grads_.assign(static_cast<size_t>(layout_.total()), 0.0f);
  act_ = std::make_unique<TrainActivations>();
  gemm_prepare();  // loads the BLAS now if the products need it, before any parallel region
}

TrainModel::~TrainModel() = default;

void TrainModel::init_random(uint64_t seed, float std) {
  Rng rng(seed);
  const float out_std = std / std::sqrt(2.0f * static_cast<float>(config_.n_layers));
  for (const ParamTensor& t : layout_.tensors()) {
    float* p = params_.data() + t.offset;
    if (!t.is_matrix) {
      std::fill(p, p + t.size, 1.0f);
      continue;
    }
    const bool residual_out = t.name.find("attn_output") != std::string::npos ||
                              t.name.find("ffn_down") != std::string::npos;
    const double s = residual_out ? out_std : std;
    for (int64_t i = 0; i < t.size; ++i) p[i] = static_cast<float>(rng.normal() * s);
  }
}

void TrainModel::load_params(const GgufFile& file) {
  for (const ParamTensor& t : layout_.tensors()) {
    const GgufTensorInfo* info = file.find_tensor(t.name);
    if (!info) throw Error("model has no tensor '" + t.name + "'");
    if (info->shape != t.shape) {
      std::string want, got;
      for (int64_t d : t.shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      for (int64_t d : info->shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      throw Error("tensor '" + t.name + "' has shape [" + got + "], expected [" + want + "]");
    }
    const int64_t row = t.shape[0];
    const size_t row_bytes = info->nbytes / static_cast<size_t>(t.size / row);
    for (int64_t r = 0; r < t.size / row; ++r)
      dequantize_row(info->type, info->data + static_cast<size_t>(r) * row_bytes,
                     params_.data() + t.offset + r * row, row);
  }
}

void TrainModel::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

void TrainModel::zero_grads(ThreadPool& pool) {
  pool.parallel_for(static_cast<int64_t>(grads_.size()), 1 << 14, [&](int64_t i0, int64_t i1) {
    std::fill(grads_.begin() + i0, grads_.begin() + i1, 0.0f);
  });
}

const float* TrainModel::logits() const { return act_->logits.data(); }

double TrainModel::forward_backward(ThreadPool& pool, const int32_t* tokens, int64_t batch,
                                    int64_t seq_len, float grad_scale, const DistillTargets* distill) {
  return run(pool, tokens, batch, seq_len, grad_scale, distill, true);
}

const float* TrainModel::forward_logits(ThreadPool& pool, const int32_t* tokens, int64_t batch, int64_t seq_len) {
  run(pool, tokens, batch, seq_len, 0.0f, nullptr, false);
  return logits();
}

double TrainModel::run(ThreadPool& pool, const int32_t* tokens, int64_t batch, int64_t seq_len, float grad_scale,
                       const DistillTargets* distill, bool with_loss) {
  const ModelConfig& c = config_;
  if (batch < 1 || seq_len < 1) throw Error("forward_backward: empty batch");
  TrainActivations& A = *act_;
  A.reserve(c, batch, seq_len, pool.size());
  const int64_t n = batch * seq_len, T = seq_len, dim = c.dim, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd, ffn = c.ffn_dim, V = c.n_vocab;
  const int64_t group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool backward = grad_scale != 0.0f;
  const int threads = pool.size();

  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i <= T; ++i) {
      const int32_t id = tokens[b * (T + 1) + i];
      if (id < 0 || id >= V)
        throw Error("token id " + std::to_string(id) + " is out of range [0, " + std::to_string(V) + ")");
      if (i < T) A.inputs[static_cast<size_t>(b * T + i)] = id;
      if (i > 0) A.targets[static_cast<size_t>(b * T + i - 1)] = id;
    }

  const float* P = params_.data();
  float* G = grads_.data();
  auto W = [&](const std::string& name) { return P + layout_.get(name).offset; };
  auto dW = [&](const std::string& name) { return G + layout_.get(name).offset; };
  const float* embd = W("token_embd.weight");
  const float* out_w = c.tied_output ? embd : W("output.weight");
  const int64_t rows_grain = std::max<int64_t>(1, 16);

  // ---- forward
  float* X = A.x.data();
  pool.parallel_for(n, rows_grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(X + i * dim, embd + static_cast<int64_t>(A.inputs[static_cast<size_t>(i)]) * dim,
                  sizeof(float) * static_cast<size_t>(dim));
  });

  auto rope_rows = [&](float* buf, int64_t heads, const std::vector<float>& table) {
    const int64_t width = heads * hd;
    pool.parallel_for(n, rows_grain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        rope(buf + i * width, heads, hd, table.data() + (i % T) * hd, /*neox=*/false);
    });
  };
  auto norm_rows = [&](const float* x, const float* w, float* out) {
    pool.parallel_for(n, rows_grain, [&](int64_t i0, int64_t i1) {
      rmsnorm(x + i0 * dim, w, i1 - i0, dim, c.norm_eps, out + i0 * dim);
    });
  };

  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerActivations& L = A.layers[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    std::memcpy(L.x_in.data(), X, sizeof(float) * static_cast<size_t>(n * dim));
    norm_rows(X, W(p + "attn_norm.weight"), L.xn1.data());
    gemm(pool, false, true, n, q_dim, dim, L.xn1.data(), dim, W(p + "attn_q.weight"), dim, 0.0f, L.q.data(), q_dim);
    gemm(pool, false, true, n, kv_dim, dim, L.xn1.data(), dim, W(p + "attn_k.weight"), dim, 0.0f, L.k.data(), kv_dim);
    gemm(pool, false, true, n, kv_dim, dim, L.xn1.data(), dim, W(p + "attn_v.weight"), dim, 0.0f, L.v.data(), kv_dim);
    rope_rows(L.q.data(), c.n_heads, A.cos_sin);
    rope_rows(L.k.data(), c.n_kv_heads, A.cos_sin);
    // One task per (sequence, head); task i runs on pool index i % threads.
    pool.run([&](int thread) {
      for (int64_t task = thread; task < batch * c.n_heads; task += threads) {
        const int64_t b = task / c.n_heads, h = task % c.n_heads, kvh = h / group;
        causal_attention_forward(L.q.data() + b * T * q_dim + h * hd, L.k.data() + b * T * kv_dim + kvh * hd,
                                 L.v.data() + b * T * kv_dim + kvh * hd, T, hd, q_dim, kv_dim, scale,
                                 L.probs.data() + task * T * T, L.att.data() + b * T * q_dim + h * hd);
      }
    });
    gemm(pool, false, true, n, dim, q_dim, L.att.data(), q_dim, W(p + "attn_output.weight"), q_dim, 1.0f, X, dim);
    std::memcpy(L.x_mid.data(), X, sizeof(float) * static_cast<size_t>(n * dim));
    norm_rows(X, W(p + "ffn_norm.weight"), L.xn2.data());
    gemm(pool, false, true, n, ffn, dim, L.xn2.data(), dim, W(p + "ffn_gate.weight"), dim, 0.0f, L.g.data(), ffn);
    gemm(pool, false, true, n, ffn, dim, L.xn2.data(), dim, W(p + "ffn_up.weight"), dim, 0.0f, L.u.data(), ffn);
    pool.parallel_for(n, rows_grain, [&](int64_t i0, int64_t i1) {
      std::memcpy(L.h.data() + i0 * ffn, L.g.data() + i0 * ffn, sizeof(float) * static_cast<size_t>((i1 - i0) * ffn));
      silu_mul(L.h.data() + i0 * ffn, L.u.data() + i0 * ffn, (i1 - i0) * ffn);
    });
    gemm(pool, false, true, n, dim, ffn, L.h.data(), ffn, W(p + "ffn_down.weight"), ffn, 1.0f, X, dim);
  }
  std::memcpy(A.x_final.data(), X, sizeof(float) * static_cast<size_t>(n * dim));
  norm_rows(X, W("output_norm.weight"), A.xnf.data());
  gemm(pool, false, true, n, V, dim, A.xnf.data(), dim, out_w, dim, 0.0f, A.logits.data(), V);
  if (!with_loss) return 0.0;

  // Loss (and its gradient in place of the logits); rows summed in order for reproducibility.
  pool.parallel_for(n, rows_grain, [&](int64_t i0, int64_t i1) {
    if (distill) {
      std::vector<float> scratch(static_cast<size_t>(2 * V));
      for (int64_t i = i0; i < i1; ++i)
        A.row_loss[static_cast<size_t>(i)] = distill_cross_entropy_row(
            A.logits.data() + i * V, A.targets[static_cast<size_t>(i)], distill->teacher_logits + i * V, V,
            distill->weight, distill->temperature, grad_scale, scratch.data(), &A.row_kl[static_cast<size_t>(i)]);
      return;
    }
    for (int64_t i = i0; i < i1; ++i)
      A.row_loss[static_cast<size_t>(i)] =
          cross_entropy_rows(A.logits.data() + i * V, A.targets.data() + i, 1, V, grad_scale);
  });
  double loss = 0.0;
  for (int64_t i = 0; i < n; ++i) loss += A.row_loss[static_cast<size_t>(i)];
  if (distill && distill->kl_sum) {
    double kl = 0.0;
    for (int64_t i = 0; i < n; ++i) kl += A.row_kl[static_cast<size_t>(i)];
    *distill->kl_sum += kl;
  }
  if (!backward) return loss;

  // ---- backward
  float* dX = A.dx.data();
  float* dXn = A.dxn.data();
  auto norm_backward = [&](const float* x, const std::string& wname, const float* dy) {
    const float* w = W(wname);
    float* dw = dW(wname);
    // A fixed number of row chunks, each with its own partial dw, summed in chunk order: one pass
    // over x and dy, and the same bits at every thread count.
    const int64_t rows_per_chunk = (n + kNormChunks - 1) / kNormChunks;
    float* partial = A.norm_partial.data();
    pool.parallel_for(kNormChunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t ch = c0; ch < c1; ++ch) {
        const int64_t i0 = std::min(n, ch * rows_per_chunk), i1 = std::min(n, i0 + rows_per_chunk);
        float* part = partial + ch * dim;
        std::fill(part, part + dim, 0.0f);
        rmsnorm_inv_rms(x + i0 * dim, i1 - i0, dim, c.norm_eps, A.r.data() + i0);
        rmsnorm_backward_input(x + i0 * dim, A.r.data() + i0, w, dy + i0 * dim, i1 - i0, dim, dX + i0 * dim);
        rmsnorm_backward_weight(x + i0 * dim, A.r.data() + i0, dy + i0 * dim, i1 - i0, dim, part);
      }
    });
    for (int64_t ch = 0; ch < kNormChunks; ++ch)
      for (int64_t j = 0; j < dim; ++j) dw[j] += partial[ch * dim + j];
  };

  const float* dlogits = A.logits.data();
  gemm(pool, false, false, n, dim, V, dlogits, V, out_w, dim, 0.0f, dXn, dim);
  gemm(pool, true, false, V, dim, n, dlogits, V, A.xnf.data(), dim, 1.0f,
       c.tied_output ? dW("token_embd.weight") : dW("output.weight"), dim);
  std::fill(A.dx.begin(), A.dx.end(), 0.0f);
  norm_backward(A.x_final.data(), "output_norm.weight", dXn);

  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    LayerActivations& L = A.layers[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    // FFN
    gemm(pool, false, false, n, ffn, dim, dX, dim, W(p + "ffn_down.weight"), ffn, 0.0f, A.dh.data(), ffn);
    gemm(pool, true, false, dim, ffn, n, dX, dim, L.h.data(), ffn, 1.0f, dW(p + "ffn_down.weight"), ffn);
    pool.parallel_for(n, rows_grain, [&](int64_t i0, int64_t i1) {
      silu_mul_backward(L.g.data() + i0 * ffn, L.u.data() + i0 * ffn, A.dh.data() + i0 * ffn,
                        (i1 - i0) * ffn, A.dg.data() + i0 * ffn, A.du.data() + i0 * ffn);
    });
    gemm(pool, false, false, n, dim, ffn, A.dg.data(), ffn, W(p + "ffn_gate.weight"), dim, 0.0f, dXn, dim);
    gemm(pool, false, false, n, dim, ffn, A.du.data(), ffn, W(p + "ffn_up.weight"), dim, 1.0f, dXn, dim);
    gemm(pool, true, false, ffn, dim, n, A.dg.data(), ffn, L.xn2.data(), dim, 1.0f, dW(p + "ffn_gate.weight"), dim);
    gemm(pool, true, false, ffn, dim, n, A.du.data(), ffn, L.xn2.data(), dim, 1.0f, dW(p + "ffn_up.weight"), dim);
    norm_backward(L.x_mid.data(), p + "ffn_norm.weight", dXn);
    // Attention
    gemm(pool, false, false, n, q_dim, dim, dX, dim, W(p + "attn_output.weight"), q_dim, 0.0f, A.datt.data(), q_dim);
    gemm(pool, true, false, dim, q_dim, n, dX, dim, L.att.data(), q_dim, 1.0f, dW(p + "attn_output.weight"), q_dim);
    std::fill(A.dk.begin(), A.dk.end(), 0.0f);
    std::fill(A.dv.begin(), A.dv.end(), 0.0f);
    // One task per (sequence, kv head): the query heads of a group add into the same dK, dV rows.
    pool.run([&](int thread) {
      float* scratch = A.att_scratch.data() + static_cast<size_t>(thread) * T * T;
      for (int64_t task = thread; task < batch * c.n_kv_heads; task += threads) {
        const int64_t b = task / c.n_kv_heads, kvh = task % c.n_kv_heads;
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
          const int64_t qo = b * T * q_dim + h * hd, ko = b * T * kv_dim + kvh * hd;
          causal_attention_backward(L.q.data() + qo, L.k.data() + ko, L.v.data() + ko,
                                    L.probs.data() + (b * c.n_heads + h) * T * T, A.datt.data() + qo,
                                    T, hd, q_dim, kv_dim, scale, A.dq.data() + qo, A.dk.data() + ko,
                                    A.dv.data() + ko, scratch);
        }
      }
    });
    rope_rows(A.dq.data(), c.n_heads, A.cos_msin);
    rope_rows(A.dk.data(), c.n_kv_heads, A.cos_msin);
    gemm(pool, false, false, n, dim, q_dim, A.dq.data(), q_dim, W(p + "attn_q.weight"), dim, 0.0f, dXn, dim);
    gemm(pool, false, false, n, dim, kv_dim, A.dk.data(), kv_dim, W(p + "attn_k.weight"), dim, 1.0f, dXn, dim);
    gemm(pool, false, false, n, dim, kv_dim, A.dv.data(), kv_dim, W(p + "attn_v.weight"), dim, 1.0f, dXn, dim);
    gemm(pool, true, false, q_dim, dim, n, A.dq.data(), q_dim, L.xn1.data(), dim, 1.0f, dW(p + "attn_q.weight"), dim);
    gemm(pool, true, false, kv_dim, dim, n, A.dk.data(), kv_dim, L.xn1.data(), dim, 1.0f, dW(p + "attn_k.weight"), dim);
    gemm(pool, true, false, kv_dim, dim, n, A.dv.data(), kv_dim, L.xn1.data(), dim, 1.0f, dW(p + "attn_v.weight"), dim);
    norm_backward(L.x_in.data(), p + "attn_norm.weight", dXn);
  }

  // Embedding rows: split by columns so that repeated tokens never race.
  float* dE = dW("token_embd.weight");
  pool.parallel_for(dim, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < n; ++i) {
      float* row = dE + static_cast<int64_t>(A.inputs[static_cast<size_t>(i)]) * dim;
      const float* d = dX + i * dim;
      for (int64_t j = j0; j < j1; ++j) row[j] += d[j];
    }
  });
  return loss;
}

}  // namespace slm
