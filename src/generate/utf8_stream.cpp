#include "generate/utf8_stream.h"

namespace slm {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

enum class Kind { Valid, Incomplete, Invalid };
struct Step {
  Kind kind;
  size_t len;  // Valid: sequence length; Invalid: maximal invalid subpart (>= 1); Incomplete: bytes
};

// Classifies the sequence starting at s[i] (Unicode 15, table 3-7: well-formed byte sequences).
Step classify(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {Kind::Valid, 1};
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;       // no overlong forms
    if (b0 == 0xED) hi = 0x9F;       // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;       // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;       // nothing above U+10FFFF
  } else {
    return {Kind::Invalid, 1};       // continuation byte, C0/C1, F5..FF
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) return {Kind::Incomplete, k};
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return {Kind::Invalid, k};
  }
  return {Kind::Valid, len};
}

}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
  std::string data = held_;
  data.append(bytes);
  held_.clear();
  std::string out;
  out.reserve(data.size());
  size_t i = 0;
  while (i < data.size()) {
    const Step st = classify(data, i);
    if (st.kind == Kind::Incomplete) {
      held_ = data.substr(i);
      break;
    }
    if (st.kind == Kind::Valid) out.append(data, i, st.len);
    else out.append(kReplacement);
    i += st.len;
  }
  return out;
}

std::string Utf8Stream::flush() {
  if (held_.empty()) return {};
  held_.clear();
  return std::string(kReplacement);  // a truncated sequence is one maximal invalid subpart
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const Step st = classify(s, i);
    if (st.kind != Kind::Valid) return false;
    i += st.len;
  }
  return true;
}

}  // namespace slm
