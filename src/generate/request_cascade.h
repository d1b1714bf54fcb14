// Request-level cascade (AdaptiveLog style): the small model answers the whole request; if its
// answer looks uncertain, the request is generated again, from scratch, by the large model.
//
// Sequence score of the small model's answer (higher or lower = unsure as for the token metrics):
//   nll      mean over the generated tokens of -log p_S(token | history), p_S the small model's raw
//            distribution (before penalties and sampling filters); escalate when score > t.
//            An answer with no tokens (immediate EOG, or max_tokens 0) scores 0.
//   maxprob, margin, entropy
//            mean of that per-token uncertainty (uncertainty.h) over every decoding step, the step
//            that chose an end-of-generation token included; escalate as the token metric does
//            (maxprob < t, margin < t, entropy > t). With max_tokens 0 there is no step: score 0.
// Streaming: the small answer cannot be shown before it is judged, so on_text receives the
// accepted small answer in one piece once it is done, or the large model's answer as it streams.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "generate/decode_model.h"
#include "generate/generator.h"
#include "generate/uncertainty.h"

namespace slm {

struct RequestScore {
  // nullopt: mean negative log-likelihood of the chosen tokens; else the mean of that metric.
  std::optional<UncertaintyMetric> metric;
  double threshold = 0.0;
  // "nll" | "maxprob" | "margin" | "entropy"; throws slm::Error otherwise.
  static std::optional<UncertaintyMetric> parse(std::string_view name);
  std::string name() const;      // "nll", "entropy", ...
  std::string describe() const;  // "nll>2.5", "maxprob<0.4", ...
  bool escalates(double score) const;
};

struct RequestCascadeResult {
  GenerateResult result;    // the answer returned (small or large)
  bool large_answered = false;
  double score = 0.0;       // the small answer's sequence score
  GenerateResult small;     // the small model's answer, also when it was replaced
};

// Sequence score of one generated answer from the raw logits rows of its steps (rows[k] is the
// step that chose tokens[k]; rows may hold one more row, the step that chose EOG).
double sequence_score(const RequestScore& score, std::span<const std::vector<float>> rows,
                      std::span<const int32_t> tokens);

// small and large must be fresh (or hold the same history): the prompt is fed to each. The large
// model is only fed when the score escalates. Options apply to both runs (same seed).
RequestCascadeResult request_cascade(DecodeModel& small, DecodeModel& large,
                                     std::span<const int32_t> prompt, const GenerateOptions& options,
                                     const RequestScore& score, const TextCallback& on_text = {});

}  // namespace slm
