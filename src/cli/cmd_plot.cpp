// slm plot: training curves (loss, validation loss) from one or more JSONL training logs to a PNG
// or SVG image; the log format and the chart are described in train/loss_plot.h.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "train/loss_plot.h"

namespace slm::cli {
namespace {

struct PlotFlags {
  std::vector<std::string> logs;
  std::string out, title, x = "step";
  bool log_y = false;
  double smooth = -1;
  int width = 960, height = 600;
};

void run_plot(const PlotFlags& f) {
  if (f.logs.empty()) throw Error("give at least one training log (slm plot LOG.jsonl -o loss.png)");
  PlotOptions opt;
  if (f.x == "step") opt.x = PlotX::Step;
  else if (f.x == "tokens") opt.x = PlotX::Tokens;
  else if (f.x == "time") opt.x = PlotX::Time;
  else throw Error("--x must be step, tokens or time, got '" + f.x + "'");
  opt.title = f.title;
  opt.log_y = f.log_y;
  opt.smooth = f.smooth;
  opt.width = f.width;
  opt.height = f.height;
  std::vector<TrainingLog> logs;
  for (const auto& path : f.logs) {
    logs.push_back(read_training_log(path));
    const TrainingLog& l = logs.back();
    if (l.skipped_lines > 0)
      std::fprintf(stderr, "%s: skipped %lld line(s) that are not JSON objects\n", path.c_str(),
                   static_cast<long long>(l.skipped_lines));
  }
  assign_log_names(logs);
  write_plot(logs, opt, f.out);
  size_t train = 0, val = 0;
  for (const auto& l : logs) train += l.train.size(), val += l.val.size();
  std::printf("wrote %s (%zu log%s, %zu training and %zu validation points)\n", f.out.c_str(), logs.size(),
              logs.size() == 1 ? "" : "s", train, val);
}

}  // namespace

void register_plot(CLI::App& app) {
  auto f = std::make_shared<PlotFlags>();
  CLI::App* cmd = app.add_subcommand("plot", "Draw training curves from JSONL training logs to a PNG or SVG image");
  cmd->add_option("logs", f->logs, "training logs (JSONL, as slm train writes them); several overlay")->required();
  cmd->add_option("-o,--output", f->out, "image to write: .png or .svg")->required();
  cmd->add_option("--title", f->title, "chart title (default: training loss and the log's name)");
  cmd->add_flag("--log-y", f->log_y, "logarithmic loss axis");
  cmd->add_option("--x", f->x, "x axis: step, tokens or time")->capture_default_str();
  cmd->add_option("--smooth", f->smooth,
                  "EMA weight for a smoothed training curve over the raw one, in [0, 1); 0 = off; "
                  "-1 = 0.9 for logs with more than 50 training points")
      ->capture_default_str();
  cmd->add_option("--width", f->width, "image width in pixels")->capture_default_str();
  cmd->add_option("--height", f->height, "image height in pixels")->capture_default_str();
  cmd->callback([f] { run_plot(*f); });
}

}  // namespace slm::cli
