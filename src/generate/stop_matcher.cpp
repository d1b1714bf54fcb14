#include "generate/stop_matcher.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/error.h"

namespace slm {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); ++i)
    if (stops_[i].empty())
      throw Error("stop strings: entry " + std::to_string(i) + " is empty (expected at least one character)");
}

StopMatcher::Result StopMatcher::push(std::string_view piece) {
  Result r;
  if (stopped_) {
    r.stopped = true;
    return r;
  }
  std::string text = std::move(held_);
  text.append(piece);
  held_.clear();

  // Earliest complete occurrence of any stop string. held_ alone never holds a complete one, so
  // a match must end inside the new piece; searching the whole (short-held + piece) text is simple.
  size_t cut = std::string::npos;
  for (size_t s = 0; s < stops_.size(); ++s) {
    const size_t pos = text.find(stops_[s]);
    if (pos < cut) {
      cut = pos;
      r.stop_index = static_cast<int>(s);
    }
  }
  if (cut != std::string::npos) {
    stopped_ = r.stopped = true;
    r.text = text.substr(0, cut);
    return r;
  }

  // Hold the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    const size_t max_len = std::min(stop.size() - 1, text.size());
    for (size_t len = max_len; len > hold; --len)
      if (text.compare(text.size() - len, len, stop, 0, len) == 0) {
        hold = len;
        break;
      }
  }
  held_ = text.substr(text.size() - hold);
  text.resize(text.size() - hold);
  r.text = std::move(text);
  return r;
}

std::string StopMatcher::flush() {
  if (stopped_) return {};
  return std::exchange(held_, {});
}

}  // namespace slm
