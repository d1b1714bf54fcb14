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
  check(!std::isnan(temperature), "temperature must be a number (<= 0 means greedy)");
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

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
  check(!logits.empty(), "empty logits row");
  apply_penalties(logits, history);
  const int32_t best = argmax(logits);
  const float max_logit = logits[best];
  check(max_logit > kNegInf, "every logit is -inf or NaN: no token can be sampled");
  if (params_.temperature <= 0.0f) return best;

  const auto n = static_cast<int64_t>(logits.size());
  const bool top_k_on = params_.top_k > 0 && params_.top_k < n;
  const bool top_p_on = params_.top_p < 1.0f;
  const bool min_p_on = params_.min_p > 0.0f;
  const double inv_t = 1.0 / params_.temperature;

  if (!top_k_on && !top_p_on && !min_p_on) {
    // No filter: draw from the whole row in id order, nothing to sort.
    double sum = 0.0;
    for (float l : logits)
      if (l > kNegInf) sum += std::exp((static_cast<double>(l) - max_logit) * inv_t);
    const double target = uniform() * sum;
    double acc = 0.0;
    int32_t last = best;
    for (int64_t i = 0; i < n; ++i) {
      if (!(logits[i] > kNegInf)) continue;  // -inf and NaN never win
      const double w = std::exp((static_cast<double>(logits[i]) - max_logit) * inv_t);
      if (w <= 0.0) continue;
      acc += w;
      last = static_cast<int32_t>(i);
      if (acc > target) return last;
    }
    return last;  // rounding left target at the very end
  }

  // Build the sorted candidate prefix cand_[0, m) that steps 4-6 can keep, without sorting the
  // whole vocabulary. z is the softmax normaliser (over exp(l - max_logit)) of the set that top-p
  // sees: the top-k set if top-k is on, else the whole row.
  cand_.clear();
  double z = 0.0;
  const float min_p_floor = min_p_on ? max_logit + std::log(params_.min_p) : kNegInf;
  if (top_k_on) {
    for (int64_t i = 0; i < n; ++i)
      if (logits[i] > kNegInf) cand_.emplace_back(logits[i], static_cast<int32_t>(i));
    const size_t k = std::min(cand_.size(), static_cast<size_t>(params_.top_k));
    std::nth_element(cand_.begin(), cand_.begin() + (k - 1), cand_.end(), before);
    cand_.resize(k);
    std::sort(cand_.begin(), cand_.end(), before);
    for (const auto& c : cand_) z += std::exp(static_cast<double>(c.first) - max_logit);
  } else {
    for (int64_t i = 0; i < n; ++i)
      if (logits[i] > kNegInf) z += std::exp(static_cast<double>(logits[i]) - max_logit);
    if (min_p_on) {
      // min-p bounds what top-p can keep (both keep a prefix of the descending order, and
      // min-p's threshold does not depend on normalisation), so only tokens above the min-p
      // floor need sorting.
      for (int64_t i = 0; i < n; ++i)
        if (logits[i] >= min_p_floor) cand_.emplace_back(logits[i], static_cast<int32_t>(i));
      std::sort(cand_.begin(), cand_.end(), before);
    } else {
      // top-p alone: grow a partially sorted head until it holds top_p of the mass.
      for (int64_t i = 0; i < n; ++i)
        if (logits[i] > kNegInf) cand_.emplace_back(logits[i], static_cast<int32_t>(i));
      size_t k = std::min<size_t>(cand_.size(), 256);
      for (;;) {
        std::nth_element(cand_.begin(), cand_.begin() + (k - 1), cand_.end(), before);
        double head = 0.0;
        for (size_t i = 0; i < k; ++i) head += std::exp(static_cast<double>(cand_[i].first) - max_logit);
        if (head >= params_.top_p * z || k == cand_.size()) break;
        k = std::min(cand_.size(), k * 8);
      }
      cand_.resize(k);
      std::sort(cand_.begin(), cand_.end(), before);
    }
  }

  // Step 5, top-p: keep up to and including the token whose cumulative probability reaches top_p.
  size_t keep = cand_.size();
  if (top_p_on) {
    double cum = 0.0;
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += std::exp(static_cast<double>(cand_[i].first) - max_logit) / z;
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  // Step 6, min-p.
  if (min_p_on) {
    size_t i = 0;
    while (i < keep && cand_[i].first >= min_p_floor) ++i;
    keep = std::max<size_t>(i, 1);
  }

  // Step 7: temperature, softmax over the kept set, draw.
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i)
    sum += std::exp((static_cast<double>(cand_[i].first) - max_logit) * inv_t);
  const double target = uniform() * sum;
  double acc = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    acc += std::exp((static_cast<double>(cand_[i].first) - max_logit) * inv_t);
    if (acc > target) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace slm
