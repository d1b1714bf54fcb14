// Byte-level BPE tokenizer (GGUF model "gpt2"), as llama.cpp runs it: the text is cut into words
// by the pre-tokenizer's regexes, each word's bytes are mapped to GPT-2's byte alphabet, then
// adjacent symbols (alphabet characters at first) are merged by merge rank, lowest rank first
// (ties: leftmost). Pre-tokenizers with ignore_merges emit a word that is a token as it is.
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace slm {

namespace {

// Merge-table key: the two texts joined by a byte that valid UTF-8 never contains.
constexpr char kJoin = '\xFF';

class BpeTokenizer final : public BasicTokenizer {
 public:
  BpeTokenizer(Vocab vocab, const std::vector<bool>& rstrip, const PreTokenizerSpec& spec)
      : BasicTokenizer(std::move(vocab), rstrip),
        splitter_(spec.regexes),
        ignore_merges_(spec.ignore_merges) {
    ranks_.reserve(vocab_.merges.size());
    for (size_t i = 0; i < vocab_.merges.size(); ++i) {
      std::string key = vocab_.merges[i];
      key[key.find(' ', 1)] = kJoin;  // from_vocab checked the form "left right"
      ranks_.emplace(std::move(key), static_cast<int32_t>(i));  // first rank wins
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
      const size_t at = i;
      const int32_t cp = utf8_decode(t, i);
      const int b = cp >= 0 ? unicode_to_byte(static_cast<uint32_t>(cp)) : -1;
      if (b >= 0)
        s += static_cast<char>(b);
      else
        s.append(t, at, i - at);  // not in the alphabet: keep the character as it is
    }
    return s;
  }

 private:
  void encode_word(const std::string& word, std::vector<int32_t>& out, std::string& key) const;

  RegexSplitter splitter_;
  bool ignore_merges_;
  TextMap ranks_;  // "left\xFFright" -> rank
};

using Symbol = MergeSymbol;

struct Bigram {
  int32_t rank;
  int32_t left, right;
  uint32_t size;
};

struct BigramOrder {  // top of the priority queue: lowest rank, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

void BpeTokenizer::encode_fragment(std::string_view text, bool /*after_special*/,
                                   std::vector<int32_t>& out) const {
  // Words repeat a lot in real text; remembering them for this call alone keeps the tokenizer
  // free of shared mutable state.
  std::unordered_map<std::string, std::pair<size_t, size_t>> seen;  // word -> range in `cache`
  std::vector<int32_t> cache;
  std::string key;
  for (const auto& [b, e] : splitter_.split(text)) {
    std::string word = bytes_to_unicode(text.substr(b, e - b));
    if (auto it = seen.find(word); it != seen.end()) {
      out.insert(out.end(), cache.begin() + it->second.first,
                 cache.begin() + it->second.first + it->second.second);
      continue;
    }
    const size_t start = out.size();
    encode_word(word, out, key);
    if (seen.size() < (1u << 16)) {
      seen.emplace(std::move(word), std::make_pair(cache.size(), out.size() - start));
      cache.insert(cache.end(), out.begin() + start, out.end());
    }
  }
}

void BpeTokenizer::encode_word(const std::string& w, std::vector<int32_t>& out,
                               std::string& key) const {
  if (ignore_merges_)
    if (int32_t id = lookup(w); id >= 0) {
      out.push_back(id);
      return;
    }
  std::vector<Symbol> sym = utf8_symbols(w);

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    key.assign(w, sym[l].off, sym[l].n);
    key += kJoin;
    key.append(w, sym[r].off, sym[r].n);
    auto it = ranks_.find(key);
    if (it == ranks_.end()) return;
    queue.push({it->second, l, r, sym[l].n + sym[r].n});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    // Symbols only grow or vanish, so an unchanged total size means an unchanged pair.
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int32_t i = 0; !sym.empty() && i >= 0; i = sym[i].next) {
    const std::string_view piece = std::string_view(w).substr(sym[i].off, sym[i].n);
    if (int32_t id = lookup(piece); id >= 0) {
      out.push_back(id);
      continue;
    }
    // Not a token (a merge table that does not match the vocabulary): one token per character,
    // else the byte's <0xXX> token, else the unknown token.
    for (size_t j = 0; j < piece.size();) {
      const size_t at = j;
      const int32_t cp = utf8_decode(piece, j);
      int32_t id = lookup(piece.substr(at, j - at));
      if (id < 0 && cp >= 0)
        if (int byte = unicode_to_byte(static_cast<uint32_t>(cp)); byte >= 0) id = byte_tokens_[byte];
      if (id < 0) id = vocab_.unk;
      if (id < 0)
        throw Error("tokenizer: '" + std::string(piece.substr(at, j - at)) +
                    "' has no token and the vocabulary has no unknown token");
      out.push_back(id);
    }
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab, const std::vector<bool>& rstrip) {
  PreTokenizerSpec spec;
  if (!find_pretokenizer(vocab.pre, spec))
    throw Error("tokenizer.ggml.pre = '" + vocab.pre + "' is not a known pre-tokenizer");
  return std::make_unique<BpeTokenizer>(std::move(vocab), rstrip, spec);
}

}  // namespace slm
