// Speculative decoding: a small (draft) model proposes up to k tokens, the large (target) model
// checks them all in ONE batched forward call, and a rejection rule keeps the output distribution
// exactly the large model's (Leviathan et al. 2023, Chen et al. 2023):
//   - the draft samples x_i ~ q_i (its own distribution under the same SamplerParams: penalties,
//     top-k/top-p/min-p, temperature; greedy when temperature <= 0);
//   - the target, fed [last accepted token, x_1 .. x_k], gives p_1 .. p_{k+1} (Sampler::distribution);
//   - x_i is accepted with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection the
//     token is drawn from normalize(max(0, p_i - q_i)) and the round ends; if all k are accepted
//     a bonus token is drawn from p_{k+1}.
//   With greedy sampling p and q are one-hot, so this is: accept while the draft equals the
//   target's arg max, then take the target's arg max; the tokens equal generate() on the target.
// Adaptive draft length: drafting stops early when the draft's largest probability for its next
// token (softmax of its penalised logits at temperature 1) is below draft_min_prob (0: off).
//
// Caches: at the start of each round the target holds the history but its last token; after
// verification it is truncated back to that invariant (KvCache::truncate), so rejected drafts
// leave nothing behind. The draft's cache is resynchronised lazily: the longest prefix it shares
// with the history is kept and the missing tokens (e.g. its own last draft plus the bonus token
// when all were accepted) are fed in one call. Drafting never goes past the room left in either
// cache. Output rules (EOG, stop strings, max_tokens, UTF-8 streaming, cancellation) are those of
// generate() (generator.h), applied by the same TokenEmitter to every accepted token; when the run
// ends the target cache holds the prompt and every generated token but the last, as after
// generate(), and the draft cache a prefix of that.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "generate/generator.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace slm {

// What the algorithm needs from each model: a cache of positions that can be fed in batches
// (with the logits of every fed position) and truncated. Tests drive it with small fakes.
class VerifierModel {
 public:
  virtual ~VerifierModel() = default;
  virtual int64_t n_vocab() const = 0;
  // Positions held (fed and not truncated away).
  virtual int64_t n_past() const = 0;
  // Positions that can still be fed before the context is full.
  virtual int64_t room() const = 0;
  // Feeds tokens at positions n_past() ...; logits: [tokens.size(), n_vocab] when all_logits, else
  // [n_vocab] for the last position only.
  virtual void forward(std::span<const int32_t> tokens, std::span<float> logits, bool all_logits) = 0;
  // Drops the positions >= n (n <= n_past()).
  virtual void truncate(int64_t n) = 0;
  // The bytes of one token; whether it ends generation (only the target's are used).
  virtual std::string piece(int32_t id) const = 0;
  virtual bool is_end_of_generation(int32_t id) const = 0;
};

// A Transformer writing into a KvCache. Both must outlive the adapter.
class TransformerVerifierModel : public VerifierModel {
 public:
  TransformerVerifierModel(Transformer& transformer, KvCache& kv) : tf_(transformer), kv_(kv) {}
  int64_t n_vocab() const override;
  int64_t n_past() const override { return kv_.size(); }
  int64_t room() const override { return kv_.capacity() - kv_.size(); }
  void forward(std::span<const int32_t> tokens, std::span<float> logits, bool all_logits) override;
  void truncate(int64_t n) override { kv_.truncate(n); }
  std::string piece(int32_t id) const override;
  bool is_end_of_generation(int32_t id) const override;

 private:
  Transformer& tf_;
  KvCache& kv_;
};

struct SpeculativeOptions {
  int draft_max = 4;            // k: tokens drafted per round, >= 0 (0: the target alone)
  float draft_min_prob = 0.0f;  // [0, 1]; stop drafting below this draft confidence; 0: off
  // Throws slm::Error naming the field and the expected range.
  void validate() const;
};

struct SpeculativeStats {
  int64_t drafted = 0;        // draft tokens the target judged (none past an ending token)
  int64_t accepted = 0;       // of which the target accepted
  int64_t verifications = 0;  // target forward calls after the prefill (one per round)
  int64_t target_calls = 0;   // all target forward calls (prefill included)
  int64_t draft_calls = 0;    // all draft forward calls (prefill included)
  double tokens_per_s = 0.0;  // generated tokens / GenerateResult::gen_eval_us

  double acceptance_rate() const { return drafted > 0 ? static_cast<double>(accepted) / drafted : 0.0; }
  // Accepted drafts per verification (the tokens per round are this + 1, the target's own).
  double mean_accepted() const {
    return verifications > 0 ? static_cast<double>(accepted) / verifications : 0.0;
  }
};

struct SpeculativeResult {
  GenerateResult gen;  // as generate() fills it (logprobs: under the target's raw distribution)
  SpeculativeStats stats;
};

// Runs the loop on target and draft, appending to what each already holds (both must hold the
// same history before the prompt, usually none). The draft sampler is seeded from
// options.sampler.seed (a derived stream), the acceptance draws use the target's. Throws
// slm::Error on invalid options, an empty prompt, ids outside the vocabulary, vocabularies of
// different sizes, or a prompt that does not fit in the target's context.
SpeculativeResult generate_speculative(VerifierModel& target, VerifierModel& draft,
                                       std::span<const int32_t> prompt,
                                       const GenerateOptions& options,
                                       const SpeculativeOptions& spec,
                                       const TextCallback& on_text = {});

// The same on two Transformers; first checks that the models share their vocabulary
// (check_shared_vocab, "target model" / "draft model" in the message).
SpeculativeResult generate_speculative(Transformer& target, KvCache& target_kv, Transformer& draft,
                                       KvCache& draft_kv, std::span<const int32_t> prompt,
                                       const GenerateOptions& options,
                                       const SpeculativeOptions& spec,
                                       const TextCallback& on_text = {});

}  // namespace slm
