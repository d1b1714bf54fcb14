#include "generate/cascade.h"

#include <algorithm>

#include "core/error.h"

namespace slm {

CascadeDecodeModel::CascadeDecodeModel(Transformer& small, KvCache& small_kv, Transformer& large,
                                       KvCache& large_kv, EscalationPolicy& policy)
    : small_(small), small_kv_(small_kv), large_(large), large_kv_(large_kv), policy_(policy) {
  const int64_t vs = small.model().config().n_vocab, vl = large.model().config().n_vocab;
  if (vs != vl)
    throw Error("cascade: the small model has " + std::to_string(vs) + " tokens and the large one " +
                std::to_string(vl) + " (they must share the vocabulary)");
  if (small_kv.size() != large_kv.size())
    throw Error("cascade: the small cache holds " + std::to_string(small_kv.size()) +
                " positions and the large one " + std::to_string(large_kv.size()) +
                " (they must hold the same history)");
}

int64_t CascadeDecodeModel::n_vocab() const { return small_.model().config().n_vocab; }

int64_t CascadeDecodeModel::room() const {
  return std::min(small_kv_.capacity() - small_kv_.size(),
                  large_kv_.capacity() - large_kv_.size() - pending());
}

void CascadeDecodeModel::forward(std::span<const int32_t> tokens, std::span<float> logits) {
  if (static_cast<int64_t>(logits.size()) != n_vocab())
    throw Error("cascade: logits buffer holds " + std::to_string(logits.size()) +
                " values, expected n_vocab = " + std::to_string(n_vocab()));
  if (tokens.empty()) throw Error("cascade: forward needs at least one token");
  if (static_cast<int64_t>(tokens.size()) > room())
    throw Error("cascade: " + std::to_string(tokens.size()) + " tokens do not fit in the room of " +
                std::to_string(room()) + " positions");
  small_.forward(tokens.data(), static_cast<int64_t>(tokens.size()), small_kv_, logits.data(), false);
  pending_.insert(pending_.end(), tokens.begin(), tokens.end());
  const int64_t index = stats_.decided++;  // tokens of this request decided before this one
  const double remaining =
      horizon_ > 0 ? static_cast<double>(std::max<int64_t>(horizon_ - index, 1)) / static_cast<double>(horizon_) : 1.0;
  last_escalated_ = policy_.escalate(logits, small_.last_hidden(), remaining);
  if (!last_escalated_) return;
  // One batched call over everything the large model has not seen; its last row replaces the
  // small model's logits.
  large_.forward(pending_.data(), pending(), large_kv_, logits.data(), false);
  ++stats_.decided_large;
  ++stats_.large_calls;
  stats_.large_fed += pending();
  pending_.clear();
}

void CascadeDecodeModel::sync() {
  if (pending_.empty()) return;
  scratch_.resize(static_cast<size_t>(n_vocab()));
  large_.forward(pending_.data(), pending(), large_kv_, scratch_.data(), false);
  ++stats_.large_calls;
  stats_.large_fed += pending();
  pending_.clear();
}

std::string CascadeDecodeModel::piece(int32_t id) const {
  return small_.model().tokenizer().token_to_piece(id);
}

bool CascadeDecodeModel::is_end_of_generation(int32_t id) const {
  return small_.model().tokenizer().is_end_of_generation(id);
}

}  // namespace slm
