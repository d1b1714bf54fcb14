// What the SentencePiece-style and the byte-level BPE tokenizers share: the special-token split
// around the model's own algorithm, BOS handling, and the per-token decoded pieces (built once).
// Internal to src/tokenizer/.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/special_split.h"
#include "tokenizer/tokenizer.h"

namespace slm {

class BasicTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_bos,
                              bool parse_special = false) const override;
  std::string token_to_piece(int32_t id, bool render_special = false) const override;

 protected:
  // rstrip: per token id, whether the special token swallows whitespace after it.
  BasicTokenizer(Vocab vocab, const std::vector<bool>& rstrip);
  // Call at the end of the subclass constructor: fills pieces_ through piece_of().
  void build_pieces();

  // Tokenizes one plain-text fragment. after_special: the fragment starts the text or follows a
  // special token (SentencePiece adds its prefix space there).
  virtual void encode_fragment(std::string_view text, bool after_special,
                               std::vector<int32_t>& out) const = 0;
  // Decoded bytes of a normal (non-special) token.
  virtual std::string piece_of(int32_t id) const = 0;

  TokenType type(int32_t id) const {
    return static_cast<size_t>(id) < vocab_.types.size() ? vocab_.types[id] : TokenType::Normal;
  }
  int32_t lookup(std::string_view text) const {
    auto it = token_to_id_.find(text);
    return it == token_to_id_.end() ? -1 : it->second;
  }

  std::array<int32_t, 256> byte_tokens_;  // id of <0xXX> byte token per byte, -1 if none

 private:
  SpecialSplitter special_;
  std::vector<std::string> pieces_;      // (n_vocab) decoded bytes, special texts included
  std::vector<bool> hidden_;             // (n_vocab) control/unknown: "" unless render_special
};

// Factories of the two kinds (vocab already validated by Tokenizer::from_vocab).
std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab, const std::vector<bool>& rstrip);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab, const std::vector<bool>& rstrip);

}  // namespace slm
