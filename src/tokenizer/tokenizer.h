// One Tokenizer interface over the tokenizer kinds GGUF files carry in `tokenizer.*` metadata:
// SentencePiece-style ("llama": score-ordered merges, byte fallback) and byte-level BPE ("gpt2":
// ranked merges after a regex pre-tokenizer chosen by `tokenizer.ggml.pre`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace slm {

class GgufFile;

// Token attributes as GGUF's tokenizer.ggml.token_type stores them.
enum class TokenType : int32_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

struct Vocab {
  std::vector<std::string> tokens;   // token text as stored (SPM: with U+2581; BPE: byte-mapped)
  std::vector<float> scores;         // SPM merge priorities (may be empty for BPE)
  std::vector<TokenType> types;
  int32_t bos = -1, eos = -1, eot = -1, unk = -1, pad = -1, eom = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = true;      // SPM: prepend U+2581 to the text
  std::string model;                 // "llama" or "gpt2"
  std::string pre;                   // pre-tokenizer name (gpt2 kind)
  std::vector<std::string> merges;   // gpt2 kind: "left right" pairs, rank = index
  std::string name;                  // general.name; llama.cpp keys a few token quirks on it
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Builds the tokenizer that the file's metadata describes; throws slm::Error naming the file
  // and the key if the metadata is missing, inconsistent or of an unsupported kind.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);
  // The same from an in-memory vocabulary (tests, trainers); the same checks, and errors that
  // name the tokenizer.ggml.* key at fault.
  static std::unique_ptr<Tokenizer> from_vocab(Vocab vocab);

  // Token ids for `text`. add_bos: prepend BOS (callers usually pass vocab().add_bos).
  // parse_special: text that spells a control/user-defined token (e.g. "<|im_start|>") becomes
  // that token; otherwise it is tokenized as plain text. User-defined tokens (a vocabulary's added
  // tokens) are always split out, as llama.cpp and Hugging Face tokenizers do. Thread-safe.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos,
                                      bool parse_special = false) const = 0;

  // The bytes a token stands for when decoding (byte tokens give one raw byte, SPM's U+2581
  // becomes a space, byte-level BPE maps back to bytes). Control tokens give "" unless
  // `render_special`. The result may be part of a UTF-8 sequence.
  virtual std::string token_to_piece(int32_t id, bool render_special = false) const = 0;

  // Whole text of a sequence. SPM removes the leading space that add_space_prefix added when the
  // first token is at the start of the text (skip_leading_space).
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

  const Vocab& vocab() const { return vocab_; }
  int32_t vocab_size() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos() const { return vocab_.bos; }
  int32_t eos() const { return vocab_.eos; }
  // End of generation: EOS, EOT, EOM and control tokens the vocab marks as ends (<|im_end|>, ...).
  bool is_end_of_generation(int32_t id) const;
  bool is_control(int32_t id) const;
  // Id of a token whose text is exactly `text`, or -1.
  int32_t find_token(std::string_view text) const;
  // A 64-bit FNV-1a hash of everything that decides how text becomes ids (kind, pre-tokenizer,
  // tokens, types, scores, merges, special ids). Token shards and checkpoints record it so that
  // data made with one tokenizer is never trained with another.
  uint64_t fingerprint() const;

 protected:
  explicit Tokenizer(Vocab vocab);
  // Heterogeneous lookup, so that a std::string_view finds a std::string key without a copy.
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using TextMap = std::unordered_map<std::string, int32_t, TextHash, std::equal_to<>>;

  Vocab vocab_;
  std::vector<int32_t> end_of_generation_;  // sorted ids
  TextMap token_to_id_;                     // token text -> first id with that text
};

}  // namespace slm
