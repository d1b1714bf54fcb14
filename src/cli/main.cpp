// slm: the command-line entry point. Each subcommand lives in its own cmd_*.cpp and registers
// itself here; this file only dispatches and turns exceptions into messages and exit codes.
#include <cstdio>
#include <exception>

#include "cli/commands.h"

int main(int argc, char** argv) {
  try {
    return slm::cli::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
