// A small RGB raster for charts and its PNG encoding, with no image library: anti-aliased thick
// polylines and discs (coverage from the distance of each pixel centre to the shape), filled
// rectangles, and text in a built-in 5x8 bitmap font (printable ASCII; other bytes draw as '?')
// scaled by whole pixels. encode_png writes an 8-bit RGB PNG (signature, IHDR, one IDAT holding the
// zlib stream of the filtered scanlines, IEND; CRCs from zlib's crc32).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace slm {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

class Canvas {
 public:
  Canvas(int width, int height, Rgb background);  // throws slm::Error unless 1..16384 pixels a side

  int width() const { return w_; }
  int height() const { return h_; }
  Rgb pixel(int x, int y) const;
  const std::vector<uint8_t>& rgb() const { return px_; }  // [height, width, 3], row 0 at the top

  // Drawing outside [x0, x1) x [y0, y1) (pixels) is dropped until reset_clip().
  void set_clip(int x0, int y0, int x1, int y1);
  void reset_clip();

  // Pixel coordinates: (0, 0) is the top-left corner of the top-left pixel; pixel (x, y) has its
  // centre at (x + 0.5, y + 0.5).
  void fill_rect(double x0, double y0, double x1, double y1, Rgb c);
  // A line of `width` pixels through the points; joints are covered once (no darker knots).
  void polyline(const std::vector<std::pair<double, double>>& points, double width, Rgb c);
  void disc(double cx, double cy, double radius, Rgb c);

  // Text whose box is `scale` * (6 * chars - 1) by `scale` * 7 pixels (capital height; descenders
  // go one font row lower), placed with its box's vertical centre at y and its left edge, centre
  // or right edge at x (anchor -1, 0, 1). vertical: rotated a quarter turn anticlockwise (reads
  // bottom to top), centred likewise on (x, y) along its own axes.
  void text(double x, double y, std::string_view s, int scale, Rgb c, int anchor = -1, bool vertical = false);
  static int text_width(std::string_view s, int scale) {
    return s.empty() ? 0 : scale * (6 * static_cast<int>(s.size()) - 1);
  }
  static int text_height(int scale) { return 7 * scale; }

 private:
  void blend(int x, int y, Rgb c, float alpha);
  int w_, h_;
  int cx0_, cy0_, cx1_, cy1_;  // clip
  std::vector<uint8_t> px_;
};

// The PNG file bytes of the canvas.
std::string encode_png(const Canvas& canvas);

}  // namespace slm
