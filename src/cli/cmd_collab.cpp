// slm collab: a small and a large model working together. The group only gathers its
// subcommands: generate (one prompt with a chosen strategy), router (train the token router),
// eval (compare strategies on held-out prompts).
#include "cli/commands.h"

namespace slm::cli {

void register_collab(CLI::App& app) {
  CLI::App* collab = app.add_subcommand(
      "collab", "A small and a large model together: cascades, token router, contrastive and proxy decoding");
  collab->require_subcommand(1);
  register_collab_generate(*collab);
  register_collab_router(*collab);
  register_collab_eval(*collab);
}

}  // namespace slm::cli
