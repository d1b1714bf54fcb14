// Finds stop strings in streamed text, across piece boundaries. Text that could still be the
// start of a stop string is held back (not released) until the next piece decides; when a stop
// string completes, the text is cut where it begins: neither it nor anything after it is released.
// Among stop strings that complete in the same push, the one that begins earliest wins. Pieces are
// expected to be valid UTF-8 (see Utf8Stream); then the released text is valid UTF-8 too, because
// every cut falls where a (valid UTF-8) stop string begins.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace slm {

class StopMatcher {
 public:
  // Throws slm::Error if a stop string is empty.
  explicit StopMatcher(std::vector<std::string> stops);

  struct Result {
    std::string text;     // released now
    bool stopped = false; // a stop string completed: the stream is over
    int stop_index = -1;  // which stop string, when stopped
  };
  // Appends a piece. After a stop, further pushes release nothing.
  Result push(std::string_view piece);
  // End of stream without a stop: releases the held-back text.
  std::string flush();
  size_t held() const { return held_.size(); }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // the longest suffix of the text so far that is a proper prefix of a stop
  bool stopped_ = false;
};

}  // namespace slm
