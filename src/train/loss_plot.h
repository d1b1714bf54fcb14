// Training curves from JSONL training logs to SVG (text written by hand) or PNG (rasterized by
// train/png_writer.h), for `slm plot`.
//
// Log format: one JSON object per line. A line with a numeric "loss" is a training step
// ({"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed_s"}); a line with a
// numeric "val_loss" is an evaluation ({"step", "val_loss", "val_ppl", "tokens", "elapsed_s"}).
// Other lines and keys are ignored (events such as {"event": "resume"}, and lines that are not
// JSON objects, e.g. a last line cut short by a kill). When a point's "step" is not after the
// previous point of its kind (a run resumed from an earlier checkpoint), the points from that step
// on are replaced: the plot shows the history that led to the latest state.
//
// The chart: training loss as a thin line (with a smoothed line over it when smoothing is on),
// validation loss as markers joined by a line, against step, tokens or elapsed time; one colour
// per log, legend names = file names; axes with "nice" ticks (1, 2, 5 x 10^k; on a log axis,
// decades and their 2x, 5x). Both renderers draw the same scene at the same pixel coordinates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/png_writer.h"

namespace slm {

struct LogPoint {
  double step = 0, tokens = 0, time = 0;  // time = elapsed_s
  bool has_step = false, has_tokens = false, has_time = false;
  double value = 0;                       // loss or val_loss
};

struct TrainingLog {
  std::string path;
  std::string name;                       // legend label (file name; unique among the logs)
  std::vector<LogPoint> train, val;
  int64_t skipped_lines = 0;              // not JSON objects
};

// Reads a log; throws slm::Error naming the file if it cannot be read or has no training line.
TrainingLog read_training_log(const std::string& path);
// Legend names: the file name, or the path as given where two logs share a file name.
void assign_log_names(std::vector<TrainingLog>& logs);

enum class PlotX { Step, Tokens, Time };

struct PlotOptions {
  std::string title;      // empty: "training loss" (+ the file name for one log)
  bool log_y = false;
  PlotX x = PlotX::Step;
  double smooth = -1;     // EMA weight in [0, 1); 0 = off; < 0 = auto: 0.9 for a log with more
                          // than 50 training points, else off
  int width = 960, height = 600;
  // Charts of other measurements drawn with the same machinery (e.g. `slm collab eval --plot`: each
  // "log" is one strategy whose val points are (x, value) pairs): axis labels instead of
  // step/tokens/time and loss, no training line required (a log with only val points is legended
  // by its name alone, and points are not clipped to the plot area, so markers on its edges show
  // whole), and the legend in the top-left corner for curves that rise to the right.
  std::string x_label, y_label;  // empty: the defaults
  bool require_train = true;
  bool legend_left = false;
};

// Where data lands in the picture: the plot area in pixels and the axis ranges (x in display
// units: steps, tokens, or seconds/minutes/hours per x_unit), for tests and both renderers.
struct PlotAxes {
  double left = 0, top = 0, right = 0, bottom = 0;  // plot area, pixels
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;    // data range (y: loss, not its log)
  double x_div = 1;                                 // display x = raw x / x_div
  bool log_y = false;
  std::vector<double> x_ticks, y_ticks;             // data values
  std::string x_label;
  double px(double raw_x) const;                    // pixel x of a raw x value
  double py(double y) const;                        // pixel y of a loss value
};

// The x of a point for an axis (NaN if the point lacks that key).
double plot_x(const LogPoint& p, PlotX axis);
// Throws slm::Error when no log has a training point with the axis's key, or (log_y) no positive loss.
PlotAxes plot_axes(const std::vector<TrainingLog>& logs, const PlotOptions& opt);

// TensorBoard-style exponential moving average with bias correction:
// s_i = (a s_{i-1} + (1 - a) x_i), reported as s_i / (1 - a^(i+1)).
std::vector<double> ema_smooth(const std::vector<double>& x, double a);

std::string render_svg(const std::vector<TrainingLog>& logs, const PlotOptions& opt);
Canvas render_raster(const std::vector<TrainingLog>& logs, const PlotOptions& opt);

// Writes .svg or .png by the extension of `path` (case-insensitive), atomically; throws slm::Error
// for any other extension.
void write_plot(const std::vector<TrainingLog>& logs, const PlotOptions& opt, const std::string& path);

}  // namespace slm
