// Training-curve plots (train/loss_plot.h, train/png_writer.h) against hand-derived values:
//  * log parsing: training/validation lines, ignored lines, a resumed run replacing steps;
//  * SVG: the polyline and marker coordinates parsed back land where the hand-computed axis
//    mapping puts each data point (the plot frame is parsed from the same file);
//  * PNG: decoded here with zlib (signature, chunk CRCs, IHDR, inflate, all five scanline
//    filters), the line colour found at the hand-computed pixel of data points, the markers'
//    colour at validation points, white far from the data;
//  * `slm plot` writes both formats and refuses bad input with a message.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/loss_plot.h"
#include "train/png_writer.h"
#include "test_util.h"

namespace slm {
namespace {

namespace fs = std::filesystem;

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Steps 0..100 every 10, loss 8 at step 0 falling to 2 at 100 linearly except a flat stretch of 5
// at steps 40..60; validation at 50 (5.5) and 100 (3).
std::string hand_log() {
  std::string s = "{\"event\": \"start\", \"config\": {\"lr\": 0.001}}\n";
  for (int step = 0; step <= 100; step += 10) {
    const double loss = step >= 40 && step <= 60 ? 5.0 : 8.0 - 0.06 * step;
    s += "{\"step\": " + std::to_string(step) + ", \"loss\": " + std::to_string(loss) +
         ", \"lr\": 0.0003, \"tokens\": " + std::to_string(step * 1000) + ", \"elapsed_s\": " +
         std::to_string(step * 2) + "}\n";
    if (step == 50) s += "{\"step\": 50, \"val_loss\": 5.5, \"val_ppl\": 244.7, \"tokens\": 50000, \"elapsed_s\": 100}\n";
  }
  s += "{\"step\": 100, \"val_loss\": 3.0, \"val_ppl\": 20.1}\n";
  s += "not json at all\n";
  return s;
}

struct Frame {
  double left, top, right, bottom;
};

std::vector<std::pair<double, double>> parse_points(const std::string& svg, const std::string& cls) {
  const std::regex re("<polyline class=\"" + cls + "\"[^>]*points=\"([^\"]*)\"");
  std::smatch m;
  if (!std::regex_search(svg, m, re)) return {};
  std::vector<std::pair<double, double>> pts;
  std::istringstream in(m[1].str());
  std::string pair;
  while (in >> pair) {
    const size_t comma = pair.find(',');
    pts.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return pts;
}

Frame parse_frame(const std::string& svg) {
  const std::regex re(
      "<rect x=\"([0-9.]+)\" y=\"([0-9.]+)\" width=\"([0-9.]+)\" height=\"([0-9.]+)\" fill=\"none\" stroke=\"#5a5a5a\"");
  std::smatch m;
  EXPECT_TRUE(std::regex_search(svg, m, re)) << "no plot frame in the SVG";
  const double x = std::stod(m[1]), y = std::stod(m[2]);
  return {x, y, x + std::stod(m[3]), y + std::stod(m[4])};
}

TEST(LossPlot, ReadsTrainingAndValidationLines) {
  test::TempDir dir;
  write_text(dir / "run.jsonl", hand_log());
  const TrainingLog log = read_training_log((dir / "run.jsonl").string());
  ASSERT_EQ(log.train.size(), 11u);
  ASSERT_EQ(log.val.size(), 2u);
  EXPECT_EQ(log.skipped_lines, 1);
  EXPECT_EQ(log.name, "run.jsonl");
  EXPECT_DOUBLE_EQ(log.train[3].step, 30);
  EXPECT_NEAR(log.train[3].value, 8.0 - 1.8, 1e-6);
  EXPECT_DOUBLE_EQ(log.train[3].tokens, 30000);
  EXPECT_DOUBLE_EQ(log.train[3].time, 60);
  EXPECT_DOUBLE_EQ(log.val[0].value, 5.5);
  EXPECT_FALSE(log.val[1].has_tokens);
  EXPECT_TRUE(log.val[1].has_step);
}

TEST(LossPlot, ResumedRunReplacesTheStepsItRewrites) {
  test::TempDir dir;
  std::string s;
  for (int step = 1; step <= 6; ++step) s += "{\"step\": " + std::to_string(step) + ", \"loss\": 9}\n";
  s += "{\"step\": 4, \"val_loss\": 8}\n{\"step\": 6, \"val_loss\": 7}\n{\"event\": \"resume\", \"step\": 3}\n";
  for (int step = 4; step <= 5; ++step) s += "{\"step\": " + std::to_string(step) + ", \"loss\": 1}\n";
  write_text(dir / "r.jsonl", s);
  const TrainingLog log = read_training_log((dir / "r.jsonl").string());
  ASSERT_EQ(log.train.size(), 5u);  // 1 2 3 (old) 4 5 (new)
  for (size_t i = 0; i < 5; ++i) EXPECT_DOUBLE_EQ(log.train[i].step, double(i + 1));
  EXPECT_DOUBLE_EQ(log.train[3].value, 1);
  EXPECT_TRUE(log.val.empty());  // both evaluations were at or after step 4 of the old run
}

TEST(LossPlot, EmaSmoothingByHand) {
  // a = 0.5: s = 0.5, 1.25, 2.125; bias correction divides by 0.5, 0.75, 0.875.
  const std::vector<double> s = ema_smooth({1, 2, 3}, 0.5);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[0], 1.0, 1e-12);
  EXPECT_NEAR(s[1], 1.25 / 0.75, 1e-12);
  EXPECT_NEAR(s[2], 2.125 / 0.875, 1e-12);
  EXPECT_EQ(ema_smooth({4, 4, 4}, 0.9), (std::vector<double>{4, 4, 4}));
}

TEST(LossPlot, NiceTicks) {
  test::TempDir dir;
  write_text(dir / "run.jsonl", hand_log());
  const std::vector<TrainingLog> logs = {read_training_log((dir / "run.jsonl").string())};
  PlotOptions opt;
  const PlotAxes a = plot_axes(logs, opt);
  // x 0..100 -> step 20; loss 2..8 -> step 1 (nice steps for about 5 intervals).
  EXPECT_EQ(a.x_ticks, (std::vector<double>{0, 20, 40, 60, 80, 100}));
  EXPECT_EQ(a.y_ticks, (std::vector<double>{2, 3, 4, 5, 6, 7, 8}));
  EXPECT_DOUBLE_EQ(a.x_lo, 0);
  EXPECT_DOUBLE_EQ(a.x_hi, 100);
  opt.x = PlotX::Tokens;
  const PlotAxes t = plot_axes(logs, opt);
  EXPECT_EQ(t.x_ticks, (std::vector<double>{0, 20000, 40000, 60000, 80000, 100000}));
  opt.x = PlotX::Time;  // 0..200 s -> minutes
  const PlotAxes m = plot_axes(logs, opt);
  EXPECT_EQ(m.x_label, "time (min)");
  EXPECT_DOUBLE_EQ(m.x_div, 60);
  opt.x = PlotX::Step;
  opt.log_y = true;  // 2..8: 1..9 multiples of decades within the padded range
  const PlotAxes l = plot_axes(logs, opt);
  EXPECT_EQ(l.y_ticks, (std::vector<double>{2, 3, 4, 5, 6, 7, 8}));
  EXPECT_NEAR(l.py(4), (l.py(2) + l.py(8)) / 2, 1e-9);  // log scale: 4 is midway between 2 and 8
}

TEST(LossPlot, SvgPointsLandOnTheHandComputedMapping) {
  test::TempDir dir;
  write_text(dir / "run.jsonl", hand_log());
  const std::vector<TrainingLog> logs = {read_training_log((dir / "run.jsonl").string())};
  PlotOptions opt;
  opt.title = "a <b> & c";
  write_plot(logs, opt, (dir / "p.svg").string());
  const std::string svg = test::read_text(dir / "p.svg");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find(">a &lt;b&gt; &amp; c</text>"), std::string::npos);
  EXPECT_NE(svg.find(">train loss</text>"), std::string::npos);  // 11 points: no smoothing
  EXPECT_NE(svg.find(">val loss</text>"), std::string::npos);
  EXPECT_EQ(svg.find("train-smooth"), std::string::npos);

  // Axis ranges by hand: x [0, 100] (ticks every 20), y [2, 8] (ticks every 1) fill the frame.
  const Frame f = parse_frame(svg);
  auto X = [&](double step) { return f.left + step / 100.0 * (f.right - f.left); };
  auto Y = [&](double loss) { return f.bottom - (loss - 2.0) / 6.0 * (f.bottom - f.top); };
  const auto pts = parse_points(svg, "train-raw run0");
  ASSERT_EQ(pts.size(), 11u);
  for (int i = 0; i <= 10; ++i) {
    const double step = 10.0 * i, loss = step >= 40 && step <= 60 ? 5.0 : 8.0 - 0.06 * step;
    // Frame edges are at pixel centres (x.5), data positions are not: 1 pixel of slack.
    EXPECT_NEAR(pts[i].first, X(step), 1.0) << "step " << step;
    EXPECT_NEAR(pts[i].second, Y(loss), 1.0) << "step " << step;
  }
  const auto val = parse_points(svg, "val run0");
  ASSERT_EQ(val.size(), 2u);
  EXPECT_NEAR(val[0].first, X(50), 1.0);
  EXPECT_NEAR(val[0].second, Y(5.5), 1.0);
  EXPECT_NEAR(val[1].second, Y(3.0), 1.0);
  // Exactly linear among themselves (no pixel slack needed): steps 0, 50, 100 map to equal gaps.
  EXPECT_NEAR(pts[5].first - pts[0].first, pts[10].first - pts[5].first, 0.011);
  EXPECT_NEAR(pts[4].second, pts[6].second, 1e-9);
  const std::regex circle("<circle class=\"val-point run0\" cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"");
  auto it = std::sregex_iterator(svg.begin(), svg.end(), circle);
  ASSERT_EQ(std::distance(it, std::sregex_iterator()), 2);
  EXPECT_NEAR(std::stod((*it)[1]), X(50), 1.0);
  EXPECT_NEAR(std::stod((*it)[2]), Y(5.5), 1.0);
}

TEST(LossPlot, SeveralLogsOverlayWithTheirNames) {
  test::TempDir dir;
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  write_text(dir / "a" / "log.jsonl", hand_log());
  write_text(dir / "b" / "log.jsonl", "{\"step\": 1, \"loss\": 3}\n{\"step\": 2, \"loss\": 2.5}\n");
  write_text(dir / "other.jsonl", "{\"step\": 1, \"loss\": 4}\n{\"step\": 3, \"loss\": 3.5}\n");
  std::vector<TrainingLog> logs = {read_training_log((dir / "a" / "log.jsonl").string()),
                                   read_training_log((dir / "b" / "log.jsonl").string()),
                                   read_training_log((dir / "other.jsonl").string())};
  assign_log_names(logs);
  EXPECT_EQ(logs[0].name, (dir / "a" / "log.jsonl").string());  // same file name: the path
  EXPECT_EQ(logs[2].name, "other.jsonl");
  const std::string svg = render_svg(logs, PlotOptions{});
  EXPECT_EQ(parse_points(svg, "train-raw run0").size(), 11u);
  EXPECT_EQ(parse_points(svg, "train-raw run1").size(), 2u);
  EXPECT_EQ(parse_points(svg, "train-raw run2").size(), 2u);
  EXPECT_NE(svg.find(">other.jsonl train</text>"), std::string::npos);
  // Different colours per log.
  const std::regex stroke("class=\"train-raw run([0-9])\" fill=\"none\" stroke=\"(#[0-9a-f]{6})\"");
  std::set<std::string> colours;
  for (auto i = std::sregex_iterator(svg.begin(), svg.end(), stroke); i != std::sregex_iterator(); ++i)
    colours.insert((*i)[2]);
  EXPECT_EQ(colours.size(), 3u);
}

// ---- PNG decoding, written from the PNG specification ----

struct Image {
  uint32_t w = 0, h = 0;
  std::vector<uint8_t> rgb;  // [h, w, 3]
  Rgb at(int x, int y) const {
    const size_t i = (static_cast<size_t>(y) * w + x) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
  }
};

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint32_t(uint8_t(s[at + 3]));
}

Image decode_png(const std::string& png) {
  Image img;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::string idat;
  std::vector<std::string> order;
  size_t at = 8;
  while (at + 12 <= png.size()) {
    const uint32_t len = be32(png, at);
    const std::string type = png.substr(at + 4, 4);
    const std::string data = png.substr(at + 8, len);
    const uint32_t crc = be32(png, at + 8 + len);
    const std::string body = png.substr(at + 4, 4 + len);
    EXPECT_EQ(crc, crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())))
        << "CRC of chunk " << type;
    order.push_back(type);
    if (type == "IHDR") {
      EXPECT_EQ(len, 13u);
      img.w = be32(data, 0);
      img.h = be32(data, 4);
      EXPECT_EQ(data[8], 8);   // bit depth
      EXPECT_EQ(data[9], 2);   // RGB
      EXPECT_EQ(data[12], 0);  // no interlace
    } else if (type == "IDAT") {
      idat += data;
    }
    at += 12 + len;
  }
  EXPECT_EQ(at, png.size());
  EXPECT_EQ(order.front(), "IHDR");
  EXPECT_EQ(order.back(), "IEND");
  const size_t stride = size_t(img.w) * 3;
  std::string raw((stride + 1) * img.h, '\0');
  uLongf raw_len = raw.size();
  EXPECT_EQ(uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_len, reinterpret_cast<const Bytef*>(idat.data()),
                       static_cast<uLong>(idat.size())),
            Z_OK);
  EXPECT_EQ(raw_len, raw.size());
  img.rgb.assign(stride * img.h, 0);
  for (size_t y = 0; y < img.h; ++y) {
    const int filter = uint8_t(raw[y * (stride + 1)]);
    EXPECT_LE(filter, 4) << "row " << y;
    for (size_t i = 0; i < stride; ++i) {
      const int x = uint8_t(raw[y * (stride + 1) + 1 + i]);
      const int a = i >= 3 ? img.rgb[y * stride + i - 3] : 0;
      const int b = y > 0 ? img.rgb[(y - 1) * stride + i] : 0;
      const int c = i >= 3 && y > 0 ? img.rgb[(y - 1) * stride + i - 3] : 0;
      int pred = 0;
      if (filter == 1) pred = a;
      if (filter == 2) pred = b;
      if (filter == 3) pred = (a + b) / 2;
      if (filter == 4) {
        const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      img.rgb[y * stride + i] = static_cast<uint8_t>(x + pred);
    }
  }
  return img;
}

bool near_colour(Rgb a, Rgb b, int tol) {
  return std::abs(a.r - b.r) <= tol && std::abs(a.g - b.g) <= tol && std::abs(a.b - b.b) <= tol;
}

TEST(LossPlot, PngDecodesAndShowsTheData) {
  test::TempDir dir;
  write_text(dir / "run.jsonl", hand_log());
  const std::vector<TrainingLog> logs = {read_training_log((dir / "run.jsonl").string())};
  PlotOptions opt;
  opt.width = 800;
  opt.height = 500;
  write_plot(logs, opt, (dir / "p.PNG").string());  // extension case does not matter
  const Image img = decode_png(test::read_text(dir / "p.PNG"));
  ASSERT_EQ(img.w, 800u);
  ASSERT_EQ(img.h, 500u);
  // The frame is where the SVG of the same options puts it.
  const Frame f = parse_frame(render_svg(logs, opt));
  auto X = [&](double step) { return f.left + step / 100.0 * (f.right - f.left); };
  auto Y = [&](double loss) { return f.bottom - (loss - 2.0) / 6.0 * (f.bottom - f.top); };

  const Rgb line{31, 119, 180}, marker{22, 83, 126}, white{255, 255, 255};
  // The 1.5-pixel anti-aliased line through (step, loss): some pixel within 1 pixel of the point is
  // the line colour blended over white with at least half coverage (a line centred on a pixel
  // boundary covers two rows by 0.75 each).
  auto coverage = [&](Rgb c) {  // alpha if c = (1 - alpha) white + alpha line, else -1
    const double ar = (255.0 - c.r) / (255 - line.r), ag = (255.0 - c.g) / (255 - line.g),
                 ab = (255.0 - c.b) / (255 - line.b);
    return std::abs(ar - ag) < 0.05 && std::abs(ar - ab) < 0.05 ? (ar + ag + ab) / 3 : -1.0;
  };
  auto line_near = [&](double step, double loss) {
    const int cx = static_cast<int>(X(step)), cy = static_cast<int>(Y(loss));
    for (int y = cy - 1; y <= cy + 1; ++y)
      for (int x = cx - 1; x <= cx + 1; ++x)
        if (coverage(img.at(x, y)) >= 0.5) return true;
    return false;
  };
  for (double step : {10.0, 30.0, 45.0, 55.0, 80.0, 90.0}) {
    const double loss = step >= 40 && step <= 60 ? 5.0 : 8.0 - 0.06 * step;
    EXPECT_TRUE(line_near(step, loss)) << "no line pixel at step " << step;
  }
  // The 4-pixel validation markers are solid at their centres.
  EXPECT_TRUE(near_colour(img.at(int(X(50)), int(Y(5.5))), marker, 2));
  // Far from every curve (low loss, early steps): white or a grid line, never a data colour.
  for (double loss : {2.3, 2.6, 3.4})
    for (double step : {5.0, 15.0, 25.0}) {
      const Rgb c = img.at(int(X(step)), int(Y(loss)));
      EXPECT_TRUE(c == white || near_colour(c, Rgb{229, 229, 229}, 1)) << "step " << step << " loss " << loss;
    }
  // Some dark text (title, ticks) above the frame and below it.
  int dark_top = 0, dark_bottom = 0;
  for (uint32_t y = 0; y < img.h; ++y)
    for (uint32_t x = 0; x < img.w; ++x)
      if (near_colour(img.at(int(x), int(y)), Rgb{34, 34, 34}, 10)) {
        if (y < f.top) ++dark_top;
        if (y > f.bottom) ++dark_bottom;
      }
  EXPECT_GT(dark_top, 50);
  EXPECT_GT(dark_bottom, 100);
}

TEST(LossPlot, CanvasPrimitivesByHand) {
  Canvas c(20, 10, Rgb{255, 255, 255});
  c.polyline({{2, 5}, {18, 5}}, 2, Rgb{0, 0, 0});  // covers rows 4 and 5 fully from x=2 to 18
  EXPECT_EQ(c.pixel(10, 4), (Rgb{0, 0, 0}));
  EXPECT_EQ(c.pixel(10, 5), (Rgb{0, 0, 0}));
  EXPECT_EQ(c.pixel(10, 3), (Rgb{255, 255, 255}));
  EXPECT_EQ(c.pixel(10, 6), (Rgb{255, 255, 255}));
  c.polyline({{10, 0.5}, {10, 9.5}}, 1, Rgb{255, 0, 0});  // a half-covered column either side of x=10
  EXPECT_EQ(c.pixel(9, 1).r, 255);
  EXPECT_NEAR(c.pixel(9, 1).g, 128, 1);
  c.set_clip(0, 0, 5, 10);
  c.fill_rect(0, 0, 20, 10, Rgb{0, 255, 0});
  EXPECT_EQ(c.pixel(4, 0), (Rgb{0, 255, 0}));
  EXPECT_NE(c.pixel(5, 0), (Rgb{0, 255, 0}));
  c.reset_clip();
  Canvas t(20, 12, Rgb{255, 255, 255});
  t.text(0, 6, "1", 1, Rgb{0, 0, 0});  // the glyph's box is rows 3..9 (centre 6, height 7)
  EXPECT_EQ(t.pixel(2, 3), (Rgb{0, 0, 0}));  // top of the 1's stem
  EXPECT_EQ(t.pixel(2, 9), (Rgb{0, 0, 0}));  // its base
  EXPECT_EQ(t.pixel(0, 3), (Rgb{255, 255, 255}));
  EXPECT_THROW(Canvas(0, 10, Rgb{}), Error);
}

TEST(LossPlot, RefusesBadInput) {
  test::TempDir dir;
  write_text(dir / "events.jsonl", "{\"event\": \"start\"}\n{\"step\": 1, \"val_loss\": 3}\n");
  EXPECT_THROW(read_training_log((dir / "events.jsonl").string()), Error);
  EXPECT_THROW(read_training_log((dir / "missing.jsonl").string()), Error);
  write_text(dir / "run.jsonl", hand_log());
  const std::vector<TrainingLog> logs = {read_training_log((dir / "run.jsonl").string())};
  EXPECT_THROW(write_plot(logs, PlotOptions{}, (dir / "p.jpg").string()), Error);
  EXPECT_FALSE(fs::exists(dir / "p.jpg"));
  PlotOptions opt;
  opt.smooth = 1;
  EXPECT_THROW(render_svg(logs, opt), Error);
  write_text(dir / "nosteps.jsonl", "{\"loss\": 3}\n{\"loss\": 2}\n");
  const std::vector<TrainingLog> nosteps = {read_training_log((dir / "nosteps.jsonl").string())};
  EXPECT_THROW(plot_axes(nosteps, PlotOptions{}), Error);
}

// ---- the CLI ----

TEST(PlotCli, WritesPngAndSvg) {
  test::TempDir dir;
  write_text(dir / "run.jsonl", hand_log());
  const std::string log = "'" + (dir / "run.jsonl").string() + "'";
  test::CommandResult r = test::run_slm("plot " + log + " -o '" + (dir / "p.png").string() + "' --title T --log-y");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("11 training and 2 validation points"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("skipped 1 line"), std::string::npos) << r.err;
  const Image img = decode_png(test::read_text(dir / "p.png"));
  EXPECT_EQ(img.w, 960u);
  EXPECT_EQ(img.h, 600u);
  r = test::run_slm("plot " + log + " " + log + " --x tokens -o '" + (dir / "p.svg").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string svg = test::read_text(dir / "p.svg");
  EXPECT_NE(svg.find(">100k</text>"), std::string::npos);  // tokens axis 0..100000, k suffix
  EXPECT_EQ(parse_points(svg, "train-raw run1").size(), 11u);
}

TEST(PlotCli, BadInputGivesAMessage) {
  test::TempDir dir;
  write_text(dir / "run.jsonl", hand_log());
  write_text(dir / "empty.jsonl", "{\"event\": \"resume\"}\n");
  write_text(dir / "nosteps.jsonl", "{\"loss\": 3}\n");
  const std::string log = "'" + (dir / "run.jsonl").string() + "'";
  const std::string out = " -o '" + (dir / "p.png").string() + "'";
  struct Case {
    std::string args, expect;
  };
  for (const Case& c : std::vector<Case>{
           {"plot /nonexistent/run.jsonl" + out, "/nonexistent/run.jsonl"},
           {"plot '" + (dir / "empty.jsonl").string() + "'" + out, "no training lines"},
           {"plot " + log + " -o '" + (dir / "p.gif").string() + "'", ".gif"},
           {"plot " + log + out + " --x epochs", "--x"},
           {"plot '" + (dir / "nosteps.jsonl").string() + "'" + out, "\"step\""},
           {"plot " + log + out + " --smooth 1.5", "--smooth"},
           {"plot -o x.png", "logs"},
       }) {
    const test::CommandResult r = test::run_slm(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << c.args;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\nstderr: " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "p.png"));
}

}  // namespace
}  // namespace slm
