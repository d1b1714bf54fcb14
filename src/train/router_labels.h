// Training labels for the token router (R2R, model/token_router.h): which positions of a text the
// large model should produce because the small model's choice would lead elsewhere.
//
// The rule ("bigram-rejoin"), for each prompt:
//   1. The large model continues the prompt greedily for N + m tokens: the reference path y.
//      (End-of-generation tokens do not stop it: the path is a token sequence, not a reply.)
//   2. At each position t in [0, N), teacher-forced (context = prompt + y[0..t)), the small model
//      picks its arg max s_t; its features there (final hidden state, logits) are recorded.
//   3. s_t == y_t: label 0 (agreement).
//      Otherwise the large model continues greedily for m tokens after context + s_t: the
//      alternative a[0..m). It is compared with the reference continuation r = y[t+1 .. t+1+m):
//      if the two share no token bigram (no pair (u, v) that appears consecutively in both) they
//      never re-join: label 1 ("divergent"); otherwise label 0 ("neutral": a different wording
//      that comes back to the same path, e.g. "a big cat" vs "the big cat").
// Forks share the large model's KV cache: KvCache::truncate rolls back to the fork point.
//
// The other rule ("disagree"): label 1 at every position where s_t != y_t. It is what exact
// agreement with the large model's greedy text needs (a neutral disagreement still shifts every
// later position); no fork is run.
//
// Cost per prompt: N + m large-model steps for the reference, m more per disagreement (bigram-
// rejoin only), N small-model steps.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace slm {

// The pure rule of step 3: true ("divergent", label 1) if reference and alternative share no
// token bigram. Sequences shorter than 2 tokens have no bigram, so they never re-join.
bool continuations_diverge(std::span<const int32_t> reference, std::span<const int32_t> alternative);

enum class RouterLabelRule { kBigramRejoin, kDisagree };

// "bigram-rejoin" / "disagree" (the name recorded in the router file), and back; the parser
// throws slm::Error naming the accepted names.
const char* router_label_rule_name(RouterLabelRule rule);
RouterLabelRule parse_router_label_rule(const std::string& name);

struct RouterLabelParams {
  RouterLabelRule rule = RouterLabelRule::kBigramRejoin;
  int64_t tokens = 64;   // N: labelled positions per prompt
  int64_t horizon = 8;   // m: tokens compared after a disagreement (>= 2)
  int top_k = 8;         // k of the router features
};

// One labelled position.
struct RouterPosition {
  int64_t prompt = 0;         // index of the prompt
  int64_t pos = 0;            // t: index into the reference path
  int32_t large_token = 0;    // y_t
  int32_t small_token = 0;    // s_t
  bool disagree = false;      // s_t != y_t
  uint8_t label = 0;          // 1: the large model should produce it (divergent, or disagree)
  std::vector<int32_t> reference, alternative;  // r and a (bigram-rejoin, when the models disagree)
};

struct RouterLabelSet {
  int64_t n_features = 0;
  std::vector<float> features;          // [n, n_features], the small model's features (raw)
  std::vector<RouterPosition> positions;  // [n]
  int64_t size() const { return static_cast<int64_t>(positions.size()); }
  int64_t disagreements() const;
  int64_t divergent() const;  // positions labelled 1
  std::vector<uint8_t> labels() const;  // [n]
};

// Called after each prompt with (prompts done, prompts in all).
using LabelProgress = std::function<void(int64_t, int64_t)>;

// Labels every prompt (token ids, BOS included if wanted; none empty) and appends to `out`.
// The models must share a vocabulary (check_shared_vocab first). Throws slm::Error if a prompt
// plus N + m tokens exceeds either model's context length, or on bad parameters.
void label_positions(Transformer& small, Transformer& large, const std::vector<std::vector<int32_t>>& prompts,
                     const RouterLabelParams& params, RouterLabelSet& out, const LabelProgress& progress = {});

}  // namespace slm
