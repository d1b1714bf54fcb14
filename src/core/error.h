// Errors inside libslm are exceptions whose message names the file, the field and what was
// expected; the CLI prints the message and exits non-zero. Never abort on user input.
#pragma once

#include <stdexcept>
#include <string>

namespace slm {

// Bad input from a user or a file (corrupt GGUF, unknown flag value, ...).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace slm
