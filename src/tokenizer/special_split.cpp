// Special-token partition: one trie pass finds which special tokens occur at all, then only those
// are applied, longest first, as llama.cpp does; the text is not scanned once per special token of
// the vocabulary (vocabularies carry hundreds of them), and memory stays O(text).
#include "tokenizer/special_split.h"

#include <algorithm>
#include <numeric>

namespace slm {

namespace {
bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
}  // namespace

SpecialSplitter::SpecialSplitter(const Vocab& vocab, const std::vector<bool>& rstrip) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const TokenType t = i < vocab.types.size() ? vocab.types[i] : TokenType::Normal;
    if ((t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown) &&
        !vocab.tokens[i].empty())
      ids.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return vocab.tokens[a].size() > vocab.tokens[b].size();
  });
  trie_.emplace_back();
  for (int32_t id : ids) {
    const std::string& text = vocab.tokens[id];
    int32_t node = 0;
    for (unsigned char c : text) {
      int32_t n = child(node, c);
      if (n < 0) {
        n = static_cast<int32_t>(trie_.size());
        auto& next = trie_[node].next;
        next.insert(std::upper_bound(next.begin(), next.end(), std::make_pair(c, INT32_MIN)),
                    {c, n});
        trie_.emplace_back();
      }
      node = n;
    }
    if (trie_[node].special >= 0) continue;  // duplicate text: the first id wins
    trie_[node].special = static_cast<int32_t>(specials_.size());
    const bool rs = static_cast<size_t>(id) < rstrip.size() && rstrip[id];
    specials_.push_back({id, text, vocab.types[id] == TokenType::UserDefined, rs});
    first_byte_[static_cast<unsigned char>(text[0])] = true;
  }
}

int32_t SpecialSplitter::child(int32_t node, unsigned char c) const {
  const auto& next = trie_[node].next;
  auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, INT32_MIN));
  return it != next.end() && it->first == c ? it->second : -1;
}

std::vector<SpecialSplitter::Piece> SpecialSplitter::split(std::string_view text,
                                                           bool parse_special) const {
  std::vector<Piece> pieces;
  if (text.empty()) return pieces;
  pieces.push_back({-1, 0, text.size()});
  if (specials_.empty()) return pieces;

  // Pass 1: which eligible special tokens occur at all (a trie walk from each candidate byte).
  std::vector<bool> present(specials_.size(), false);
  size_t n_present = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
    int32_t node = 0;
    for (size_t j = i; j < text.size(); ++j) {
      node = child(node, static_cast<unsigned char>(text[j]));
      if (node < 0) break;
      const int32_t s = trie_[node].special;
      if (s >= 0 && !present[s] && (parse_special || specials_[s].always)) {
        present[s] = true;
        ++n_present;
      }
    }
  }
  if (n_present == 0) return pieces;

  // Pass 2: longest first, each present token cuts every remaining text piece at its leftmost
  // non-overlapping occurrences.
  std::vector<Piece> next;
  for (size_t s = 0; s < specials_.size(); ++s) {
    if (!present[s]) continue;
    const Special& sp = specials_[s];
    const std::string_view needle = sp.text;
    next.clear();
    for (const Piece& p : pieces) {
      if (p.token >= 0) {
        next.push_back(p);
        continue;
      }
      const std::string_view hay = text.substr(0, p.end);
      size_t cursor = p.begin;
      for (size_t at; cursor < p.end && (at = hay.find(needle, cursor)) != std::string_view::npos;) {
        if (at > cursor) next.push_back({-1, cursor, at});
        next.push_back({sp.id, at, at + needle.size()});
        cursor = at + needle.size();
        if (sp.rstrip)
          while (cursor < p.end && is_space(static_cast<unsigned char>(text[cursor]))) ++cursor;
      }
      if (cursor < p.end) next.push_back({-1, cursor, p.end});
    }
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace slm
