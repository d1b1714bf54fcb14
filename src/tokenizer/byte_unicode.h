// GPT-2's reversible byte <-> Unicode alphabet used by byte-level BPE vocabularies: every byte
// value maps to one printable code point (printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order), so that any byte string is a string of visible characters.
// Also small UTF-8 helpers shared by the tokenizers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace slm {

// UTF-8 text (2 bytes for bytes mapped above U+007F) of the code point that byte `b` maps to.
const std::string& byte_to_unicode(uint8_t b);

// The byte that the code point `cp` stands for, or -1 if cp is not in the alphabet.
int unicode_to_byte(uint32_t cp);

// Maps each byte of `bytes` to its alphabet character.
std::string bytes_to_unicode(std::string_view bytes);

// Length of the UTF-8 sequence that starts with byte `lead`, as llama.cpp counts it: continuation
// and invalid lead bytes count 1, so any byte string splits into "characters".
inline size_t utf8_len(unsigned char lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// Decodes one code point at s[i]; advances i. Invalid or truncated sequences return -1 and
// advance i by one byte.
int32_t utf8_decode(std::string_view s, size_t& i);

// Appends the UTF-8 encoding of `cp` (0..0x10FFFF) to out.
void utf8_append(std::string& out, uint32_t cp);

// One character of a word in the chain that the BPE and SPM merge loops shrink: bytes
// [off, off + n) of the word (n == 0: merged away), neighbours in the live chain (-1 at the ends).
struct MergeSymbol {
  int32_t prev, next;
  uint32_t off, n;
};

// The characters of `word` (as utf8_len splits them) as a linked chain, in order.
inline std::vector<MergeSymbol> utf8_symbols(std::string_view word) {
  std::vector<MergeSymbol> sym;
  sym.reserve(word.size());
  for (size_t off = 0; off < word.size();) {
    const size_t n = std::min(utf8_len(static_cast<unsigned char>(word[off])), word.size() - off);
    const auto i = static_cast<int32_t>(sym.size());
    sym.push_back({i - 1, off + n == word.size() ? -1 : i + 1, static_cast<uint32_t>(off),
                   static_cast<uint32_t>(n)});
    off += n;
  }
  return sym;
}

}  // namespace slm
