// The measures `slm collab eval` reports for a collaboration strategy run over a set of prompts,
// each output compared with the large model's own greedy continuation of the same prompt (the
// reference):
//   - agreement: the share of the reference's positions where the output has the same token
//     (position i of the output against position i of the reference; an output that stops early
//     counts its missing positions as disagreements). The large model alone scores 1.
//   - prefix: the length of the common prefix of output and reference, as a share of the
//     reference's length (stricter: counts nothing after the first difference).
//   - log-likelihood: the mean log-probability (nats per token) of the output's tokens under the
//     large model, given the prompt and the output so far (how plausible the large model finds it).
//   - large share: tokens (or requests) the large model produced / all tokens (or requests).
//   - speedup: wall-clock time of the large model alone over the strategy's, same prompts, same run.
//   - recovered: (agreement - small's) / (large's - small's), the share of the large model's
//     agreement advantage over the small model that the strategy keeps.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "generate/decode_model.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace slm {

double agreement(std::span<const int32_t> output, std::span<const int32_t> reference);
double prefix_agreement(std::span<const int32_t> output, std::span<const int32_t> reference);

// Mean log p_large(output[i] | prompt, output[0..i)) over the output (0 for an empty output).
// Clears kv and runs one batched forward over prompt + output. Throws slm::Error if they do not
// fit in kv.
double mean_loglik(Transformer& large, KvCache& kv, std::span<const int32_t> prompt,
                   std::span<const int32_t> output);

// Mean negative log-likelihood (nats per token) of a text under any DecodeModel (a model alone or a
// combination such as proxy tuning), fed one token at a time, in consecutive windows of `window`
// tokens: fresh() must return the model with empty caches; the first token of each window is
// context only, every other token is scored given the window so far. Throws slm::Error if the
// text has fewer than 2 tokens or window < 2.
double windowed_nll(const std::function<DecodeModel&()>& fresh, std::span<const int32_t> tokens, int64_t window);

// One row of the results table: a strategy at one setting, summed over all prompts.
struct CollabEvalRow {
  std::string strategy;        // "large", "small", "speculative", "token-cascade", ...
  std::string setting;         // "entropy>2.0", "k=4", "" ...
  double large_share = 0;      // in [0, 1]
  std::string share_unit = "tokens";  // "tokens" or "requests"
  double seconds = 0;          // wall clock over all prompts
  double speedup = 0;          // large alone's seconds / seconds
  double agreement = 0;        // means over prompts
  double prefix = 0;
  double loglik = 0;
  int64_t tokens = 0;          // generated, all prompts
  std::string extra;           // strategy-specific figures ("acceptance 0.61, mean accepted 2.3")
};

// Markdown table of the rows (one header line, one line per row); the "recovered" column needs rows
// named "small" and "large" (else it is left empty).
std::string format_collab_table(const std::vector<CollabEvalRow>& rows);

}  // namespace slm
