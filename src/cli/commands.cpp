#include "cli/commands.h"

#include <CLI/CLI.hpp>

namespace slm::cli {
int run(int argc, char** argv) {
  CLI::App app{"slm: a toolkit for small language models"};
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
}  // namespace slm::cli
