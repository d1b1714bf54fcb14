// Tokenizer base: validation of a vocabulary, the shared encode/decode frame (BasicTokenizer), and
// end-of-generation detection.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "core/error.h"
#include "core/hash.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace slm {

namespace {

// Token texts that end a turn or a document in well-known vocabularies (llama.cpp's list).
const char* const kEndTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",  // <｜end▁of▁sentence｜>
};
// Candidates for EOT when the file names none, in order of preference.
const char* const kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
    "<end_of_utterance>",
};

// The byte a "<0xXX>" token stands for, or -1.
int parse_byte_token(const std::string& t) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

void check_id(int32_t id, const char* key, size_t n) {
  if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= n))
    throw Error(std::string(key) + " = " + std::to_string(id) + " is out of range: the vocabulary has " +
                std::to_string(n) + " tokens");
}

}  // namespace

// --- Tokenizer ---------------------------------------------------------------------------------

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  token_to_id_.reserve(vocab_.tokens.size());
  for (size_t i = 0; i < vocab_.tokens.size(); ++i)
    if (!vocab_.tokens[i].empty()) token_to_id_.emplace(vocab_.tokens[i], static_cast<int32_t>(i));

  if (vocab_.eot < 0)
    for (const char* t : kEotTexts)
      if (int32_t id = find_token(t); id >= 0) {
        vocab_.eot = id;
        break;
      }
  if (vocab_.eom < 0) vocab_.eom = find_token("<|eom_id|>");

  for (const char* t : kEndTexts)
    if (int32_t id = find_token(t); id >= 0) end_of_generation_.push_back(id);
  // Harmony-style vocabularies end a message with <|end|> but a turn with <|return|>/<|call|>.
  if (find_token("<|return|>") >= 0 && find_token("<|call|>") >= 0)
    std::erase(end_of_generation_, find_token("<|end|>"));
  for (int32_t id : {vocab_.eos, vocab_.eot, vocab_.eom})
    if (id >= 0) end_of_generation_.push_back(id);
  std::sort(end_of_generation_.begin(), end_of_generation_.end());
  end_of_generation_.erase(std::unique(end_of_generation_.begin(), end_of_generation_.end()),
                           end_of_generation_.end());
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::binary_search(end_of_generation_.begin(), end_of_generation_.end(), id);
}

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < vocab_.types.size() &&
         vocab_.types[id] == TokenType::Control;
}

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = token_to_id_.find(text);
  return it == token_to_id_.end() ? -1 : it->second;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  // SentencePiece: the first piece's space is the prefix space encode added. Leading pieces that
  // render empty (BOS without render_special) do not use up the removal.
  bool strip = vocab_.model == "llama" && vocab_.add_space_prefix;
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (strip && !piece.empty()) {
      if (piece[0] == ' ') piece.erase(0, 1);
      strip = false;
    }
    out += piece;
  }
  return out;
}

std::unique_ptr<Tokenizer> Tokenizer::from_vocab(Vocab v) {
  const size_t n = v.tokens.size();
  if (v.model.empty()) throw Error("tokenizer.ggml.model is missing");
  if (v.model != "llama" && v.model != "gpt2")
    throw Error("tokenizer.ggml.model = '" + v.model +
                "' is not supported (supported: 'llama' SentencePiece-style, 'gpt2' byte-level BPE)");
  if (n == 0) throw Error("tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(INT32_MAX)) throw Error("tokenizer.ggml.tokens has too many tokens");
  if (!v.scores.empty() && v.scores.size() != n)
    throw Error("tokenizer.ggml.scores has " + std::to_string(v.scores.size()) +
                " entries, expected one per token (" + std::to_string(n) + ")");
  if (v.types.empty()) v.types.assign(n, TokenType::Normal);
  if (v.types.size() != n)
    throw Error("tokenizer.ggml.token_type has " + std::to_string(v.types.size()) +
                " entries, expected one per token (" + std::to_string(n) + ")");
  check_id(v.bos, "tokenizer.ggml.bos_token_id", n);
  check_id(v.eos, "tokenizer.ggml.eos_token_id", n);
  check_id(v.eot, "tokenizer.ggml.eot_token_id", n);
  check_id(v.eom, "tokenizer.ggml.eom_token_id", n);
  check_id(v.unk, "tokenizer.ggml.unknown_token_id", n);
  check_id(v.pad, "tokenizer.ggml.padding_token_id", n);
  if (v.add_bos && v.bos < 0)
    throw Error("tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is not set");
  if (v.add_eos && v.eos < 0)
    throw Error("tokenizer.ggml.add_eos_token is true but tokenizer.ggml.eos_token_id is not set");

  if (v.model == "gpt2") {
    PreTokenizerSpec spec;
    if (!find_pretokenizer(v.pre, spec)) {
      std::string known;
      for (const auto& name : pretokenizer_names()) known += (known.empty() ? "" : ", ") + name;
      throw Error("tokenizer.ggml.pre = '" + v.pre + "' is not a known pre-tokenizer (known: " +
                  known + ")");
    }
    for (size_t i = 0; i < v.merges.size(); ++i) {
      const std::string& m = v.merges[i];
      const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos || sp + 1 >= m.size() || m.find(' ', sp + 1) != std::string::npos)
        throw Error("tokenizer.ggml.merges[" + std::to_string(i) + "] = '" + m +
                    "' is malformed: expected two token texts separated by one space");
    }
    v.add_space_prefix = false;
  }

  // Phi-3's added tokens strip the whitespace that follows them (llama.cpp keys this on the
  // model name; so do we).
  std::vector<bool> rstrip;
  std::string lname = v.name;
  std::transform(lname.begin(), lname.end(), lname.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  if (lname.find("phi-3") != std::string::npos || lname.find("phi3") != std::string::npos) {
    rstrip.assign(n, false);
    for (size_t i = 0; i < n; ++i) {
      const TokenType t = v.types[i];
      const std::string& s = v.tokens[i];
      rstrip[i] = (t == TokenType::Control || t == TokenType::UserDefined ||
                   t == TokenType::Unknown || s == "</s>") &&
                  s != "<unk>" && s != "<s>" && s != "<|endoftext|>";
    }
  }

  if (v.model == "llama") return make_spm_tokenizer(std::move(v), rstrip);
  return make_bpe_tokenizer(std::move(v), rstrip);
}

// --- BasicTokenizer ----------------------------------------------------------------------------

BasicTokenizer::BasicTokenizer(Vocab vocab, const std::vector<bool>& rstrip)
    : Tokenizer(std::move(vocab)), special_(vocab_, rstrip) {
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    byte_tokens_[b] = lookup(buf);
  }
}

void BasicTokenizer::build_pieces() {
  const size_t n = vocab_.tokens.size();
  pieces_.resize(n);
  hidden_.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    const std::string& text = vocab_.tokens[i];
    switch (type(id)) {
      case TokenType::Control:
      case TokenType::Unknown:
        hidden_[i] = true;
        pieces_[i] = text;
        break;
      case TokenType::UserDefined:
        pieces_[i] = text;  // added tokens are stored as the raw text they stand for
        break;
      case TokenType::Byte:
        if (int b = parse_byte_token(text); b >= 0)
          pieces_[i] = std::string(1, static_cast<char>(b));
        else
          pieces_[i] = piece_of(id);
        break;
      case TokenType::Unused:
        break;
      default:
        pieces_[i] = piece_of(id);
    }
  }
}

std::vector<int32_t> BasicTokenizer::encode(std::string_view text, bool add_bos,
                                            bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos) {
    if (vocab_.bos < 0) throw Error("tokenizer: BOS requested but the vocabulary has no BOS token");
    out.push_back(vocab_.bos);
  }
  bool after_special = true;
  for (const auto& p : special_.split(text, parse_special)) {
    if (p.token >= 0) {
      out.push_back(p.token);
      after_special = true;
    } else {
      encode_fragment(text.substr(p.begin, p.end - p.begin), after_special, out);
      after_special = false;
    }
  }
  return out;
}

std::string BasicTokenizer::token_to_piece(int32_t id, bool render_special) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size())
    throw Error("token id " + std::to_string(id) + " is out of range: the vocabulary has " +
                std::to_string(pieces_.size()) + " tokens");
  if (hidden_[id] && !render_special) return {};
  return pieces_[id];
}

}  // namespace slm

namespace slm {
namespace {

// Feeds values into a running FNV-1a 64 hash.
struct Fnv1a {
  uint64_t h = kFnvOffset;
  // Length-prefixed, so that ("ab","c") and ("a","bc") hash differently.
  void str(std::string_view s) {
    const uint64_t n = s.size();
    h = fnv1a64(&n, sizeof n, h);
    h = fnv1a64(s.data(), s.size(), h);
  }
  template <class T> void pod(T v) { h = fnv1a64(&v, sizeof v, h); }
};

}  // namespace

uint64_t Tokenizer::fingerprint() const {
  Fnv1a f;
  f.str(vocab_.model);
  f.str(vocab_.pre);
  f.pod(static_cast<uint64_t>(vocab_.tokens.size()));
  for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
    f.str(vocab_.tokens[i]);
    f.pod(static_cast<int32_t>(i < vocab_.types.size() ? vocab_.types[i] : TokenType::Normal));
    f.pod(i < vocab_.scores.size() ? vocab_.scores[i] : 0.0f);
  }
  f.pod(static_cast<uint64_t>(vocab_.merges.size()));
  for (const std::string& m : vocab_.merges) f.str(m);
  for (int32_t id : {vocab_.bos, vocab_.eos, vocab_.eot, vocab_.unk, vocab_.pad, vocab_.eom}) f.pod(id);
  f.pod(static_cast<uint8_t>(vocab_.add_bos));
  f.pod(static_cast<uint8_t>(vocab_.add_eos));
  f.pod(static_cast<uint8_t>(vocab_.add_space_prefix));
  return f.h;
}

}  // namespace slm
