#include "generate/collab_eval.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "generate/sampler.h"

namespace slm {

double agreement(std::span<const int32_t> output, std::span<const int32_t> reference) {
  if (reference.empty()) return 1.0;
  int64_t same = 0;
  for (size_t i = 0; i < reference.size() && i < output.size(); ++i) same += output[i] == reference[i];
  return static_cast<double>(same) / static_cast<double>(reference.size());
}

double prefix_agreement(std::span<const int32_t> output, std::span<const int32_t> reference) {
  if (reference.empty()) return 1.0;
  size_t n = 0;
  while (n < reference.size() && n < output.size() && output[n] == reference[n]) ++n;
  return static_cast<double>(n) / static_cast<double>(reference.size());
}

double mean_loglik(Transformer& large, KvCache& kv, std::span<const int32_t> prompt,
                   std::span<const int32_t> output) {
  if (output.empty()) return 0.0;
  if (prompt.empty()) throw Error("mean_loglik: the prompt is empty");
  std::vector<int32_t> seq(prompt.begin(), prompt.end());
  seq.insert(seq.end(), output.begin(), output.end() - 1);  // the last token predicts nothing we score
  if (static_cast<int64_t>(seq.size()) > kv.capacity())
    throw Error("mean_loglik: prompt + output (" + std::to_string(seq.size()) + " tokens) exceed the context of " +
                std::to_string(kv.capacity()));
  kv.clear();
  const int64_t V = large.model().config().n_vocab;
  std::vector<float> logits(seq.size() * static_cast<size_t>(V));  // [seq, V]
  large.forward(seq.data(), static_cast<int64_t>(seq.size()), kv, logits.data(), true);
  double sum = 0;
  for (size_t i = 0; i < output.size(); ++i) {
    const size_t row = prompt.size() - 1 + i;  // the position whose logits predict output[i]
    const std::vector<float> ls = log_softmax(std::span<const float>(logits.data() + row * V, V));
    sum += ls[output[i]];
  }
  return sum / static_cast<double>(output.size());
}

double windowed_nll(const std::function<DecodeModel&()>& fresh, std::span<const int32_t> tokens, int64_t window) {
  if (window < 2) throw Error("windowed_nll: the window must hold at least 2 tokens, got " + std::to_string(window));
  if (tokens.size() < 2) throw Error("windowed_nll: the text has fewer than 2 tokens");
  double sum = 0;
  int64_t scored = 0;
  std::vector<float> logits;
  for (size_t start = 0; start + 1 < tokens.size(); start += static_cast<size_t>(window)) {
    const size_t end = std::min(tokens.size(), start + static_cast<size_t>(window));
    DecodeModel& m = fresh();
    logits.resize(static_cast<size_t>(m.n_vocab()));
    for (size_t i = start; i + 1 < end; ++i) {
      m.forward(tokens.subspan(i, 1), logits);
      sum -= log_softmax(logits)[tokens[i + 1]];
      ++scored;
    }
  }
  return sum / static_cast<double>(scored);
}

std::string format_collab_table(const std::vector<CollabEvalRow>& rows) {
  std::string out =
      "| strategy | setting | large share | speedup vs large | agreement | recovered | prefix | log-lik (nats/token) | "
      "tokens | seconds | notes |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n";
  const CollabEvalRow *small = nullptr, *large = nullptr;
  for (const auto& r : rows) {
    if (r.strategy == "small") small = &r;
    if (r.strategy == "large") large = &r;
  }
  char buf[512], rec[32];
  for (const auto& r : rows) {
    rec[0] = 0;
    if (small && large && large->agreement > small->agreement)
      std::snprintf(rec, sizeof rec, "%.1f%%",
                    100.0 * (r.agreement - small->agreement) / (large->agreement - small->agreement));
    std::snprintf(buf, sizeof buf, "| %s | %s | %.1f%% %s | %.2fx | %.3f | %s | %.3f | %.3f | %lld | %.2f | %s |\n",
                  r.strategy.c_str(), r.setting.c_str(), 100.0 * r.large_share, r.share_unit.c_str(), r.speedup,
                  r.agreement, rec, r.prefix, r.loglik, static_cast<long long>(r.tokens), r.seconds, r.extra.c_str());
    out += buf;
  }
  return out;
}

}  // namespace slm
