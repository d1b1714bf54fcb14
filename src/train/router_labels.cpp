#include "train/router_labels.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "model/token_router.h"

namespace slm {
namespace {

int32_t argmax_row(const std::vector<float>& row) {
  // Lowest id on ties, as generate/sampler.h's argmax (model/.. train/ may not include generate/).
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

}  // namespace

const char* router_label_rule_name(RouterLabelRule rule) {
  return rule == RouterLabelRule::kDisagree ? "disagree" : "bigram-rejoin";
}

RouterLabelRule parse_router_label_rule(const std::string& name) {
  if (name == "bigram-rejoin") return RouterLabelRule::kBigramRejoin;
  if (name == "disagree") return RouterLabelRule::kDisagree;
  throw Error("unknown router label rule '" + name + "' (expected bigram-rejoin or disagree)");
}

bool continuations_diverge(std::span<const int32_t> reference, std::span<const int32_t> alternative) {
  std::set<std::pair<int32_t, int32_t>> bigrams;
  for (size_t i = 0; i + 1 < reference.size(); ++i) bigrams.insert({reference[i], reference[i + 1]});
  for (size_t i = 0; i + 1 < alternative.size(); ++i)
    if (bigrams.count({alternative[i], alternative[i + 1]})) return false;
  return true;
}

int64_t RouterLabelSet::disagreements() const {
  return std::count_if(positions.begin(), positions.end(), [](const RouterPosition& p) { return p.disagree; });
}

int64_t RouterLabelSet::divergent() const {
  return std::count_if(positions.begin(), positions.end(), [](const RouterPosition& p) { return p.label == 1; });
}

std::vector<uint8_t> RouterLabelSet::labels() const {
  std::vector<uint8_t> y(positions.size());
  for (size_t i = 0; i < positions.size(); ++i) y[i] = positions[i].label;
  return y;
}

void label_positions(Transformer& small, Transformer& large, const std::vector<std::vector<int32_t>>& prompts,
                     const RouterLabelParams& params, RouterLabelSet& out, const LabelProgress& progress) {
  const ModelConfig& sc = small.model().config();
  const ModelConfig& lc = large.model().config();
  if (params.tokens < 1) throw Error("router labels: tokens per prompt must be >= 1");
  if (params.horizon < 2) throw Error("router labels: the horizon must be >= 2 tokens (a bigram)");
  if (sc.n_vocab != lc.n_vocab)
    throw Error("router labels: the small and large models have different vocabulary sizes");
  const int64_t F = router_feature_count(sc.dim, params.top_k);
  if (out.n_features == 0) out.n_features = F;
  if (out.n_features != F) throw Error("router labels: appending to a set with another feature count");

  const int64_t N = params.tokens, m = params.horizon;
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    const std::vector<int32_t>& prompt = prompts[pi];
    const int64_t P = static_cast<int64_t>(prompt.size());
    if (P == 0) throw Error("router labels: prompt " + std::to_string(pi + 1) + " is empty");
    // Large: prompt + reference (N + m, the last never fed) + fork (<= m); small: prompt + N.
    const int64_t need_large = P + N + m, need_small = P + N;
    for (const auto& [c, need, role] : {std::tuple{&lc, need_large, "large"}, std::tuple{&sc, need_small, "small"}})
      if (c->ctx_len > 0 && need > c->ctx_len)
        throw Error("router labels: prompt " + std::to_string(pi + 1) + " has " + std::to_string(P) +
                    " tokens; with -n " + std::to_string(N) + " and --horizon " + std::to_string(m) + " the " +
                    role + " model needs " + std::to_string(need) + " positions, more than its context of " +
                    std::to_string(c->ctx_len));

    // 1. Reference path y: N + m greedy tokens of the large model.
    KvCache lkv(lc, need_large);
    std::vector<int32_t> y;
    y.reserve(static_cast<size_t>(N + m));
    std::vector<float> row = large.forward(prompt, lkv);
    while (static_cast<int64_t>(y.size()) < N + m) {
      y.push_back(argmax_row(row));
      if (static_cast<int64_t>(y.size()) < N + m) row = large.forward({y.back()}, lkv);
    }
    int64_t lfed = static_cast<int64_t>(y.size()) - 1;  // reference tokens in the large cache

    // 2-3. Teacher-forced small model along y; fork the large model where they disagree.
    KvCache skv(sc, need_small);
    std::vector<float> srow = small.forward(prompt, skv);
    for (int64_t t = 0; t < N; ++t) {
      if (t > 0) srow = small.forward({y[t - 1]}, skv);
      RouterPosition p;
      p.prompt = static_cast<int64_t>(pi);
      p.pos = t;
      p.large_token = y[t];
      p.small_token = argmax_row(srow);
      p.disagree = p.small_token != p.large_token;
      const size_t off = out.features.size();
      out.features.resize(off + static_cast<size_t>(F));
      router_features(srow, small.last_hidden(), params.top_k,
                      std::span<float>(out.features.data() + off, static_cast<size_t>(F)));
      if (p.disagree && params.rule == RouterLabelRule::kDisagree) {
        p.label = 1;
      } else if (p.disagree) {
        // Bring the large cache to exactly prompt + y[0..t): roll back, or feed what is missing.
        if (lfed > t) {
          lkv.truncate(P + t);
        } else if (lfed < t) {
          std::vector<int32_t> missing(y.begin() + lfed, y.begin() + t);
          large.forward(missing, lkv);
        }
        lfed = t;
        int32_t next = p.small_token;
        for (int64_t j = 0; j < m; ++j) {
          const std::vector<float> lrow = large.forward({next}, lkv);
          next = argmax_row(lrow);
          p.alternative.push_back(next);
        }
        lkv.truncate(P + t);
        p.reference.assign(y.begin() + t + 1, y.begin() + t + 1 + m);
        p.label = continuations_diverge(p.reference, p.alternative) ? 1 : 0;
      }
      out.positions.push_back(std::move(p));
    }
    if (progress) progress(static_cast<int64_t>(pi + 1), static_cast<int64_t>(prompts.size()));
  }
}

}  // namespace slm
