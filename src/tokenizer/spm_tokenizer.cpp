// SentencePiece-style tokenizer (GGUF model "llama"), as llama.cpp runs it: spaces become U+2581,
// a U+2581 is prepended to the text and after each special token (add_space_prefix), then
// adjacent symbols (UTF-8 characters at first) are merged greedily, the pair whose merged text is
// the highest-scoring token first (ties: leftmost). Symbols left that are not tokens fall back to
// <0xXX> byte tokens.
#include <cstdio>
#include <queue>

#include "core/error.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/tokenizer_impl.h"

namespace slm {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

class SpmTokenizer final : public BasicTokenizer {
 public:
  SpmTokenizer(Vocab vocab, const std::vector<bool>& rstrip)
      : BasicTokenizer(std::move(vocab), rstrip) {
    // Tokens trained with whitespace splitting hold U+2581 only in a leading run. Then no token
    // spans a U+2581 that follows another character, so the text can be cut there into parts
    // merged independently, with the same result, and the merge queue stays small.
    cut_at_spaces_ = true;
    for (const std::string& t : vocab_.tokens) {
      size_t i = 0;
      while (t.compare(i, kSpace.size(), kSpace) == 0) i += kSpace.size();
      if (t.find(kSpace, i) != std::string::npos) {
        cut_at_spaces_ = false;
        break;
      }
    }
    build_pieces();
  }

 protected:
  void encode_fragment(std::string_view text, bool after_special,
                       std::vector<int32_t>& out) const override;
  std::string piece_of(int32_t id) const override {
    const std::string& t = vocab_.tokens[id];
    std::string s;
    s.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, kSpace.size(), kSpace) == 0) {
        s += ' ';
        i += kSpace.size();
      } else {
        s += t[i++];
      }
    }
    return s;
  }

 private:
  float score(int32_t id) const {
    return vocab_.scores.empty() ? 0.0f : vocab_.scores[id];
  }
  void emit_bytes(std::string_view sym, std::vector<int32_t>& out) const;
  // Merges the escaped text s (whole) and appends its tokens.
  void merge(std::string_view s, std::vector<int32_t>& out) const;

  bool cut_at_spaces_ = false;
};

using Symbol = MergeSymbol;

struct Bigram {
  float score;
  int32_t left, right;
  uint32_t size;  // bytes of the merged text, to detect stale entries
};

struct BigramOrder {  // priority_queue puts the "largest" on top: highest score, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

void SpmTokenizer::encode_fragment(std::string_view text, bool after_special,
                                   std::vector<int32_t>& out) const {
  std::string s;  // escaped text: ' ' -> U+2581, optional prefix space
  s.reserve(text.size() + 16);
  if (vocab_.add_space_prefix && after_special) s += kSpace;
  for (char c : text) {
    if (c == ' ')
      s += kSpace;
    else
      s += c;
  }
  if (!cut_at_spaces_) {
    merge(s, out);
    return;
  }
  // Cut before each U+2581 that follows something other than U+2581.
  size_t begin = 0;
  for (size_t at = s.find(kSpace, 1); at != std::string::npos; at = s.find(kSpace, at + 1)) {
    if (at >= kSpace.size() && s.compare(at - kSpace.size(), kSpace.size(), kSpace) == 0) continue;
    merge(std::string_view(s).substr(begin, at - begin), out);
    begin = at;
  }
  merge(std::string_view(s).substr(begin), out);
}

void SpmTokenizer::merge(std::string_view s, std::vector<int32_t>& out) const {
  if (s.empty()) return;
  std::vector<Symbol> sym = utf8_symbols(s);

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const uint32_t size = sym[l].n + sym[r].n;
    const int32_t id = lookup(s.substr(sym[l].off, size));
    if (id < 0) return;
    queue.push({score(id), l, r, size});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int32_t i = 0; i >= 0; i = sym[i].next) {
    const std::string_view piece = s.substr(sym[i].off, sym[i].n);
    const int32_t id = lookup(piece);
    if (id >= 0)
      out.push_back(id);
    else
      emit_bytes(piece, out);
  }
}

void SpmTokenizer::emit_bytes(std::string_view piece, std::vector<int32_t>& out) const {
  // Byte fallback when every byte has a token; otherwise the symbol is one unknown token, as
  // SentencePiece without byte fallback does.
  const size_t start = out.size();
  for (char c : piece) {
    int32_t id = byte_tokens_[static_cast<unsigned char>(c)];
    if (id < 0) id = lookup(std::string_view(&c, 1));  // vocabularies with raw byte tokens
    if (id < 0) {
      out.resize(start);
      if (vocab_.unk < 0)
        throw Error("tokenizer: '" + std::string(piece) +
                    "' has no token and the vocabulary has neither byte tokens nor an unknown token");
      out.push_back(vocab_.unk);
      return;
    }
    out.push_back(id);
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab, const std::vector<bool>& rstrip) {
  return std::make_unique<SpmTokenizer>(std::move(vocab), rstrip);
}

}  // namespace slm
