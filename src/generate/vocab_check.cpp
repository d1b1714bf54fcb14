#include "generate/vocab_check.h"

#include "core/error.h"

namespace slm {
namespace {

// Token texts can hold control bytes or byte-mapped characters: show them escaped and short.
std::string show(const std::string& text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < 40; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > 40) out += "...";
  return out + "\"";
}

}  // namespace

void check_shared_vocab(const Tokenizer& a, const std::string& name_a, const Tokenizer& b,
                        const std::string& name_b) {
  const std::string pair = name_a + " and " + name_b;
  const auto& ta = a.vocab().tokens;
  const auto& tb = b.vocab().tokens;
  if (ta.size() != tb.size())
    throw Error("the models do not share a vocabulary: " + name_a + " has " + std::to_string(ta.size()) +
                " tokens, " + name_b + " has " + std::to_string(tb.size()) +
                " (both models must use the same tokenizer)");
  size_t first = ta.size(), n_diff = 0;
  for (size_t i = 0; i < ta.size(); ++i)
    if (ta[i] != tb[i]) {
      if (first == ta.size()) first = i;
      ++n_diff;
    }
  if (n_diff > 0)
    throw Error("the models do not share a vocabulary: token " + std::to_string(first) + " is " +
                show(ta[first]) + " in " + name_a + " but " + show(tb[first]) + " in " + name_b + " (" +
                std::to_string(n_diff) + " of " + std::to_string(ta.size()) +
                " token texts differ; both models must use the same tokenizer)");
  if (a.bos() != b.bos() || a.eos() != b.eos())
    throw Error("the models do not share special tokens: " + name_a + " has BOS " + std::to_string(a.bos()) +
                " and EOS " + std::to_string(a.eos()) + ", " + name_b + " has BOS " + std::to_string(b.bos()) +
                " and EOS " + std::to_string(b.eos()) + " (" + pair + " must use the same tokenizer)");
}

}  // namespace slm
