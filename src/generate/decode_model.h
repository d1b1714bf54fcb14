// What the decode loop needs from a model, as a small interface: feed tokens and get the logits of
// the last one, know how much context is left, turn a token into text, know when to stop. The
// loop (generator.h) and the collaboration strategies code against it; tests drive the loop with
// a scripted fake, and TransformerDecodeModel adapts the real Transformer + KvCache.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "model/kv_cache.h"
#include "model/model.h"

namespace slm {

class DecodeModel {
 public:
  virtual ~DecodeModel() = default;
  // Length of a logits row.
  virtual int64_t n_vocab() const = 0;
  // How many more positions forward() can take before the context (KV cache) is full.
  virtual int64_t room() const = 0;
  // Feeds tokens after the ones already fed; logits: [n_vocab], those of the last token.
  virtual void forward(std::span<const int32_t> tokens, std::span<float> logits) = 0;
  // The bytes of one token (may be part of a UTF-8 character; "" for control tokens).
  virtual std::string piece(int32_t id) const = 0;
  virtual bool is_end_of_generation(int32_t id) const = 0;
};

// A Transformer writing into a KvCache. Both must outlive the adapter.
class TransformerDecodeModel : public DecodeModel {
 public:
  TransformerDecodeModel(Transformer& transformer, KvCache& kv) : tf_(transformer), kv_(kv) {}
  int64_t n_vocab() const override;
  int64_t room() const override;
  void forward(std::span<const int32_t> tokens, std::span<float> logits) override;
  std::string piece(int32_t id) const override;
  bool is_end_of_generation(int32_t id) const override;

 private:
  Transformer& tf_;
  KvCache& kv_;
};

}  // namespace slm
