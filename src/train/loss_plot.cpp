#include "train/loss_plot.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"

namespace slm {

// ---- reading logs ------------------------------------------------------------------------------

namespace {

std::optional<double> number(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

LogPoint point_of(const nlohmann::json& j, double value) {
  LogPoint p;
  p.value = value;
  if (auto v = number(j, "step")) p.step = *v, p.has_step = true;
  if (auto v = number(j, "tokens")) p.tokens = *v, p.has_tokens = true;
  if (auto v = number(j, "elapsed_s")) p.time = *v, p.has_time = true;
  return p;
}

// Drops the points at or after `step` (a resumed run rewrites them).
void drop_from(std::vector<LogPoint>& pts, double step) {
  std::erase_if(pts, [step](const LogPoint& p) { return p.has_step && p.step >= step; });
}

}  // namespace

TrainingLog read_training_log(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error(path + ": no such log file");
  TrainingLog log;
  log.path = path;
  log.name = std::filesystem::path(path).filename().string();
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      ++log.skipped_lines;
      continue;
    }
    if (auto loss = number(j, "loss")) {
      const LogPoint p = point_of(j, *loss);
      if (p.has_step && !log.train.empty() && log.train.back().has_step && p.step <= log.train.back().step) {
        drop_from(log.train, p.step);
        drop_from(log.val, p.step);
      }
      log.train.push_back(p);
    }
    if (auto val = number(j, "val_loss")) {
      const LogPoint p = point_of(j, *val);
      if (p.has_step && !log.val.empty() && log.val.back().has_step && p.step <= log.val.back().step)
        drop_from(log.val, p.step);
      log.val.push_back(p);
    }
  }
  if (log.train.empty())
    throw Error(path + ": no training lines (JSON objects with a numeric \"loss\") in the log");
  return log;
}

void assign_log_names(std::vector<TrainingLog>& logs) {
  std::map<std::string, int> count;
  for (const auto& l : logs) ++count[std::filesystem::path(l.path).filename().string()];
  for (auto& l : logs) {
    const std::string base = std::filesystem::path(l.path).filename().string();
    l.name = count[base] > 1 ? l.path : base;
  }
}

// ---- axes --------------------------------------------------------------------------------------

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double nice_step(double range, int target) {
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

// Ticks every nice step; the range grows to whole steps.
std::vector<double> linear_ticks(double& lo, double& hi) {
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    const double pad = std::max(0.5, 0.05 * std::abs(lo));
    lo -= pad, hi += pad;
  }
  const double step = nice_step(hi - lo, 5);
  lo = std::floor(lo / step + 1e-9) * step;
  hi = std::ceil(hi / step - 1e-9) * step;
  std::vector<double> t;
  for (int i = 0;; ++i) {
    const double v = lo + i * step;
    if (v > hi + step * 1e-6) break;
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

// Log axis: the range padded by 3% of its decades; ticks at m x 10^k with m in {1, 2, 5} (all of
// 1..9 when that gives fewer than 4, only 1 when more than 12), or linear ticks in a narrow range.
std::vector<double> log_ticks(double& lo, double& hi) {
  double L = std::log10(lo), H = std::log10(hi);
  if (H - L < 1e-9) L -= 0.1, H += 0.1;
  const double pad = 0.03 * (H - L);
  L -= pad, H += pad;
  lo = std::pow(10.0, L), hi = std::pow(10.0, H);
  auto with = [&](std::initializer_list<int> ms) {
    std::vector<double> t;
    for (int k = static_cast<int>(std::floor(L)); k <= static_cast<int>(std::ceil(H)); ++k)
      for (int m : ms) {
        const double v = m * std::pow(10.0, k);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t.push_back(v);
      }
    return t;
  };
  std::vector<double> t = with({1, 2, 5});
  if (t.size() < 4) t = with({1, 2, 3, 4, 5, 6, 7, 8, 9});
  if (t.size() > 12) t = with({1});
  if (t.size() < 2) {
    const double step = nice_step(hi - lo, 4);
    t.clear();
    for (double v = std::ceil(lo / step) * step; v <= hi; v += step) t.push_back(v);
  }
  return t;
}

}  // namespace

double plot_x(const LogPoint& p, PlotX axis) {
  switch (axis) {
    case PlotX::Step: return p.has_step ? p.step : kNaN;
    case PlotX::Tokens: return p.has_tokens ? p.tokens : kNaN;
    case PlotX::Time: return p.has_time ? p.time : kNaN;
  }
  return kNaN;
}

double PlotAxes::px(double raw_x) const {
  return left + (raw_x / x_div - x_lo) / (x_hi - x_lo) * (right - left);
}

double PlotAxes::py(double y) const {
  const double f = log_y ? (std::log10(y) - std::log10(y_lo)) / (std::log10(y_hi) - std::log10(y_lo))
                         : (y - y_lo) / (y_hi - y_lo);
  return bottom - f * (bottom - top);
}

namespace {

const char* axis_key(PlotX x) { return x == PlotX::Step ? "step" : x == PlotX::Tokens ? "tokens" : "elapsed_s"; }

bool usable(const LogPoint& p, const PlotOptions& opt) {
  return !std::isnan(plot_x(p, opt.x)) && (!opt.log_y || p.value > 0);
}

// Tick label: decimals from the tick step; k/M/G for large values.
std::string tick_label(double v, double step, double biggest) {
  if (v == 0) return "0";
  const char* suffix = "";
  double div = 1;
  if (biggest >= 1e9) div = 1e9, suffix = "G";
  else if (biggest >= 1e6) div = 1e6, suffix = "M";
  else if (biggest >= 1e4) div = 1e3, suffix = "k";
  v /= div, step /= div;
  const int decimals = std::clamp(static_cast<int>(std::ceil(-std::log10(step) - 1e-9)), 0, 6);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, v + 0.0, suffix);
  return buf;
}

std::vector<std::string> tick_labels(const std::vector<double>& ticks, bool log) {
  double biggest = 0;
  for (double t : ticks) biggest = std::max(biggest, std::abs(t));
  std::vector<std::string> out;
  for (size_t i = 0; i < ticks.size(); ++i) {
    // On a log axis each label gets the decimals of its own magnitude.
    const double step = log ? std::pow(10.0, std::floor(std::log10(ticks[i]) + 1e-9))
                            : (ticks.size() > 1 ? ticks[1] - ticks[0] : 1.0);
    out.push_back(tick_label(ticks[i], step, log ? ticks[i] : biggest));
  }
  return out;
}

}  // namespace

PlotAxes plot_axes(const std::vector<TrainingLog>& logs, const PlotOptions& opt) {
  if (!(opt.smooth < 1)) throw Error("--smooth must be below 1 (0 = off), got " + std::to_string(opt.smooth));
  if (opt.width > 16384 || opt.height > 16384)
    throw Error("the image may be at most 16384 pixels a side, got " + std::to_string(opt.width) + "x" +
                std::to_string(opt.height));
  PlotAxes a;
  a.log_y = opt.log_y;
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  bool any_train = false;
  for (const auto& log : logs)
    for (const auto* pts : {&log.train, &log.val})
      for (const LogPoint& p : *pts) {
        if (!usable(p, opt)) continue;
        any_train |= pts == &log.train;
        const double x = plot_x(p, opt.x);
        xlo = std::min(xlo, x), xhi = std::max(xhi, x);
        ylo = std::min(ylo, p.value), yhi = std::max(yhi, p.value);
      }
  if (!any_train && (opt.require_train || xlo > xhi))
    throw Error(std::string("no training line has a numeric \"") + axis_key(opt.x) + "\"" +
                (opt.log_y ? " and a positive loss (--log-y)" : "") + " to plot against (--x)");
  a.x_label = opt.x == PlotX::Step ? "step" : opt.x == PlotX::Tokens ? "tokens" : "time (s)";
  if (opt.x == PlotX::Time && xhi > 2 * 3600) a.x_div = 3600, a.x_label = "time (h)";
  else if (opt.x == PlotX::Time && xhi > 180) a.x_div = 60, a.x_label = "time (min)";
  if (!opt.x_label.empty()) a.x_label = opt.x_label;
  a.x_lo = xlo / a.x_div, a.x_hi = xhi / a.x_div;
  a.x_ticks = linear_ticks(a.x_lo, a.x_hi);
  a.y_lo = ylo, a.y_hi = yhi;
  a.y_ticks = opt.log_y ? log_ticks(a.y_lo, a.y_hi) : linear_ticks(a.y_lo, a.y_hi);

  // Margins: the y label column, then the widest y tick label.
  int label_w = 0;
  for (const auto& s : tick_labels(a.y_ticks, opt.log_y)) label_w = std::max(label_w, Canvas::text_width(s, 2));
  a.left = 16 + Canvas::text_height(2) + 12 + label_w + 8;
  a.right = opt.width - 28;
  a.top = 52;
  a.bottom = opt.height - 64;
  if (a.right - a.left < 50 || a.bottom - a.top < 50)
    throw Error("the image is too small for a plot: " + std::to_string(opt.width) + "x" + std::to_string(opt.height));
  return a;
}

std::vector<double> ema_smooth(const std::vector<double>& x, double a) {
  std::vector<double> out(x.size());
  double s = 0, w = 1;
  for (size_t i = 0; i < x.size(); ++i) {
    s = a * s + (1 - a) * x[i];
    w *= a;
    out[i] = s / (1 - w);
  }
  return out;
}

// ---- the scene ---------------------------------------------------------------------------------

namespace {

using Points = std::vector<std::pair<double, double>>;

// The drawing operations the chart needs; SVG and raster implement them at the same coordinates.
class Painter {
 public:
  virtual ~Painter() = default;
  virtual void rect(double x0, double y0, double x1, double y1, std::optional<Rgb> fill, std::optional<Rgb> stroke) = 0;
  virtual void line(const Points& pts, double width, Rgb c, const std::string& cls) = 0;
  virtual void disc(double x, double y, double r, Rgb c, const std::string& cls) = 0;
  virtual void text(double x, double y, const std::string& s, int scale, Rgb c, int anchor, bool vertical) = 0;
  virtual void clip_to(const PlotAxes* a) = 0;  // nullptr: no clip
};

constexpr Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                            {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
constexpr Rgb kWhite{255, 255, 255}, kInk{34, 34, 34}, kGrid{229, 229, 229}, kFrame{90, 90, 90};

Rgb mix(Rgb a, Rgb b, double t) {  // (1 - t) a + t b
  auto m = [t](uint8_t x, uint8_t y) { return static_cast<uint8_t>(std::lround(x * (1 - t) + y * t)); };
  return {m(a.r, b.r), m(a.g, b.g), m(a.b, b.b)};
}

double crisp(double v) { return std::floor(v) + 0.5; }  // centre of a pixel: sharp 1-pixel lines

double smoothing_of(const TrainingLog& log, const PlotOptions& opt) {
  if (opt.smooth >= 0) return opt.smooth;
  return log.train.size() > 50 ? 0.9 : 0.0;
}

void draw(const std::vector<TrainingLog>& logs, const PlotOptions& opt, Painter& p) {
  const PlotAxes a = plot_axes(logs, opt);
  p.rect(0, 0, opt.width, opt.height, kWhite, std::nullopt);
  std::string title = opt.title;
  if (title.empty()) title = logs.size() == 1 ? "training loss: " + logs[0].name : "training loss";
  p.text(opt.width / 2.0, 24, title, 2, kInk, 0, false);

  // Grid, frame, ticks and their labels.
  const auto xl = tick_labels(a.x_ticks, false), yl = tick_labels(a.y_ticks, a.log_y);
  for (size_t i = 0; i < a.x_ticks.size(); ++i) {
    const double x = crisp(a.px(a.x_ticks[i] * a.x_div));
    p.line({{x, a.top}, {x, a.bottom}}, 1, kGrid, "grid");
    p.line({{x, a.bottom}, {x, a.bottom + 5}}, 1, kFrame, "tick");
    p.text(x, a.bottom + 18, xl[i], 2, kInk, 0, false);
  }
  for (size_t i = 0; i < a.y_ticks.size(); ++i) {
    const double y = crisp(a.py(a.y_ticks[i]));
    p.line({{a.left, y}, {a.right, y}}, 1, kGrid, "grid");
    p.line({{a.left - 5, y}, {a.left, y}}, 1, kFrame, "tick");
    p.text(a.left - 9, y, yl[i], 2, kInk, 1, false);
  }
  p.rect(crisp(a.left), crisp(a.top), crisp(a.right), crisp(a.bottom), std::nullopt, kFrame);
  p.text((a.left + a.right) / 2, opt.height - 20, a.x_label, 2, kInk, 0, false);
  p.text(16 + Canvas::text_height(2) / 2.0, (a.top + a.bottom) / 2, !opt.y_label.empty() ? opt.y_label : a.log_y ? "loss (log scale)" : "loss", 2, kInk,
         0, true);

  // Data, clipped to the plot area.
  struct Entry {
    std::string label;
    Rgb colour;
    bool marker;
    double width;
  };
  std::vector<Entry> legend;
  if (opt.require_train) p.clip_to(&a);  // smoothed lines may overshoot; points-only charts do not
  for (size_t li = 0; li < logs.size(); ++li) {
    const TrainingLog& log = logs[li];
    const Rgb c = kPalette[li % std::size(kPalette)];
    const std::string run = std::to_string(li);
    Points raw;
    std::vector<double> values;
    for (const LogPoint& q : log.train)
      if (usable(q, opt)) {
        raw.emplace_back(a.px(plot_x(q, opt.x)), a.py(q.value));
        values.push_back(q.value);
      }
    const double sm = smoothing_of(log, opt);
    const std::string name = logs.size() == 1 ? "train loss" : log.name + " train";
    if (raw.empty()) {
      // A points-only series: no training line, no legend entry for one.
    } else if (sm > 0) {
      p.line(raw, 1, mix(c, kWhite, 0.6), "train-raw run" + run);
      const std::vector<double> s = ema_smooth(values, sm);
      Points smooth;
      for (size_t i = 0; i < s.size(); ++i) smooth.emplace_back(raw[i].first, a.py(s[i]));
      p.line(smooth, 2, c, "train-smooth run" + run);
      char buf[32];
      std::snprintf(buf, sizeof buf, " (EMA %.3g)", sm);
      legend.push_back({name + buf, c, false, 2});
    } else {
      p.line(raw, 1.5, c, "train-raw run" + run);
      legend.push_back({name, c, false, 1.5});
    }
    Points val;
    for (const LogPoint& q : log.val)
      if (usable(q, opt)) val.emplace_back(a.px(plot_x(q, opt.x)), a.py(q.value));
    if (!val.empty()) {
      const Rgb vc = mix(c, Rgb{0, 0, 0}, 0.3);
      p.line(val, 1.5, vc, "val run" + run);
      for (const auto& [x, y] : val) p.disc(x, y, 4, vc, "val-point run" + run);
      legend.push_back({!opt.require_train ? log.name : logs.size() == 1 ? "val loss" : log.name + " val", vc,
                        true, 1.5});
    }
  }
  p.clip_to(nullptr);

  // Legend in the top-right corner of the plot area (loss curves fall away from it).
  int text_w = 0;
  for (const auto& e : legend) text_w = std::max(text_w, Canvas::text_width(e.label, 2));
  const double row = 24, bw = 12 + 28 + 10 + text_w + 12, bh = 10 + row * legend.size();
  const double bx0 = opt.legend_left ? std::floor(a.left) + 10 : std::floor(a.right) - 10 - bw, bx1 = bx0 + bw;
  const double by0 = std::floor(a.top) + 10;
  p.rect(crisp(bx0), crisp(by0), crisp(bx1), crisp(by0 + bh), kWhite, Rgb{200, 200, 200});
  for (size_t i = 0; i < legend.size(); ++i) {
    const double y = by0 + 5 + row * (i + 0.5);
    p.line({{bx0 + 12, y}, {bx0 + 40, y}}, legend[i].width, legend[i].colour, "legend");
    if (legend[i].marker) p.disc(bx0 + 26, y, 4, legend[i].colour, "legend");
    p.text(bx0 + 50, y, legend[i].label, 2, kInk, -1, false);
  }
}

// ---- SVG ----

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // Control bytes are not allowed in XML 1.0.
        out += (static_cast<unsigned char>(ch) < 0x20 && ch != '\t') ? '?' : ch;
    }
  }
  return out;
}

std::string hex(Rgb c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v + 0.0);
  return buf;
}

class SvgPainter : public Painter {
 public:
  SvgPainter(int w, int h) {
    out_ << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" viewBox=\"0 0 "
         << w << ' ' << h << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n";
  }
  std::string finish() {
    out_ << "</svg>\n";
    return out_.str();
  }
  void rect(double x0, double y0, double x1, double y1, std::optional<Rgb> fill, std::optional<Rgb> stroke) override {
    out_ << "<rect x=\"" << num(x0) << "\" y=\"" << num(y0) << "\" width=\"" << num(x1 - x0) << "\" height=\""
         << num(y1 - y0) << "\" fill=\"" << (fill ? hex(*fill) : "none") << '"';
    if (stroke) out_ << " stroke=\"" << hex(*stroke) << "\" stroke-width=\"1\"";
    out_ << "/>\n";
  }
  void line(const Points& pts, double width, Rgb c, const std::string& cls) override {
    if (pts.empty()) return;
    out_ << "<polyline class=\"" << cls << "\" fill=\"none\" stroke=\"" << hex(c) << "\" stroke-width=\"" << width
         << "\" stroke-linejoin=\"round\" stroke-linecap=\"round\" points=\"";
    for (size_t i = 0; i < pts.size(); ++i) out_ << (i ? " " : "") << num(pts[i].first) << ',' << num(pts[i].second);
    out_ << "\"/>\n";
  }
  void disc(double x, double y, double r, Rgb c, const std::string& cls) override {
    out_ << "<circle class=\"" << cls << "\" cx=\"" << num(x) << "\" cy=\"" << num(y) << "\" r=\"" << num(r)
         << "\" fill=\"" << hex(c) << "\"/>\n";
  }
  void text(double x, double y, const std::string& s, int scale, Rgb c, int anchor, bool vertical) override {
    // Font size whose capital height (~0.72 em) matches the bitmap font's 7 * scale pixels.
    out_ << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" font-size=\"" << num(9.7 * scale)
         << "\" fill=\"" << hex(c) << "\" dominant-baseline=\"central\" text-anchor=\""
         << (anchor < 0 ? "start" : anchor == 0 ? "middle" : "end") << '"';
    if (vertical) out_ << " transform=\"rotate(-90 " << num(x) << ' ' << num(y) << ")\"";
    out_ << '>' << xml_escape(s) << "</text>\n";
  }
  void clip_to(const PlotAxes* a) override {
    if (a) {
      out_ << "<clipPath id=\"plot-area\"><rect x=\"" << num(a->left) << "\" y=\"" << num(a->top) << "\" width=\""
           << num(a->right - a->left) << "\" height=\"" << num(a->bottom - a->top) << "\"/></clipPath>\n"
           << "<g clip-path=\"url(#plot-area)\">\n";
    } else {
      out_ << "</g>\n";
    }
  }

 private:
  std::ostringstream out_;
};

// ---- raster ----

class RasterPainter : public Painter {
 public:
  explicit RasterPainter(Canvas& c) : c_(c) {}
  void rect(double x0, double y0, double x1, double y1, std::optional<Rgb> fill, std::optional<Rgb> stroke) override {
    if (fill) c_.fill_rect(x0, y0, x1, y1, *fill);
    if (stroke) c_.polyline({{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}}, 1, *stroke);
  }
  void line(const Points& pts, double width, Rgb c, const std::string&) override { c_.polyline(pts, width, c); }
  void disc(double x, double y, double r, Rgb c, const std::string&) override { c_.disc(x, y, r, c); }
  void text(double x, double y, const std::string& s, int scale, Rgb c, int anchor, bool vertical) override {
    c_.text(x, y, s, scale, c, anchor, vertical);
  }
  void clip_to(const PlotAxes* a) override {
    if (a)
      c_.set_clip(static_cast<int>(std::ceil(a->left)), static_cast<int>(std::ceil(a->top)),
                  static_cast<int>(std::floor(a->right)) + 1, static_cast<int>(std::floor(a->bottom)) + 1);
    else
      c_.reset_clip();
  }

 private:
  Canvas& c_;
};

}  // namespace

std::string render_svg(const std::vector<TrainingLog>& logs, const PlotOptions& opt) {
  SvgPainter p(opt.width, opt.height);
  draw(logs, opt, p);
  return p.finish();
}

Canvas render_raster(const std::vector<TrainingLog>& logs, const PlotOptions& opt) {
  Canvas c(opt.width, opt.height, kWhite);
  RasterPainter p(c);
  draw(logs, opt, p);
  return c;
}

void write_plot(const std::vector<TrainingLog>& logs, const PlotOptions& opt, const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (ext == ".svg") {
    write_file_atomic(path, render_svg(logs, opt));
  } else if (ext == ".png") {
    write_file_atomic(path, encode_png(render_raster(logs, opt)));
  } else {
    throw Error(path + ": unknown image type '" + ext + "' (-o must end in .png or .svg)");
  }
}

}  // namespace slm
