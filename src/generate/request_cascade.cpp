#include "generate/request_cascade.h"

#include <sstream>
#include <vector>

#include "core/error.h"
#include "generate/sampler.h"

namespace slm {

std::optional<UncertaintyMetric> RequestScore::parse(std::string_view name) {
  if (name == "nll") return std::nullopt;
  if (name == "maxprob" || name == "margin" || name == "entropy") return parse_uncertainty_metric(name);
  throw Error("unknown request score '" + std::string(name) + "' (expected nll, maxprob, margin or entropy)");
}

std::string RequestScore::name() const { return metric ? uncertainty_metric_name(*metric) : "nll"; }

bool RequestScore::escalates(double s) const {
  return metric ? crosses_threshold(*metric, s, threshold) : s > threshold;
}

std::string RequestScore::describe() const {
  std::ostringstream os;
  const bool above = !metric || *metric == UncertaintyMetric::kEntropy;
  os << name() << (above ? ">" : "<") << threshold;
  return os.str();
}

double sequence_score(const RequestScore& score, std::span<const std::vector<float>> rows,
                      std::span<const int32_t> tokens) {
  if (rows.size() < tokens.size())
    throw Error("request cascade: " + std::to_string(rows.size()) + " logits rows for " +
                std::to_string(tokens.size()) + " tokens");
  double sum = 0.0;
  if (!score.metric) {
    if (tokens.empty()) return 0.0;
    for (size_t k = 0; k < tokens.size(); ++k) {
      const std::vector<float> lsm = log_softmax(rows[k]);
      if (tokens[k] < 0 || static_cast<size_t>(tokens[k]) >= lsm.size())
        throw Error("request cascade: token id " + std::to_string(tokens[k]) + " outside the vocabulary");
      sum -= lsm[static_cast<size_t>(tokens[k])];
    }
    return sum / static_cast<double>(tokens.size());
  }
  if (rows.empty()) return 0.0;
  for (const auto& row : rows) sum += token_uncertainty(row).get(*score.metric);
  return sum / static_cast<double>(rows.size());
}

RequestCascadeResult request_cascade(DecodeModel& small, DecodeModel& large,
                                     std::span<const int32_t> prompt, const GenerateOptions& options,
                                     const RequestScore& score, const TextCallback& on_text) {
  RequestCascadeResult out;
  std::vector<std::vector<float>> rows;  // [steps][n_vocab] small model's raw logits
  out.small = generate(small, prompt, options, {},
                       [&](std::span<const float> row) { rows.emplace_back(row.begin(), row.end()); });
  out.score = sequence_score(score, rows, out.small.tokens);
  out.large_answered = score.escalates(out.score);
  if (out.large_answered) {
    out.result = generate(large, prompt, options, on_text);
  } else {
    out.result = out.small;
    if (on_text && !out.result.text.empty() && !on_text(out.result.text)) out.result.stop_reason = "cancelled";
  }
  return out;
}

}  // namespace slm
