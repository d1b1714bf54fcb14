// Transformer::forward: the LLaMA-family block (pre-norm attention with RoPE and GQA, SwiGLU FFN)
// composed from the core/ops.h kernels and core/matmul.h products.
//
// A call is split into chunks of at most kChunk positions; each chunk goes through every weight
// matrix in one matmul (m = chunk length), so prefill runs matrix-matrix products and decode
// (n = 1) is the same code. Scratch buffers grow to the largest chunk seen and are then reused:
// a decode step allocates nothing.
#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/ops.h"
#include "model/model.h"

namespace slm {
namespace {

// Positions per chunk: bounds scratch to kChunk * (4 * dim + 2 * ffn + ...) floats while keeping
// the matrix products large enough to reuse each weight row across many positions.
constexpr int64_t kChunk = 512;

// Attention work (multiply-adds) below which one thread does all heads: a parallel region costs
// a few microseconds of synchronisation, more than a small model's decode attention takes.
constexpr int64_t kSerialAttentionWork = 32 * 1024;

// Splitting a batch by sequence (each thread runs its sequences through every layer alone) pays
// when the weights a step reads stay in the caches, so that each thread reading all of them costs
// little; every product split by weight rows instead moves its inputs and outputs between the
// cores several times per layer. 8 decoding sequences, 2 threads, in-process alternation
// (2-core EPYC): slm-brown-small-1m (2.6 MB) 1.86x, slm-brown-6m (11 MB) 1.3-1.45x,
// slm-brown-large-10m (20 MB) 1.13x, s15m-q8_0 (16 MB, 9 MB of it the 32000-row output) 1.03x,
// s110m-q8_0 (117 MB) 0.84x. With fewer than two sequences a thread, the weight split wins.
constexpr size_t kSequenceSplitMaxWeightBytes = size_t{24} << 20;
// Rows a sequence may bring to a split batch: decode steps and short verifications, not prefill
// chunks (which want the weight split's matrix-matrix products).
constexpr int64_t kSequenceSplitMaxRows = 4;

}  // namespace

struct ForwardScratch {
  int64_t cap_n = 0;             // positions the per-position buffers hold
  std::vector<float> x;          // [cap_n, dim] residual stream
  std::vector<float> xn;         // [cap_n, dim] normalised block input
  std::vector<float> q;          // [cap_n, n_heads * head_dim]
  std::vector<float> k, v;       // [cap_n, n_kv_heads * head_dim]
  std::vector<float> att;        // [cap_n, n_heads * head_dim] attention output
  std::vector<float> tmp;        // [cap_n, dim] block output before the residual add
  std::vector<float> gate, up;   // [cap_n, ffn_dim]
  std::vector<float> cos_sin;    // [cap_n, head_dim] RoPE angles of each position
  std::vector<float> inv_freq;   // [head_dim / 2]
  // [n_threads, score_cap] softmax rows, one per thread, each starting on its own cache line:
  // threads sharing a line here invalidate it in each other's caches on every head, which made
  // the attention of 8 decoding sequences at 2 threads run no faster than at 1.
  std::vector<float> scores;
  int64_t score_cap = 0;         // a multiple of 16 floats (64 bytes)
  float* scores_base() {  // the first 64-byte boundary in `scores`
    const auto a = reinterpret_cast<uintptr_t>(scores.data());
    return scores.data() + ((64 - a % 64) % 64) / sizeof(float);
  }
  std::vector<float> hidden;     // [dim] final normalised hidden state of the last position
  bool have_hidden = false;

  // Per row of the batch: its sequence and position.
  std::vector<int32_t> row_seq;
  std::vector<int64_t> row_pos;
  // Per sequence, for the layer being computed: its cache's key/value row 0.
  std::vector<const void*> seq_k0, seq_v0;
  std::vector<DType> seq_type;
  std::vector<float> out_rows;   // [sequences, dim] gathered last rows for the output matmul
  std::vector<float> out_logits; // [sequences, n_vocab]

  // Everything one attention parallel region needs; the pool job captures only a pointer to it,
  // so the std::function holding the job needs no heap allocation.
  struct AttentionJob {
    const float* q;       // [n, q_dim]
    float* att;           // [n, q_dim]
    const int32_t* row_seq;
    const int64_t* row_pos;
    const void* const* k0;  // per sequence: cache key row of position 0 for this layer
    const void* const* v0;
    const DType* kv_type;
    int64_t stride;       // cache row values (n_kv_heads * head_dim)
    int64_t n, n_heads, group, head_dim, q_dim;
    float scale;
    int n_threads;
    float* scores;
    int64_t score_cap;
    int64_t heads_per_task = 1;  // `group` (a kv head's query heads together) or 1
  } job{};

  explicit ForwardScratch(const ModelConfig& c) {
    inv_freq.resize(static_cast<size_t>(c.head_dim / 2));
    rope_inv_freq(c.head_dim, c.rope_base, inv_freq.data());
    hidden.resize(static_cast<size_t>(c.dim));
  }

  void reserve(const ModelConfig& c, int64_t n) {
    if (n <= cap_n) return;
    const auto sz = [n](int64_t w) { return static_cast<size_t>(n * w); };
    x.resize(sz(c.dim));
    xn.resize(sz(c.dim));
    q.resize(sz(c.n_heads * c.head_dim));
    k.resize(sz(c.n_kv_heads * c.head_dim));
    v.resize(sz(c.n_kv_heads * c.head_dim));
    att.resize(sz(c.n_heads * c.head_dim));
    tmp.resize(sz(c.dim));
    gate.resize(sz(c.ffn_dim));
    up.resize(sz(c.ffn_dim));
    cos_sin.resize(sz(c.head_dim));
    cap_n = n;
  }
};

namespace {

// Task i of n * per_row (per_row = n_heads / heads_per_task): position i / per_row, then
// heads_per_task consecutive heads. With heads_per_task = group, the query heads that share a kv head run one
// after another on one thread (its keys and values come from memory once, then from L1); with
// 1 (too few tasks otherwise, e.g. decoding one sequence of a model with one kv head), heads
// spread over the threads. Threads take tasks round-robin, which spreads the causal triangle's
// long and short rows evenly. Each head's result is the same either way.
void run_attention_tasks(const ForwardScratch::AttentionJob& j, int thread) {
  float* scores = j.scores + static_cast<size_t>(thread) * j.score_cap;
  const int64_t per_row = j.n_heads / j.heads_per_task;
  const int64_t tasks = j.n * per_row;
  for (int64_t t = thread; t < tasks; t += j.n_threads) {
    const int64_t i = t / per_row, h0 = t % per_row * j.heads_per_task;
    const int32_t seq = j.row_seq[i];
    const DType type = j.kv_type[seq];
    const size_t elem = type == DType::F32 ? 4 : 2;
    const size_t kv_off = static_cast<size_t>(h0 / j.group * j.head_dim) * elem;  // GQA
    const auto* kb = static_cast<const uint8_t*>(j.k0[seq]) + kv_off;
    const auto* vb = static_cast<const uint8_t*>(j.v0[seq]) + kv_off;
    for (int64_t h = h0; h < h0 + j.heads_per_task; ++h)
      attention_head(j.q + i * j.q_dim + h * j.head_dim, kb, vb, j.stride, type, j.row_pos[i] + 1,
                     j.head_dim, j.scale, scores, j.att + i * j.q_dim + h * j.head_dim);
  }
}

}  // namespace

// A thread's own context for sequence-split batches: a pool of one (products run inline on the
// calling thread) and its own scratch.
struct ForwardLane {
  ThreadPool pool{1};
  ForwardScratch scratch;
  explicit ForwardLane(const ModelConfig& c) : scratch(c) {}
};

namespace {

// Bytes of weight matrices one decode step reads (the token embedding only as the output head).
size_t step_weight_bytes(const ModelWeights& w) {
  const auto bytes = [](const WeightView& v) { return static_cast<size_t>(v.rows) * v.row_stride(); };
  size_t sum = bytes(w.output);
  for (const LayerWeights& L : w.layers)
    for (const WeightView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) sum += bytes(*v);
  return sum;
}

}  // namespace

Transformer::Transformer(const Model& model, ThreadPool& pool)
    : model_(model),
      pool_(pool),
      s_(std::make_unique<ForwardScratch>(model.config())),
      split_by_sequence_(pool.size() > 1 && step_weight_bytes(model.weights()) <= kSequenceSplitMaxWeightBytes) {
  // Made here rather than on first use: forward_lane() runs lanes on several threads at once.
  if (split_by_sequence_)
    for (int t = 0; t < pool.size(); ++t) lanes_.push_back(std::make_unique<ForwardLane>(model.config()));
}

Transformer::~Transformer() = default;

const std::vector<float>& Transformer::last_hidden() const {
  if (!s_->have_hidden) throw Error("last_hidden: no forward pass has run yet");
  return s_->hidden;
}

std::vector<float> Transformer::forward(const std::vector<int32_t>& tokens, KvCache& kv, bool all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  std::vector<float> logits(static_cast<size_t>((all_logits ? n : 1) * model_.config().n_vocab));
  forward(tokens.data(), n, kv, logits.data(), all_logits);
  return logits;
}

void Transformer::forward(const int32_t* tokens, int64_t n, KvCache& kv, float* logits, bool all_logits) {
  if (n < 1) throw Error("forward: no tokens to process");
  if (kv.size() + n > kv.capacity())
    throw Error("forward: KV cache overflow: " + std::to_string(kv.size()) + " positions held + " +
                std::to_string(n) + " new > capacity " + std::to_string(kv.capacity()));
  const int64_t n_vocab = model_.config().n_vocab;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t m = std::min(kChunk, n - start);
    SequenceBatch b;
    b.tokens = tokens + start;
    b.n = m;
    b.kv = &kv;
    b.all_logits = all_logits;
    if (all_logits) b.logits = logits + start * n_vocab;
    else if (start + m == n) b.logits = logits;
    forward_batch(std::span<const SequenceBatch>(&b, 1));
  }
}

void Transformer::validate(std::span<const SequenceBatch> seqs) const {
  const ModelConfig& c = model_.config();
  if (seqs.empty()) throw Error("forward: no sequences to process");
  for (size_t si = 0; si < seqs.size(); ++si) {
    const SequenceBatch& b = seqs[si];
    if (b.n < 1 || !b.tokens || !b.kv) throw Error("forward: sequence " + std::to_string(si) + " has no tokens or no cache");
    const KvCache& kv = *b.kv;
    if (kv.n_layers() != c.n_layers || kv.row_values() != c.n_kv_heads * c.head_dim)
      throw Error("forward: the KV cache was made for a different model shape");
    if (kv.size() + b.n > kv.capacity())
      throw Error("forward: KV cache overflow: " + std::to_string(kv.size()) + " positions held + " +
                  std::to_string(b.n) + " new > capacity " + std::to_string(kv.capacity()));
    for (size_t sj = 0; sj < si; ++sj)
      if (seqs[sj].kv == b.kv) throw Error("forward: the same KV cache appears twice in one batch");
    for (int64_t i = 0; i < b.n; ++i)
      if (b.tokens[i] < 0 || b.tokens[i] >= c.n_vocab)
        throw Error("forward: token id " + std::to_string(b.tokens[i]) + " at index " + std::to_string(i) +
                    " is out of range [0, " + std::to_string(c.n_vocab) + ")");
  }
}

void Transformer::forward_lane(int lane, std::span<const SequenceBatch> seqs) {
  if (!split_by_sequence_ || lane < 0 || lane >= static_cast<int>(lanes_.size()))
    throw Error("forward_lane: lane " + std::to_string(lane) + " does not exist (this model has " +
                std::to_string(lanes_.size()) + ")");
  validate(seqs);
  ForwardLane& l = *lanes_[static_cast<size_t>(lane)];
  forward_rows(seqs, l.pool, l.scratch);
}

std::vector<int> plan_sequence_lanes(std::span<const int64_t> rows, int threads) {
  const size_t n = rows.size(), T = static_cast<size_t>(std::max(threads, 1));
  if (T < 2 || n < T) return {};
  int64_t total = 0, longest = 0;
  for (int64_t r : rows) total += r, longest = std::max(longest, r);
  std::vector<int> lane(n);
  if (longest <= kSequenceSplitMaxRows) {
    // Decode steps: contiguous groups of about total / T rows each.
    if (n < 2 * T) return {};
    size_t t = 0;
    int64_t acc = 0;
    for (size_t i = 0; i < n; ++i) {
      lane[i] = static_cast<int>(t);
      acc += rows[i];
      if (t + 1 < T && acc * static_cast<int64_t>(T) >= static_cast<int64_t>(t + 1) * total) ++t;
    }
    return lane;
  }
  // Prefill chunks among them: the longest first, each to the lane with the fewest rows so far,
  // if that leaves no lane more than 40% over the mean. On these models a chunk's products on
  // one thread take 1.2x-1.55x the time per row that both threads take on one product (the
  // hand-offs between the cores at every product cost that much), so even uneven lanes win:
  // a batch of 2 prompts of 52 tokens and 8 decoding sequences, 2 threads, in-process
  // alternation: slm-brown-small-1m 2.33 -> 1.24 ms, slm-brown-6m 8.1 -> 5.4, s15m-q8_0 5.3 ->
  // 3.9, slm-brown-large-10m 12.5 -> 9.1; 3 prompts of 40 (lanes of 80 and 48 rows) 1.17x-1.72x;
  // 1 prompt of 52 with 8 (73% over the mean) 1.1x-1.3x on the three smaller models but 0.89x
  // on the 10 M one, hence the bound.
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a] > rows[b]; });
  std::vector<int64_t> load(T, 0);
  for (size_t i : order) {
    const size_t t = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    lane[i] = static_cast<int>(t);
    load[t] += rows[i];
  }
  const int64_t most = *std::max_element(load.begin(), load.end());
  if (most * static_cast<int64_t>(T) * 5 > total * 7) return {};
  return lane;
}

bool Transformer::plan_lanes(std::span<const SequenceBatch> seqs) {
  if (!split_by_sequence_) return false;
  lane_rows_.resize(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) lane_rows_[i] = seqs[i].n;
  const std::vector<int> lane = plan_sequence_lanes(lane_rows_, pool_.size());
  if (lane.empty()) return false;
  // Each lane's sequences in their original order, so that the lane holding the batch's last
  // sequence computes it last (last_hidden()).
  const size_t threads = static_cast<size_t>(pool_.size());
  lane_seqs_.clear();
  lane_edges_.assign(threads + 1, 0);
  for (size_t t = 0; t < threads; ++t) {
    lane_edges_[t] = lane_seqs_.size();
    for (size_t i = 0; i < seqs.size(); ++i)
      if (lane[i] == static_cast<int>(t)) lane_seqs_.push_back(seqs[i]);
  }
  lane_edges_[threads] = lane_seqs_.size();
  last_lane_ = static_cast<size_t>(lane.back());
  return true;
}

void Transformer::forward_batch(std::span<const SequenceBatch> seqs) {
  validate(seqs);

  if (!plan_lanes(seqs)) {
    forward_rows(seqs, pool_, *s_);
    return;
  }
  seqs = lane_seqs_;
  // One pointer captured, so the std::function holding the job needs no heap allocation.
  struct Job {
    Transformer* self;
    std::span<const SequenceBatch> seqs;
  } job{this, seqs};
  const Job* jp = &job;
  pool_.run([jp](int t) {
    Transformer& self = *jp->self;
    const size_t a = self.lane_edges_[static_cast<size_t>(t)], b = self.lane_edges_[static_cast<size_t>(t) + 1];
    ForwardLane& lane = *self.lanes_[static_cast<size_t>(t)];
    if (a < b) self.forward_rows(jp->seqs.subspan(a, b - a), lane.pool, lane.scratch);
  });
  // last_hidden() is the last sequence's, which its lane computed last.
  s_->hidden = lanes_[last_lane_]->scratch.hidden;
  s_->have_hidden = true;
}

void Transformer::forward_rows(std::span<const SequenceBatch> seqs, ThreadPool& pool, ForwardScratch& s) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  int64_t rows = 0, max_capacity = 0;
  for (const SequenceBatch& b : seqs) {
    rows += b.n;
    max_capacity = std::max(max_capacity, b.kv->capacity());
  }
  s.reserve(c, rows);
  const int threads = pool.size();
  if (s.score_cap < max_capacity || s.scores.size() < static_cast<size_t>(threads * s.score_cap + 16)) {
    s.score_cap = std::max(s.score_cap, (max_capacity + 15) / 16 * 16);
    s.scores.resize(static_cast<size_t>(threads * s.score_cap + 16));  // + 16: room to align the base
  }
  const size_t n_seqs = seqs.size();
  s.row_seq.resize(static_cast<size_t>(rows));
  s.row_pos.resize(static_cast<size_t>(rows));
  s.seq_k0.resize(n_seqs);
  s.seq_v0.resize(n_seqs);
  s.seq_type.resize(n_seqs);

  const int64_t dim = c.dim, hd = c.head_dim, q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  const bool neox = c.rope_style == RopeStyle::NeoX;

  int64_t attention_positions = 0;  // sum over rows of the positions each attends to
  for (size_t si = 0, r = 0; si < n_seqs; ++si) {
    const SequenceBatch& b = seqs[si];
    const int64_t pos0 = b.kv->size();
    s.seq_type[si] = b.kv->type();
    for (int64_t i = 0; i < b.n; ++i, ++r) {
      s.row_seq[r] = static_cast<int32_t>(si);
      s.row_pos[r] = pos0 + i;
      attention_positions += pos0 + i + 1;
      weight_row(w.token_embd, b.tokens[i], s.x.data() + r * dim);
      rope_cos_sin(pos0 + i, s.inv_freq.data(), hd, s.cos_sin.data() + r * hd);
    }
  }
  const int64_t m = rows;

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];

    // Attention block: x += Wo · attention(rope(Wq·xn), cache ∪ rope(Wk·xn), cache ∪ Wv·xn).
    rmsnorm(s.x.data(), L.attn_norm.data(), m, dim, c.norm_eps, s.xn.data());
    {
      const WeightView qkv[3] = {L.wq, L.wk, L.wv};
      float* const out[3] = {s.q.data(), s.k.data(), s.v.data()};
      matmul_multi(pool, qkv, s.xn.data(), m, out);
    }
    if (!L.bq.empty()) {
      add_bias(s.q.data(), L.bq.data(), m, q_dim);
      add_bias(s.k.data(), L.bk.data(), m, kv_dim);
      add_bias(s.v.data(), L.bv.data(), m, kv_dim);
    }
    for (int64_t i = 0; i < m; ++i) {
      const float* cs = s.cos_sin.data() + i * hd;
      rope(s.q.data() + i * q_dim, c.n_heads, hd, cs, neox);
      rope(s.k.data() + i * kv_dim, c.n_kv_heads, hd, cs, neox);
      // The batch's own keys/values go through the cache (rounded to F16 if it is F16), so
      // that a position attends to exactly what later positions will read back.
      KvCache& kv = *seqs[static_cast<size_t>(s.row_seq[i])].kv;
      store_row(s.k.data() + i * kv_dim, kv.key(l, s.row_pos[i]), kv.type(), kv_dim);
      store_row(s.v.data() + i * kv_dim, kv.value(l, s.row_pos[i]), kv.type(), kv_dim);
    }
    for (size_t si = 0; si < n_seqs; ++si) {
      s.seq_k0[si] = seqs[si].kv->key(l, 0);
      s.seq_v0[si] = seqs[si].kv->value(l, 0);
    }

    ForwardScratch::AttentionJob& j = s.job;
    j = {s.q.data(), s.att.data(), s.row_seq.data(), s.row_pos.data(), s.seq_k0.data(),
         s.seq_v0.data(), s.seq_type.data(), kv_dim, m, c.n_heads, c.n_heads / c.n_kv_heads, hd,
         q_dim, 1.0f / std::sqrt(static_cast<float>(hd)), threads, s.scores_base(), s.score_cap};
    j.heads_per_task = m * c.n_kv_heads >= 2 * threads ? j.group : 1;
    // Multiply-adds: each row and head reads its attended positions' keys and values.
    const int64_t work = attention_positions * c.n_heads * hd * 2;
    if (threads == 1 || work < kSerialAttentionWork) {
      j.n_threads = 1;
      run_attention_tasks(j, 0);
    } else {
      const ForwardScratch::AttentionJob* jp = &j;
      pool.run([jp](int t) { run_attention_tasks(*jp, t); });
    }

    matmul(pool, L.wo, s.att.data(), m, s.tmp.data());
    add_inplace(s.x.data(), s.tmp.data(), m * dim);

    // Feed-forward block: x += W_down · (silu(W_gate·xn) * (W_up·xn)).
    rmsnorm(s.x.data(), L.ffn_norm.data(), m, dim, c.norm_eps, s.xn.data());
    {
      const WeightView gate_up[2] = {L.w_gate, L.w_up};
      float* const out[2] = {s.gate.data(), s.up.data()};
      matmul_multi(pool, gate_up, s.xn.data(), m, out);
    }
    silu_mul(s.gate.data(), s.up.data(), m * c.ffn_dim);
    matmul(pool, L.w_down, s.gate.data(), m, s.tmp.data());
    add_inplace(s.x.data(), s.tmp.data(), m * dim);
  }

  // Output: sequences wanting every position's logits get their rows in one product written in
  // place; those wanting only the last position's are gathered into one product together.
  const int64_t n_vocab = c.n_vocab;
  int64_t n_last = 0;
  const auto wants_last_only = [](const SequenceBatch& b) { return b.logits && !b.all_logits; };
  for (size_t si = 0, r = 0; si < n_seqs; r += seqs[si].n, ++si) {
    const SequenceBatch& b = seqs[si];
    const float* x = s.x.data() + static_cast<int64_t>(r) * dim;
    const float* last = nullptr;  // the normalised last row, once computed
    if (b.hidden || (b.logits && b.all_logits)) {
      float* out = b.hidden ? b.hidden : s.xn.data();
      rmsnorm(x, w.output_norm.data(), b.n, dim, c.norm_eps, out);
      if (b.logits && b.all_logits) matmul(pool, w.output, out, b.n, b.logits);
      last = out + (b.n - 1) * dim;
    }
    if (wants_last_only(b)) {
      s.out_rows.resize(static_cast<size_t>((n_last + 1) * dim));
      float* row = s.out_rows.data() + n_last * dim;
      if (last) std::copy_n(last, dim, row);
      else rmsnorm(x + (b.n - 1) * dim, w.output_norm.data(), 1, dim, c.norm_eps, row);
      last = row;
      ++n_last;
    }
    if (si + 1 == n_seqs) {
      if (last) std::copy_n(last, dim, s.hidden.data());
      else rmsnorm(x + (b.n - 1) * dim, w.output_norm.data(), 1, dim, c.norm_eps, s.hidden.data());
    }
  }
  if (n_last == 1) {
    for (const SequenceBatch& b : seqs)
      if (wants_last_only(b)) matmul(pool, w.output, s.out_rows.data(), 1, b.logits);
  } else if (n_last > 1) {
    s.out_logits.resize(static_cast<size_t>(n_last * n_vocab));
    matmul(pool, w.output, s.out_rows.data(), n_last, s.out_logits.data());
    int64_t k = 0;
    for (const SequenceBatch& b : seqs)
      if (wants_last_only(b)) std::copy_n(s.out_logits.data() + (k++) * n_vocab, n_vocab, b.logits);
  }
  for (const SequenceBatch& b : seqs) b.kv->advance(b.n);
  s.have_hidden = true;
}

}  // namespace slm
