// Perplexity of a model on a token sequence over sliding windows, so that models can be compared
// on held-out text (`slm eval`, and training's validation).
//
// Method (the Hugging Face "perplexity of fixed-length models" method):
//   * The sequence tokens[0..N) is cut into windows of at most `ctx` tokens that start every
//     `stride` tokens: window k covers [b_k, e_k) with b_k = k * stride, e_k = min(b_k + ctx, N);
//     the last window is the first one that reaches the end (e_k == N).
//   * Each window is evaluated from an empty KV cache (positions 0..e_k-b_k-1; no BOS is inserted
//     at a window start: the tokens are what they are, a BOS only where the caller put one).
//   * Window k scores the targets t in [max(b_k + 1, e_{k-1}), e_k) (e_{-1} = 0) with the logits
//     of position t-1: the tokens no previous window scored. With stride < ctx every token after
//     the first is therefore scored exactly once, with at least ctx - stride tokens of context
//     (except in the first window, where token t has t tokens of context). With stride == ctx the
//     windows are independent and the first token of each window is not scored (nothing in the
//     window precedes it): N - windows tokens are scored.
//   * NLL of target t = logsumexp(logits[t-1]) - logits[t-1][tokens[t]], computed and summed in
//     double precision. mean NLL = total / scored, perplexity = exp(mean NLL).
//
// llama.cpp's llama-perplexity differs: it cuts the text into non-overlapping chunks of ctx tokens,
// puts BOS at the start of each, and scores only the second half of each chunk, so every scored
// token has at least ctx/2 tokens of context but half the tokens are never scored. Numbers from
// the two tools are comparable in spirit, not digit for digit.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.h"

namespace slm {

struct PerplexityOptions {
  int64_t ctx = 512;      // window length in tokens, 2 <= ctx <= the model's context (if known)
  int64_t stride = 0;     // tokens between window starts, 1 <= stride <= ctx; 0 = ctx / 2
  int64_t batch = 0;      // positions per forward call (bounds the [batch, n_vocab] logits
                          // buffer); 0 = min(ctx, 512)
  DType kv_type = DType::F32;
  bool keep_token_nll = false;  // fill PerplexityResult::token_nll
};

struct PerplexityResult {
  int64_t tokens = 0;         // length of the evaluated sequence
  int64_t scored = 0;         // targets scored
  int64_t windows = 0;
  double total_nll = 0;       // nats, summed over scored targets
  double mean_nll = 0;        // nats per scored token
  double perplexity = 0;      // exp(mean_nll)
  double seconds = 0;         // wall time of the forward passes and scoring
  // Per target token t (index t of the input), its NLL in nats, or NaN where not scored (t = 0;
  // window starts when stride == ctx). Only when keep_token_nll.
  std::vector<double> token_nll;
};

// Called after each window with the result so far (windows = total windows; scored and total_nll
// so far) and the number of windows done.
using PerplexityProgress = std::function<void(const PerplexityResult& so_far, int64_t windows_done)>;

// Number of windows the method above uses for n tokens (n >= 2, valid ctx/stride).
int64_t perplexity_window_count(int64_t n, int64_t ctx, int64_t stride);

// Evaluates `tokens` as described above. Throws slm::Error if there are fewer than 2 tokens, ctx
// < 2 or larger than the model's context length (when the model states one), stride outside
// [1, ctx], batch < 0, or a token id is out of range.
PerplexityResult evaluate_perplexity(Transformer& tf, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opt, const PerplexityProgress& progress = {});

// NLL in nats of `target` under one row of logits [n_vocab], with a double-precision log-sum-exp.
double token_nll(const float* logits, int64_t n_vocab, int32_t target);

}  // namespace slm
