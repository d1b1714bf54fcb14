#include "generate/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "model/kv_cache.h"

namespace slm {

double token_nll(const float* logits, int64_t n_vocab, int32_t target) {
  float mx = logits[0];
  for (int64_t v = 1; v < n_vocab; ++v) mx = std::max(mx, logits[v]);
  double sum = 0;
  for (int64_t v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  return static_cast<double>(mx) + std::log(sum) - static_cast<double>(logits[target]);
}

int64_t perplexity_window_count(int64_t n, int64_t ctx, int64_t stride) {
  // Windows start at 0, stride, 2*stride, ... up to the first whose end reaches n.
  if (n <= ctx) return 1;
  return (n - ctx + stride - 1) / stride + 1;
}

namespace {

void check_options(const Transformer& tf, int64_t n, const PerplexityOptions& opt) {
  if (n < 2)
    throw Error("perplexity needs at least 2 tokens (one to predict from, one to score), got " + std::to_string(n));
  const int64_t model_ctx = tf.model().config().ctx_len;
  if (opt.ctx < 2) throw Error("--ctx must be at least 2 tokens, got " + std::to_string(opt.ctx));
  if (model_ctx > 0 && opt.ctx > model_ctx)
    throw Error("--ctx " + std::to_string(opt.ctx) + " is larger than the model's context length (" +
                std::to_string(model_ctx) + ")");
  if (opt.stride < 0 || opt.stride > opt.ctx)
    throw Error("--stride must be between 1 and --ctx (" + std::to_string(opt.ctx) + "), got " +
                std::to_string(opt.stride));
  if (opt.batch < 0) throw Error("--batch must be >= 0 (0 = automatic), got " + std::to_string(opt.batch));
}

}  // namespace

PerplexityResult evaluate_perplexity(Transformer& tf, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opt, const PerplexityProgress& progress) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  check_options(tf, n, opt);
  const int64_t V = tf.model().config().n_vocab;
  // Ids are checked up front so that a bad one fails before minutes of evaluation.
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= V)
      throw Error("token " + std::to_string(i) + " has id " + std::to_string(tokens[i]) +
                  ", outside the model's vocabulary [0, " + std::to_string(V) + ")");
  const int64_t ctx = opt.ctx;
  const int64_t stride = opt.stride == 0 ? std::max<int64_t>(1, ctx / 2) : opt.stride;
  const int64_t batch = opt.batch == 0 ? std::min<int64_t>(ctx, 512) : std::min(opt.batch, ctx);

  PerplexityResult r;
  r.tokens = n;
  r.windows = perplexity_window_count(n, ctx, stride);
  if (opt.keep_token_nll) r.token_nll.assign(static_cast<size_t>(n), std::numeric_limits<double>::quiet_NaN());

  const auto t0 = std::chrono::steady_clock::now();
  KvCache kv(tf.model().config(), std::min(ctx, n), opt.kv_type);
  std::vector<float> logits(static_cast<size_t>(batch * V));  // [batch, n_vocab]
  int64_t prev_end = 0;
  for (int64_t w = 0; w < r.windows; ++w) {
    const int64_t begin = w * stride, end = std::min(begin + ctx, n);
    const int64_t first_target = std::max(begin + 1, prev_end);
    kv.clear();
    // Feed the window in chunks of `batch` positions; position p (absolute) predicts p + 1.
    for (int64_t p0 = begin; p0 < end; p0 += batch) {
      const int64_t m = std::min(batch, end - p0);
      // Positions whose logits are not needed (before first_target - 1, or the window's last)
      // still go through the forward pass for their keys/values.
      tf.forward(tokens.data() + p0, m, kv, logits.data(), /*all_logits=*/true);
      for (int64_t i = 0; i < m; ++i) {
        const int64_t target = p0 + i + 1;
        if (target < first_target || target >= end) continue;
        const double nll = token_nll(logits.data() + i * V, V, tokens[static_cast<size_t>(target)]);
        r.total_nll += nll;
        ++r.scored;
        if (opt.keep_token_nll) r.token_nll[static_cast<size_t>(target)] = nll;
      }
    }
    prev_end = end;
    if (progress) progress(r, w + 1);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.mean_nll = r.scored > 0 ? r.total_nll / static_cast<double>(r.scored) : 0.0;
  r.perplexity = std::exp(r.mean_nll);
  return r;
}

}  // namespace slm
