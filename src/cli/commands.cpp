#include "cli/commands.h"

#include <cstdio>
#include <string>

#include "core/error.h"

namespace slm::cli {

int run(int argc, char** argv) {
  CLI::App app{"slm: a fast toolkit for small language models (GGUF, CPU)"};
  app.name("slm");
  app.require_subcommand(1);
  app.set_version_flag("--version", "slm 0.1.0");
  register_info(app);
  register_tokenize(app);
  register_generate(app);
  register_chat(app);
  register_bench(app);
  register_init(app);
  register_tokenizer(app);
  register_data(app);
  register_train(app);
  register_eval(app);
  register_export(app);
  register_plot(app);
  register_debug_train(app);
  register_collab(app);
  register_serve(app);
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) {
      known = known || sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) throw Error(std::string("unknown command '") + argv[1] + "' (commands: " + names + ")");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}

}  // namespace slm::cli
