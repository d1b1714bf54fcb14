// The `slm` subcommands. Each cmd_*.cpp defines one register_* function that adds its
// subcommand (options, help text and the callback that runs it) to the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace slm::cli {

int run(int argc, char** argv);

void register_info(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_generate(CLI::App& app);
void register_chat(CLI::App& app);
void register_bench(CLI::App& app);
void register_init(CLI::App& app);
void register_tokenizer(CLI::App& app);  // slm tokenizer train | eval
void register_data(CLI::App& app);       // slm data prepare
void register_train(CLI::App& app);
void register_eval(CLI::App& app);
void register_export(CLI::App& app);
void register_plot(CLI::App& app);
void register_debug_train(CLI::App& app);  // referee hooks for tests/reference/train_test.py
void register_collab(CLI::App& app);       // slm collab generate | router | eval
void register_serve(CLI::App& app);        // slm serve

// The `slm collab` subcommands, each in its own cmd_collab_*.cpp, added to the collab group.
void register_collab_generate(CLI::App& collab);
void register_collab_router(CLI::App& collab);
void register_collab_eval(CLI::App& collab);

}  // namespace slm::cli
