#include "generate/speculative.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>
#include <vector>

#include "core/error.h"
#include "generate/sampler.h"
#include "generate/token_emitter.h"
#include "generate/vocab_check.h"

namespace slm {
namespace {

using Clock = std::chrono::steady_clock;

int64_t micros_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
}

using Dist = std::vector<std::pair<int32_t, float>>;  // (id, probability), sparse

float prob_of(const Dist& d, int32_t id) {
  for (const auto& [i, p] : d)
    if (i == id) return p;
  return 0.0f;
}

// Largest probability of softmax(logits) at temperature 1: 1 / sum(exp(l - max)).
double max_prob(std::span<const float> logits) {
  const float m = logits[argmax(logits)];
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - m);
  return 1.0 / sum;
}

// Length of the common prefix of a and b.
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

int64_t TransformerVerifierModel::n_vocab() const { return tf_.model().config().n_vocab; }

void TransformerVerifierModel::forward(std::span<const int32_t> tokens, std::span<float> logits,
                                       bool all_logits) {
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t want = (all_logits ? n : 1) * n_vocab();
  if (static_cast<int64_t>(logits.size()) != want)
    throw Error("speculative: logits buffer holds " + std::to_string(logits.size()) +
                " values, expected " + std::to_string(want));
  tf_.forward(tokens.data(), n, kv_, logits.data(), all_logits);
}

std::string TransformerVerifierModel::piece(int32_t id) const {
  return tf_.model().tokenizer().token_to_piece(id);
}

bool TransformerVerifierModel::is_end_of_generation(int32_t id) const {
  return tf_.model().tokenizer().is_end_of_generation(id);
}

void SpeculativeOptions::validate() const {
  if (draft_max < 0)
    throw Error("speculative: draft_max must be >= 0, got " + std::to_string(draft_max));
  if (!(draft_min_prob >= 0.0f && draft_min_prob <= 1.0f))
    throw Error("speculative: draft_min_prob must be in [0, 1] (0 = off), got " +
                std::to_string(draft_min_prob));
}

SpeculativeResult generate_speculative(VerifierModel& target, VerifierModel& draft,
                                       std::span<const int32_t> prompt,
                                       const GenerateOptions& options,
                                       const SpeculativeOptions& spec,
                                       const TextCallback& on_text) {
  SpeculativeResult res;
  GenerateResult& r = res.gen;
  SpeculativeStats& st = res.stats;

  // Time spent in on_text is the caller's, not generation's.
  int64_t callback_us = 0;
  TextCallback timed_text;
  if (on_text)
    timed_text = [&](std::string_view piece) {
      const auto t = Clock::now();
      const bool go_on = on_text(piece);
      callback_us += micros_since(t);
      return go_on;
    };
  TokenEmitter out(
      options, [&target](int32_t id) { return target.piece(id); },
      [&target](int32_t id) { return target.is_end_of_generation(id); }, timed_text, r);
  spec.validate();
  Sampler target_sampler(options.sampler);  // validates the sampler params
  SamplerParams draft_params = options.sampler;
  draft_params.seed = options.sampler.seed ^ 0x9E3779B97F4A7C15ull;  // an independent stream
  Sampler draft_sampler(draft_params);

  if (prompt.empty()) throw Error("speculative: the prompt is empty (expected at least one token)");
  const int64_t n_vocab = target.n_vocab();
  if (draft.n_vocab() != n_vocab)
    throw Error("speculative: the draft model has " + std::to_string(draft.n_vocab()) +
                " tokens but the target model " + std::to_string(n_vocab) +
                ": they must share one vocabulary");
  for (int32_t id : prompt)
    if (id < 0 || id >= n_vocab)
      throw Error("speculative: prompt token id " + std::to_string(id) +
                  " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
  if (static_cast<int64_t>(prompt.size()) > target.room())
    throw Error("speculative: the prompt has " + std::to_string(prompt.size()) +
                " tokens but the target's context has room for " + std::to_string(target.room()));

  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  const int64_t target_base = target.n_past(), draft_base = draft.n_past();
  // The history: prompt + every token pushed to the emitter (an ending EOG included).
  std::vector<int32_t> seq(prompt.begin(), prompt.end());
  std::vector<int32_t> draft_fed;  // tokens the draft's cache holds after draft_base
  std::vector<float> row(static_cast<size_t>(n_vocab));  // [n_vocab] scratch / draft logits
  const auto P = static_cast<int64_t>(prompt.size());

  // Prefill: all but the last prompt token; the last one opens the first verification, whose
  // first row is then the prompt's next-token distribution.
  auto t0 = Clock::now();
  if (P > 1) {
    target.forward(prompt.first(P - 1), row, false);
    ++st.target_calls;
    if (draft.room() >= P - 1) {
      draft.forward(prompt.first(P - 1), row, false);
      ++st.draft_calls;
      draft_fed.assign(prompt.begin(), prompt.end() - 1);
    }
  }
  r.prompt_eval_us = micros_since(t0);

  // Greedy: p and q are one-hot at the (penalised) arg maxes, so acceptance is "the draft equals
  // the target's arg max" and a rejection takes the target's arg max (the residual max(0, p - q)
  // is one-hot there too); no draws are needed, and no randomness affects greedy output.
  const bool greedy = options.sampler.temperature <= 0.0f;
  std::vector<int32_t> drafts;  // this round's proposals
  std::vector<Dist> qs;         // the draft distribution each was drawn from
  std::vector<float> tlog;      // [drafts + 1, n_vocab] target logits of a verification
  std::vector<float> residual(static_cast<size_t>(n_vocab));
  std::vector<float> lsm;
  std::vector<int32_t> feed;  // [1 + drafts] tokens of a verification
  bool first_round = true;
  const auto loop_t0 = Clock::now();
  const int64_t callback_us0 = callback_us;

  while (!out.done()) {
    const auto L = static_cast<int64_t>(seq.size());
    // Invariant: the target holds seq[0, L-1); seq[L-1] is fed first in this round.
    const int64_t room = target.room();
    if (room < 1) {  // context full: the last token cannot be fed
      out.end("length");
      break;
    }
    const int64_t left = options.max_tokens - static_cast<int64_t>(r.tokens.size());  // >= 1
    int64_t k = std::min<int64_t>({spec.draft_max, room - 1, left - 1});

    // ---- Draft: sync the draft's cache to seq[0, L), drawing q_1 from the last row.
    drafts.clear();
    qs.clear();
    if (k > 0) {
      const int64_t c = std::min<int64_t>(static_cast<int64_t>(common_prefix(draft_fed, seq)), L - 1);
      const int64_t room_after = draft.room() + (static_cast<int64_t>(draft_fed.size()) - c);
      // Feeding seq[c, L) then x_1 .. x_{k-1} takes (L - c) + (k - 1) positions.
      k = std::min(k, room_after - (L - c) + 1);
      if (k > 0) {
        draft.truncate(draft_base + c);
        draft_fed.resize(static_cast<size_t>(c));
        draft.forward(std::span<const int32_t>(seq).subspan(static_cast<size_t>(c)), row, false);
        ++st.draft_calls;
        draft_fed.insert(draft_fed.end(), seq.begin() + c, seq.end());
        // The draft's penalties see its own proposals: they are appended to seq while drafting
        // (and removed below) rather than to a copy of the history.
        for (int64_t i = 0; i < k; ++i) {
          Dist q = draft_sampler.distribution(row, seq);  // penalises row in place
          if (spec.draft_min_prob > 0.0f && max_prob(row) < spec.draft_min_prob) break;
          const int32_t x = greedy ? q.front().first : draft_sampler.draw(q);
          drafts.push_back(x);
          qs.push_back(std::move(q));
          seq.push_back(x);
          if (i + 1 < k) {
            draft.forward(std::span<const int32_t>(&x, 1), row, false);
            ++st.draft_calls;
            draft_fed.push_back(x);
          }
        }
        seq.resize(static_cast<size_t>(L));
      }
    }

    // ---- Verify: one target call over [seq[L-1], x_1 .. x_m].
    feed.clear();
    feed.push_back(seq.back());
    feed.insert(feed.end(), drafts.begin(), drafts.end());
    const auto m = static_cast<int64_t>(feed.size());
    tlog.resize(static_cast<size_t>(m * n_vocab));
    target.forward(feed, tlog, true);
    ++st.target_calls;
    ++st.verifications;
    if (first_round && options.top_logits > 0)
      r.last_prompt_top = top_logits(std::span<const float>(tlog.data(), static_cast<size_t>(n_vocab)),
                                     options.top_logits);
    first_round = false;

    // ---- Accept / reject, emitting each token as it is decided.
    for (int64_t i = 0; i < m; ++i) {
      std::span<float> t_row(tlog.data() + i * n_vocab, static_cast<size_t>(n_vocab));
      if (options.logprobs) lsm = log_softmax(t_row);  // raw, before the sampler's penalties
      const Dist p = target_sampler.distribution(t_row, seq);
      int32_t tok;
      bool rejected = false;
      if (i < static_cast<int64_t>(drafts.size())) {
        const int32_t x = drafts[i];
        ++st.drafted;  // counted when judged: drafts after an ending token (EOG, stop) are not
        const float px = prob_of(p, x), qx = prob_of(qs[i], x);  // qx > 0: x was drawn from q
        if (greedy) {
          tok = p.front().first;  // the target's arg max: accepts x exactly when it equals it
          if (tok == x) ++st.accepted;
          else rejected = true;
        } else if (px >= qx || (px > 0.0f && target_sampler.uniform() * qx < px)) {
          tok = x;
          ++st.accepted;
        } else {
          // Draw from normalize(max(0, p - q)). It has mass whenever p(x) < q(x); should rounding
          // leave none, p itself is the right fallback (p and q then agree to rounding).
          std::fill(residual.begin(), residual.end(), 0.0f);
          for (const auto& [id, pv] : p) residual[id] = pv;
          for (const auto& [id, qv] : qs[i]) residual[id] = std::max(0.0f, residual[id] - qv);
          double mass = 0.0;
          for (const auto& [id, pv] : p) mass += residual[id];
          tok = mass > 0.0 ? target_sampler.draw_weights(residual) : target_sampler.draw(p);
          rejected = true;
        }
      } else {
        // Every draft accepted (or none made): the target's own token.
        tok = greedy ? p.front().first : target_sampler.draw(p);
      }
      seq.push_back(tok);
      if (!out.push(tok, lsm) || rejected) break;
    }
    // Back to the invariant: the target holds seq but its last token (drops rejected drafts).
    target.truncate(target_base + static_cast<int64_t>(seq.size()) - 1);
  }

  if (out.pushed() == 0) {
    // max_tokens == 0: feed the last prompt token so the cache holds the prompt, as generate().
    target.forward(prompt.last(1), row, false);
    ++st.target_calls;
    if (options.top_logits > 0) r.last_prompt_top = top_logits(row, options.top_logits);
  }
  // Leave the draft holding a prefix of the history.
  const auto keep = std::min(common_prefix(draft_fed, seq), seq.size() - 1);
  draft.truncate(draft_base + static_cast<int64_t>(keep));
  r.gen_eval_us = micros_since(loop_t0) - (callback_us - callback_us0);
  out.finish();
  st.tokens_per_s = r.gen_eval_us > 0 ? static_cast<double>(r.tokens.size()) * 1e6 / r.gen_eval_us : 0.0;
  return res;
}

SpeculativeResult generate_speculative(Transformer& target, KvCache& target_kv, Transformer& draft,
                                       KvCache& draft_kv, std::span<const int32_t> prompt,
                                       const GenerateOptions& options,
                                       const SpeculativeOptions& spec,
                                       const TextCallback& on_text) {
  check_shared_vocab(target.model().tokenizer(), "target model", draft.model().tokenizer(),
                     "draft model");
  TransformerVerifierModel t(target, target_kv), d(draft, draft_kv);
  return generate_speculative(t, d, prompt, options, spec, on_text);
}

}  // namespace slm
