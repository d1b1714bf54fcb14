#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <string>

#include "core/error.h"

namespace slm {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Candidate order: larger logit first, lower id first on ties (so results never depend on the
// order std::nth_element happens to leave equal elements in).
bool before(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

void check(bool ok, const std::string& what) {
  if (!ok) throw Error("sampler: " + what);
}

}  // namespace

void SamplerParams::validate() const {
  check(std::isfinite(temperature), "temperature must be finite (<= 0 means greedy), got " + std::to_string(temperature));
  check(top_k >= 0, "top_k must be >= 0 (0 = off), got " + std::to_string(top_k));
  check(top_p > 0.0f && top_p <= 1.0f, "top_p must be in (0, 1], got " + std::to_string(top_p));
  check(min_p >= 0.0f && min_p <= 1.0f, "min_p must be in [0, 1], got " + std::to_string(min_p));
  check(std::isfinite(repeat_penalty) && repeat_penalty > 0.0f,
        "repeat_penalty must be finite and > 0 (1 = off), got " + std::to_string(repeat_penalty));
  check(repeat_last_n >= -1,
        "repeat_last_n must be >= -1 (-1 = whole history, 0 = off), got " +
            std::to_string(repeat_last_n));
  check(std::isfinite(frequency_penalty),
        "frequency_penalty must be finite, got " + std::to_string(frequency_penalty));
  check(std::isfinite(presence_penalty),
        "presence_penalty must be finite, got " + std::to_string(presence_penalty));
}

void apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                     const SamplerParams& p) {
  const bool active =
      p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
  if (!active || p.repeat_last_n == 0 || history.empty()) return;
  size_t window = history.size();
  if (p.repeat_last_n > 0) window = std::min(window, static_cast<size_t>(p.repeat_last_n));
  // Count occurrences by sorting the (short) window rather than with a vocab-sized table.
  std::vector<int32_t> ids(history.end() - window, history.end());
  std::sort(ids.begin(), ids.end());
  const auto n_vocab = static_cast<int64_t>(logits.size());
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j < ids.size() && ids[j] == ids[i]) ++j;
    const int32_t id = ids[i];
    const auto count = static_cast<float>(j - i);
    if (id < 0 || id >= n_vocab)
      throw Error("sampler: history token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(n_vocab) + ")");
    float& l = logits[id];
    // Applied once per distinct token, whatever its count (as llama.cpp does).
    if (p.repeat_penalty != 1.0f) l = l > 0.0f ? l / p.repeat_penalty : l * p.repeat_penalty;
    l -= count * p.frequency_penalty + p.presence_penalty;
    i = j;
  }
}

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) return -1;
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best] || (std::isnan(logits[best]) && !std::isnan(logits[i]))) best = i;
  return static_cast<int32_t>(best);
}

std::vector<float> log_softmax(std::span<const float> logits) {
  std::vector<float> out(logits.size());
  if (logits.empty()) return out;
  const float m = logits[argmax(logits)];
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - m);
  const double log_z = m + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i)
    out[i] = static_cast<float>(static_cast<double>(logits[i]) - log_z);
  return out;
}

std::vector<std::pair<int32_t, float>> top_logits(std::span<const float> logits, int k) {
  std::vector<std::pair<int32_t, float>> out;
  if (k <= 0 || logits.empty()) return out;
  const size_t kk = std::min(static_cast<size_t>(k), logits.size());
  // Min-heap of the best kk seen so far: its top is the worst kept entry.
  using Entry = std::pair<float, int32_t>;
  auto worse_on_top = [](const Entry& a, const Entry& b) { return before(a, b); };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse_on_top)> heap(worse_on_top);
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    Entry e{logits[i], static_cast<int32_t>(i)};
    if (heap.size() < kk) {
      heap.push(e);
    } else if (before(e, heap.top())) {
      heap.pop();
      heap.push(e);
    }
  }
  out.resize(heap.size());
  for (size_t i = heap.size(); i-- > 0;) {
    out[i] = {heap.top().second, heap.top().first};
    heap.pop();
  }
  return out;
}

Sampler::Sampler(const SamplerParams& params) : params_(params), rng_(params.seed) {
  params_.validate();
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

void Sampler::apply_penalties(std::span<float> logits, std::span<const int32_t> history) {
  slm::apply_penalties(logits, history, params_);
}

bool Sampler::any_filter(int64_t n) const {
  return (params_.top_k > 0 && params_.top_k < n) || params_.top_p < 1.0f || params_.min_p > 0.0f;
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
  check(!logits.empty(), "empty logits row");
  apply_penalties(logits, history);
  const int32_t best = argmax(logits);
  const float max_logit = logits[best];
  check(max_logit > kNegInf, "every logit is -inf or NaN: no token can be sampled");
  if (params_.temperature <= 0.0f) return best;

  const auto n = static_cast<int64_t>(logits.size());
  const float inv_t = 1.0f / params_.temperature;

  if (!any_filter(n)) {
    // No filter: draw from the whole row in id order, nothing to sort; exp runs once per logit.
    weights_.resize(static_cast<size_t>(n));
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float l = logits[i];
      weights_[i] = l > kNegInf ? std::exp((l - max_logit) * inv_t) : 0.0f;
      sum += weights_[i];
    }
    const double target = uniform() * sum;
    double acc = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      acc += weights_[i];
      if (weights_[i] > 0.0f && acc > target) return static_cast<int32_t>(i);
    }
    return best;  // rounding left target at the very end: fall back to the arg max
  }

  const size_t keep = filtered_candidates(logits, max_logit);
  // Step 7: temperature, softmax over the kept set, draw.
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i) sum += std::exp((cand_[i].first - max_logit) * inv_t);
  const double target = uniform() * sum;
  double acc = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    acc += std::exp((cand_[i].first - max_logit) * inv_t);
    if (acc > target) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

std::vector<std::pair<int32_t, float>> Sampler::distribution(std::span<float> logits,
                                                             std::span<const int32_t> history) {
  // Mirrors sample() step by step: the same candidate set and the same float weights, so that the
  // probabilities are exactly those sample()'s draw uses (up to the final division).
  check(!logits.empty(), "empty logits row");
  apply_penalties(logits, history);
  const int32_t best = argmax(logits);
  const float max_logit = logits[best];
  check(max_logit > kNegInf, "every logit is -inf or NaN: no token can be sampled");
  std::vector<std::pair<int32_t, float>> out;
  if (params_.temperature <= 0.0f) {
    out.emplace_back(best, 1.0f);
    return out;
  }
  const auto n = static_cast<int64_t>(logits.size());
  const float inv_t = 1.0f / params_.temperature;
  double sum = 0.0;
  if (!any_filter(n)) {
    for (int64_t i = 0; i < n; ++i) {
      const float l = logits[i];
      const float w = l > kNegInf ? std::exp((l - max_logit) * inv_t) : 0.0f;
      if (w > 0.0f) out.emplace_back(static_cast<int32_t>(i), w);
      sum += w;
    }
  } else {
    const size_t keep = filtered_candidates(logits, max_logit);
    for (size_t i = 0; i < keep; ++i) {
      const float w = std::exp((cand_[i].first - max_logit) * inv_t);
      if (w > 0.0f) out.emplace_back(cand_[i].second, w);
      sum += w;
    }
  }
  for (auto& e : out) e.second = static_cast<float>(e.second / sum);
  return out;
}

int32_t Sampler::draw(std::span<const std::pair<int32_t, float>> dist) {
  double sum = 0.0;
  for (const auto& [id, w] : dist) {
    // The message is built only on failure: this runs once per vocabulary entry.
    if (!(w >= 0.0f && std::isfinite(w))) check(false, "draw: weights must be finite and >= 0, got " + std::to_string(w));
    sum += w;
  }
  check(sum > 0.0, "draw: the weights sum to 0: no token can be drawn");
  const double target = uniform() * sum;
  double acc = 0.0;
  int32_t last = -1;
  for (const auto& [id, w] : dist) {
    if (w <= 0.0f) continue;
    acc += w;
    last = id;
    if (acc > target) return id;
  }
  return last;  // rounding left target at the very end
}

int32_t Sampler::draw_weights(std::span<const float> weights) {
  double sum = 0.0;
  for (float w : weights) {
    // The message is built only on failure: this runs once per vocabulary entry.
    if (!(w >= 0.0f && std::isfinite(w))) check(false, "draw: weights must be finite and >= 0, got " + std::to_string(w));
    sum += w;
  }
  check(sum > 0.0, "draw: the weights sum to 0: no token can be drawn");
  const double target = uniform() * sum;
  double acc = 0.0;
  int32_t last = -1;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0.0f) continue;
    acc += weights[i];
    last = static_cast<int32_t>(i);
    if (acc > target) return last;
  }
  return last;
}

size_t Sampler::filtered_candidates(std::span<const float> logits, float max_logit) {
  const auto n = static_cast<int64_t>(logits.size());
  const bool top_k_on = params_.top_k > 0 && params_.top_k < n;
  const bool top_p_on = params_.top_p < 1.0f;
  const bool min_p_on = params_.min_p > 0.0f;
  // Unnormalised probability at temperature 1, in (0, 1]. Single-precision exp is plenty for
  // sampling and several times cheaper over a 150k vocabulary; sums are kept in double.
  auto weight = [max_logit](float l) { return std::exp(l - max_logit); };

  // Gather the candidates steps 4 and 6 keep, in no particular order, and z, the normaliser that
  // top-p sees (sum of weights over the top-k set if top-k is on, else over the whole row).
  // min-p is applied here, before top-p, which gives the same set as the documented order: both
  // keep a prefix of the descending order, and min-p's threshold does not depend on normalisation.
  cand_.clear();
  double z = 0.0;
  const float min_p_floor = min_p_on ? max_logit + std::log(params_.min_p) : kNegInf;
  if (top_k_on) {
    if (params_.top_k <= 1024) {
      // Small k (the usual case): one pass with a k-sized heap, mostly a single compare per
      // logit, instead of materialising n_vocab candidates.
      for (const auto& [id, l] : top_logits(logits, params_.top_k))
        if (l > kNegInf) cand_.emplace_back(l, id);
    } else {
      for (int64_t i = 0; i < n; ++i)
        if (logits[i] > kNegInf) cand_.emplace_back(logits[i], static_cast<int32_t>(i));
      const size_t k = std::min(cand_.size(), static_cast<size_t>(params_.top_k));
      std::nth_element(cand_.begin(), cand_.begin() + (k - 1), cand_.end(), before);
      cand_.resize(k);
    }
    if (top_p_on)
      for (const auto& c : cand_) z += weight(c.first);
    if (min_p_on)
      cand_.erase(std::partition(cand_.begin(), cand_.end(),
                                 [&](const auto& c) { return c.first >= min_p_floor; }),
                  cand_.end());
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float l = logits[i];
      if (!(l > kNegInf)) continue;
      if (top_p_on) z += weight(l);
      if (l >= min_p_floor) cand_.emplace_back(l, static_cast<int32_t>(i));
    }
  }

  // Step 5, top-p: moves the kept tokens to the front.
  return top_p_on ? top_p_prefix(z) : cand_.size();
}

size_t Sampler::top_p_prefix(double z) {
  // The kept set is the shortest prefix of the descending order whose mass reaches top_p * z
  // (the token that crosses it included). Sorting 150k candidates costs milliseconds, so for
  // large sets a histogram of mass by logit finds the bin where the cumulative mass crosses;
  // bins above it are kept whole, only the crossing bin is sorted.
  const double target = static_cast<double>(params_.top_p) * z;
  const float max_logit = std::max_element(cand_.begin(), cand_.end(), [](const auto& a, const auto& b) {
                            return a.first < b.first;
                          })->first;
  auto weight = [max_logit](float l) { return static_cast<double>(std::exp(l - max_logit)); };
  // z was computed relative to the row's max; the candidates hold it (the arg max always
  // survives top-k and min-p), so the two agree.
  auto walk_sorted = [&](size_t begin, size_t end, double cum) {
    std::sort(cand_.begin() + begin, cand_.begin() + end, before);
    for (size_t i = begin; i < end; ++i) {
      cum += weight(cand_[i].first);
      if (cum >= target) return i + 1;
    }
    return end;  // rounding: keep them all
  };
  if (cand_.size() <= 1024) return walk_sorted(0, cand_.size(), 0.0);

  constexpr int kBins = 2048;  // bin 0 holds the largest logits
  float lo = max_logit;
  for (const auto& c : cand_) lo = std::min(lo, c.first);
  const float scale = max_logit > lo ? kBins / (max_logit - lo) : 0.0f;
  auto bin = [&](float l) { return std::min(kBins - 1, static_cast<int>((max_logit - l) * scale)); };
  std::vector<double> mass(kBins, 0.0);
  for (const auto& c : cand_) mass[bin(c.first)] += weight(c.first);
  int b = 0;
  double cum = 0.0;
  while (b < kBins - 1 && cum + mass[b] < target) cum += mass[b++];
  // Tokens of bins above b first, then bin b (sorted and walked), the rest dropped.
  const auto mid = std::partition(cand_.begin(), cand_.end(), [&](const auto& c) { return bin(c.first) < b; });
  const auto end = std::partition(mid, cand_.end(), [&](const auto& c) { return bin(c.first) == b; });
  return walk_sorted(static_cast<size_t>(mid - cand_.begin()), static_cast<size_t>(end - cand_.begin()), cum);
}

}  // namespace slm
