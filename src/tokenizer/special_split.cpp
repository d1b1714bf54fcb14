// Special-token partition: one trie pass finds every occurrence of every special token, then the
// tokens are applied longest first, which gives llama.cpp's result without scanning the text once
// per special token (vocabularies carry hundreds of them).
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
    specials_.push_back({id, text.size(), vocab.types[id] == TokenType::UserDefined, rs});
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
  // (special index, position) of every occurrence of an eligible special token.
  std::vector<std::pair<int32_t, size_t>> hits;
  if (!specials_.empty()) {
    for (size_t i = 0; i < text.size(); ++i) {
      if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
      int32_t node = 0;
      for (size_t j = i; j < text.size(); ++j) {
        node = child(node, static_cast<unsigned char>(text[j]));
        if (node < 0) break;
        const int32_t s = trie_[node].special;
        if (s >= 0 && (parse_special || specials_[s].always)) hits.push_back({s, i});
      }
    }
  }
  pieces.push_back({-1, 0, text.size()});
  if (hits.empty()) return pieces;
  std::sort(hits.begin(), hits.end());

  std::vector<Piece> next;
  for (size_t h = 0; h < hits.size();) {
    const int32_t s = hits[h].first;
    size_t h_end = h;
    while (h_end < hits.size() && hits[h_end].first == s) ++h_end;
    const Special& sp = specials_[s];
    next.clear();
    size_t k = h;  // next occurrence to consider (positions ascend, fragments ascend)
    for (const Piece& p : pieces) {
      if (p.token >= 0) {
        next.push_back(p);
        continue;
      }
      size_t cursor = p.begin;
      while (k < h_end && hits[k].second < cursor) ++k;
      for (; k < h_end && hits[k].second + sp.len <= p.end; ++k) {
        const size_t at = hits[k].second;
        if (at < cursor) continue;  // overlaps the previous occurrence
        if (at > cursor) next.push_back({-1, cursor, at});
        next.push_back({sp.id, at, at + sp.len});
        cursor = at + sp.len;
        if (sp.rstrip)
          while (cursor < p.end && is_space(static_cast<unsigned char>(text[cursor]))) ++cursor;
      }
      if (cursor < p.end) next.push_back({-1, cursor, p.end});
    }
    pieces.swap(next);
    h = h_end;
  }
  return pieces;
}

}  // namespace slm
