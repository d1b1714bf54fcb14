// slm train -c CONFIG [--resume] [--set key=value ...]: trains a llama-architecture model from
// scratch on token shards (train/trainer.h). Flags override single config keys.
#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "train/trainer.h"

namespace slm::cli {
namespace {

struct TrainFlags {
  std::string config;
  bool resume = false;
  bool random_data = false;
  bool quiet = false;
  int64_t steps = 0;
  int threads = 0;
  std::string data, out_dir;
  std::vector<std::string> sets;
  int64_t stop_after = 0;
};

void run_train(const TrainFlags& f) {
  TrainConfig c = TrainConfig::load(f.config);
  if (!f.data.empty()) c.data = f.data;
  if (!f.out_dir.empty()) c.out_dir = f.out_dir;
  if (f.random_data) c.random_data = true;
  if (f.steps > 0) c.steps = f.steps;
  if (f.threads > 0) c.threads = f.threads;
  for (const std::string& kv : f.sets) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--set expects key=value, got '" + kv + "'");
    c.set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  TrainerOptions opt;
  opt.resume = f.resume;
  opt.progress = !f.quiet;
  opt.stop_after = f.stop_after;
  const TrainSummary s = run_training(c, opt);
  std::printf("steps %lld, final training loss %.4f", static_cast<long long>(s.steps), s.final_loss);
  if (s.val_loss >= 0) std::printf(", validation loss %.4f (perplexity %.2f)", s.val_loss, std::exp(s.val_loss));
  std::printf(", %.1f s, median %.0f tokens/s\n", s.seconds, s.tokens_per_s);
}

}  // namespace

void register_train(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  auto* cmd = app.add_subcommand("train", "Train a llama-architecture model from scratch on token shards");
  cmd->footer(
      "The config is a TOML or JSON file of TrainConfig keys (see README, \"Training\"). Output in out_dir:\n"
      "checkpoint.gguf, log.jsonl (plot it with `slm plot`), model.gguf. Ctrl-C saves a checkpoint and stops;\n"
      "--resume continues a run exactly where its last checkpoint left it; its log.jsonl keeps the lines up to\n"
      "that checkpoint and one \"end\" event, where the run finally ends (also when --steps extends it).");
  cmd->add_option("-c,--config", f->config, "training config (.toml or .json)")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--resume", f->resume, "continue from out_dir/checkpoint.gguf");
  cmd->add_option("--data", f->data, "override `data`: directory from `slm data prepare`");
  cmd->add_option("--out-dir", f->out_dir, "override `out_dir`");
  cmd->add_option("--steps", f->steps, "override `steps`");
  cmd->add_option("-t,--threads", f->threads, "override `threads`");
  cmd->add_flag("--random-data", f->random_data, "train on uniform random tokens (benchmarks; needs vocab_size)");
  cmd->add_option("--set", f->sets, "override any config key: --set lr=3e-4 (repeatable)");
  cmd->add_option("--stop-after", f->stop_after, "stop after N steps of this run, with a checkpoint");
  cmd->add_flag("-q,--quiet", f->quiet, "no progress output");
  cmd->callback([f] { run_train(*f); });
}

}  // namespace slm::cli
