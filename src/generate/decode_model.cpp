#include "generate/decode_model.h"

#include "core/error.h"

namespace slm {

int64_t TransformerDecodeModel::n_vocab() const { return tf_.model().config().n_vocab; }

int64_t TransformerDecodeModel::room() const { return kv_.capacity() - kv_.size(); }

void TransformerDecodeModel::forward(std::span<const int32_t> tokens, std::span<float> logits) {
  if (static_cast<int64_t>(logits.size()) != n_vocab())
    throw Error("decode: logits buffer holds " + std::to_string(logits.size()) +
                " values, expected n_vocab = " + std::to_string(n_vocab()));
  tf_.forward(tokens.data(), static_cast<int64_t>(tokens.size()), kv_, logits.data(), false);
}

std::string TransformerDecodeModel::piece(int32_t id) const {
  return tf_.model().tokenizer().token_to_piece(id);
}

bool TransformerDecodeModel::is_end_of_generation(int32_t id) const {
  return tf_.model().tokenizer().is_end_of_generation(id);
}

}  // namespace slm
