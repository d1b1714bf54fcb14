// Splits text into special-token occurrences and plain-text fragments before the model tokenizer
// runs, as llama.cpp's tokenizer_st_partition does: special tokens are taken longest first (ties:
// lower id first), each one splitting every remaining text fragment at its leftmost
// non-overlapping occurrences. User-defined tokens (added tokens) are always split out; control
// and unknown tokens only with parse_special. rstrip tokens swallow the whitespace after them.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace slm {

class SpecialSplitter {
 public:
  // rstrip: per token id, whether the token swallows following whitespace (may be empty).
  SpecialSplitter(const Vocab& vocab, const std::vector<bool>& rstrip);

  struct Piece {
    int32_t token = -1;        // >= 0: a special token; -1: text[begin, end)
    size_t begin = 0, end = 0;
  };
  std::vector<Piece> split(std::string_view text, bool parse_special) const;

 private:
  struct Special {
    int32_t id;
    std::string text;
    bool always;  // user-defined: split even without parse_special
    bool rstrip;
  };
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;  // sorted by byte
    int32_t special = -1;                                 // index into specials_ ending here
  };
  int32_t child(int32_t node, unsigned char c) const;

  std::vector<Special> specials_;  // longest first
  std::vector<Node> trie_;         // node 0 is the root
  std::array<bool, 256> first_byte_{};
};

}  // namespace slm
