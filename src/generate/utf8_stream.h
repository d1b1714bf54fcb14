// Turns a stream of byte pieces (token texts, which may cut a multi-byte UTF-8 character in two)
// into pieces that are each valid UTF-8: an incomplete sequence at the end of a push is held
// until the bytes that complete it arrive; bytes that can never form a valid character
// (stray continuation bytes, overlong forms, surrogates, > U+10FFFF, a sequence cut short by a
// byte that does not continue it) become U+FFFD, one per maximal invalid subpart as the Unicode
// standard recommends (the practice of WHATWG's decoder and Python's errors="replace").
#pragma once

#include <string>
#include <string_view>

namespace slm {

class Utf8Stream {
 public:
  // Appends bytes; returns the longest valid UTF-8 text that is now complete (possibly empty).
  std::string push(std::string_view bytes);
  // End of stream: returns the held incomplete sequence as U+FFFD (or "" if none) and resets.
  std::string flush();
  // Bytes held back, waiting for the rest of their character.
  size_t pending() const { return held_.size(); }

 private:
  std::string held_;  // a valid prefix of one multi-byte sequence, at most 3 bytes
};

// True if `s` is entirely valid UTF-8 (the same rules as Utf8Stream).
bool is_valid_utf8(std::string_view s);

}  // namespace slm
