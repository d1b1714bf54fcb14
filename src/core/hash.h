// FNV-1a 64: the one non-cryptographic hash slm uses for fingerprints and file checksums
// (tokenizer fingerprints, token shard and checkpoint checksums). Fast enough for hundreds of MB,
// stable across platforms and releases (it is stored in files).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace slm {

inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

// Hash of data[0..n), continued from `h` (start with kFnvOffset).
inline uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnvOffset) {
  const auto* b = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

// 16 lower-case hex digits, as files and messages print hashes.
inline std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace slm
