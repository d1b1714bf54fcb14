// Picks the next token from a row of logits. One Sampler per sequence: it owns its RNG, so the
// same params (seed included) and the same inputs give the same tokens on every platform
// (std::mt19937_64 is fully specified, and the uniform draw is made from its bits by hand rather
// than by std::uniform_real_distribution, whose algorithm differs between standard libraries).
//
// Order of the steps in Sampler::sample (each step sees the output of the previous one):
//   1. repetition penalty (llama.cpp style) on each distinct token among the last repeat_last_n
//      tokens of history: logit > 0 is divided by repeat_penalty, logit <= 0 multiplied by it;
//   2. frequency/presence penalties (OpenAI style) over the same window:
//      logit -= count * frequency_penalty + (count > 0) * presence_penalty;
//   3. temperature <= 0: greedy, the arg max (lowest id on ties); the remaining steps are skipped;
//   4. top-k: keep the k largest logits (top_k == 0: off);
//   5. top-p: softmax over the kept set, keep the shortest prefix in descending order whose
//      probability mass reaches top_p (the token that crosses top_p is kept; top_p == 1: off);
//   6. min-p: keep tokens with logit >= max_logit + log(min_p), i.e. probability >= min_p times
//      the largest probability (min_p == 0: off);
//      (top-p and min-p each keep a prefix of the descending order, so the code filters by min-p
//      first, which gives the same set and spares sorting a 150k vocabulary; see sampler.cpp)
//   7. temperature: divide the kept logits by temperature, softmax, draw one token.
// At least one token (the arg max) always survives steps 4-6.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace slm {

struct SamplerParams {
  float temperature = 0.8f;     // <= 0: greedy
  int top_k = 40;               // >= 0; 0: off
  float top_p = 0.95f;          // (0, 1]; 1: off
  float min_p = 0.05f;          // [0, 1]; 0: off
  float repeat_penalty = 1.0f;  // > 0; 1: off
  int repeat_last_n = 64;       // window of history the penalties look at; 0: off, -1: all
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;

  // Throws slm::Error naming the field and the expected range.
  void validate() const;
};

class Sampler {
 public:
  // Validates params (throws slm::Error) and seeds the RNG from params.seed.
  explicit Sampler(const SamplerParams& params);

  // logits: [n_vocab], one row of raw model output; modified in place (the penalties of steps 1-2
  // are applied to it; nothing else is written). history: the tokens of the sequence so far
  // (prompt and generated), oldest first; ids outside [0, n_vocab) throw slm::Error.
  // Returns a token id in [0, n_vocab).
  int32_t sample(std::span<float> logits, std::span<const int32_t> history);

  // The exact distribution sample() draws from for the same inputs (steps 1-7 without the draw):
  // (id, probability) pairs with probability > 0, summing to 1 (up to rounding), in no promised
  // order; greedy gives the one pair (arg max, 1). Same arguments and side effect on logits as
  // sample() (penalties applied in place); uses no randomness. For callers that need p(x) itself,
  // e.g. speculative decoding's acceptance rule.
  std::vector<std::pair<int32_t, float>> distribution(std::span<float> logits,
                                                      std::span<const int32_t> history);
  // Draws an id from a distribution such as distribution() returns, with this sampler's RNG
  // (one uniform draw). Weights need not be normalised: non-negative, some > 0, else slm::Error.
  int32_t draw(std::span<const std::pair<int32_t, float>> dist);
  // The same for a dense weight vector: returns an index i with probability weights[i] / sum.
  int32_t draw_weights(std::span<const float> weights);
  // Uniform double in [0, 1) from 53 bits of the RNG (advances the same stream sample() uses).
  double uniform();

  const SamplerParams& params() const { return params_; }

 private:
  void apply_penalties(std::span<float> logits, std::span<const int32_t> history);
  // Steps 4-6 on a row whose maximum is max_logit (> -inf) when at least one filter is on: fills
  // cand_ and returns how many of its first entries are kept.
  size_t filtered_candidates(std::span<const float> logits, float max_logit);
  // Top-p over cand_ (unordered, holding the row's max) with normaliser z: moves the kept tokens
  // to the front of cand_ and returns how many there are.
  size_t top_p_prefix(double z);
  bool any_filter(int64_t n_vocab) const;

  SamplerParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // scratch: (logit, id) candidates
  std::vector<float> weights_;                   // scratch: [n_vocab] unnormalised probabilities
};

// Steps 1-2 of Sampler::sample alone (penalties), for callers that need the penalised logits.
void apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                     const SamplerParams& params);

// Index of the largest logit (lowest id on ties); -1 for an empty span.
int32_t argmax(std::span<const float> logits);

// log(softmax(logits)), computed stably (max subtracted, sum in double). [n] -> [n].
std::vector<float> log_softmax(std::span<const float> logits);

// The k largest entries as (id, value), sorted by value descending (lower id first on ties);
// fewer if k > size. O(n log k): no sort of the whole vocabulary.
std::vector<std::pair<int32_t, float>> top_logits(std::span<const float> logits, int k);

}  // namespace slm
