// The report's pictures of mistakes: which test rows are misclassified, each digit as a small PNG,
// and the labelled grid of misclassified.png, lettered with a built-in 5x7 bitmap font.
#include <algorithm>
#include <cmath>
#include <array>
#include <string>
#include <vector>

#include "mnist_gpu/augment.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/image_io.hpp"
#include "mnist_gpu/report.hpp"
#include "report_detail.hpp"

namespace mnist_gpu {
namespace {

// 5x7 glyphs ('#' ink). '>' is drawn as an arrow: in "7>2" it reads "true 7, predicted 2".
struct Glyph {
  char c;
  std::array<const char*, 7> rows;  // 7 rows of 5 columns
};
constexpr std::array<Glyph, 14> kFont{{
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
    {'>', {".....", "..#..", "...#.", "#####", "...#.", "..#..", "....."}},
    {'%', {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}},
    {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
    {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
}};

const std::array<const char*, 7>& glyph(char c) {
  for (const auto& g : kFont)
    if (g.c == c) return g.rows;
  return kFont.back().rows;
}

constexpr int kGlyphW = 5, kGlyphH = 7;

// Draws `text` in black at (x0, y0), each font pixel a scale x scale block, one blank column
// (scaled) between characters. Pixels outside the image are skipped.
void draw_text(GreyPixels& img, int x0, int y0, const std::string& text, int scale) {
  for (std::size_t k = 0; k < text.size(); ++k) {
    const auto& rows = glyph(text[k]);
    const int gx = x0 + static_cast<int>(k) * (kGlyphW + 1) * scale;
    for (int r = 0; r < kGlyphH; ++r)
      for (int c = 0; c < kGlyphW; ++c) {
        if (rows[static_cast<std::size_t>(r)][c] != '#') continue;
        for (int dy = 0; dy < scale; ++dy)
          for (int dx = 0; dx < scale; ++dx) {
            const int x = gx + c * scale + dx, y = y0 + r * scale + dy;
            if (x >= 0 && x < img.width && y >= 0 && y < img.height)
              img.pixels[static_cast<std::size_t>(y) * img.width + x] = 0;
          }
      }
  }
}

int text_width(const std::string& text, int scale) {
  return text.empty() ? 0 : (static_cast<int>(text.size()) * (kGlyphW + 1) - 1) * scale;
}

}  // namespace

std::vector<Mistake> find_mistakes(const Dataset& data, const std::vector<Prediction>& predictions) {
  if (predictions.size() != static_cast<std::size_t>(data.count))
    throw Error("report: " + std::to_string(predictions.size()) + " predictions for " + std::to_string(data.count) +
                " test images");
  std::vector<Mistake> out;
  for (int i = 0; i < data.count; ++i) {
    const Prediction& p = predictions[static_cast<std::size_t>(i)];
    const int label = data.labels[static_cast<std::size_t>(i)];
    if (p.digit != label) out.push_back({i, label, p.digit, p.prob});
  }
  std::stable_sort(out.begin(), out.end(), [](const Mistake& a, const Mistake& b) { return a.prob > b.prob; });
  return out;
}

GreyPixels mistakes_grid(const Dataset& data, const std::vector<Mistake>& mistakes, int max_cells) {
  const int n = std::max(0, std::min(max_cells, static_cast<int>(mistakes.size())));
  const int cols = std::max(1, std::min(kGridColumns, n));
  const int rows = std::max(1, (n + cols - 1) / cols);
  GreyPixels img;
  img.width = cols * kGridCellWidth;
  img.height = rows * kGridCellHeight;
  img.pixels.assign(static_cast<std::size_t>(img.width) * img.height, 255);
  const int zoom = 2, side = 56, pad = (kGridCellWidth - side) / 2;  // the digit: 28x28 at 2x
  for (int k = 0; k < std::max(n, 1); ++k) {
    const int cx = k % cols * kGridCellWidth, cy = k / cols * kGridCellHeight;
    // A light frame around the digit's square.
    for (int t = -1; t <= side; ++t)
      for (const auto& [x, y] : {std::pair{cx + pad + t, cy + pad - 1}, std::pair{cx + pad + t, cy + pad + side},
                                 std::pair{cx + pad - 1, cy + pad + t}, std::pair{cx + pad + side, cy + pad + t}})
        img.pixels[static_cast<std::size_t>(y) * img.width + x] = 205;
    std::string label = "-";
    if (n > 0) {
      const Mistake& m = mistakes[static_cast<std::size_t>(k)];
      if (data.rows != 28 || data.cols != 28 || m.index < 0 || m.index >= data.count)
        throw Error("report: mistake row " + std::to_string(m.index) + " is not a 28x28 image of the test set");
      const std::uint8_t* src = data.image(m.index);
      for (int y = 0; y < side; ++y)
        for (int x = 0; x < side; ++x)
          img.pixels[static_cast<std::size_t>(cy + pad + y) * img.width + cx + pad + x] =
              static_cast<std::uint8_t>(255 - src[(y / zoom) * 28 + x / zoom]);  // dark ink on white
      label = std::to_string(m.label) + ">" + std::to_string(m.predicted);
    }
    draw_text(img, cx + (kGridCellWidth - text_width(label, 2)) / 2, cy + pad + side + 4, label, 2);
  }
  return img;
}

GreyPixels deformations_grid(const Dataset& train, const AugmentConfig& augment, std::uint64_t seed, int digits,
                             int per_digit) {
  if (train.rows != kAugmentSide || train.cols != kAugmentSide)
    throw Error("report: the deformations grid needs 28x28 training images");
  const int n = std::max(0, std::min(digits, train.count));
  const int zoom = 2, side = kAugmentSide * zoom, gap = 4, split = 16;  // split: after the original
  GreyPixels img;
  img.width = gap + (side + gap) * (1 + per_digit) + split;
  img.height = gap + (side + gap) * std::max(n, 1);
  img.pixels.assign(static_cast<std::size_t>(img.width) * img.height, 255);
  const AugmentPlan plan = make_augment_plan(augment, seed);
  std::vector<float> in(kAugmentPixels), out(kAugmentPixels), work(3 * kAugmentPixels);
  auto draw = [&](const float* px, int x0, int y0) {
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) {
        const float v = px[(y / zoom) * kAugmentSide + x / zoom];
        img.pixels[static_cast<std::size_t>(y0 + y) * img.width + x0 + x] =
            static_cast<std::uint8_t>(255 - std::lround(255.0f * std::clamp(v, 0.0f, 1.0f)));  // dark ink on white
      }
  };
  for (int d = 0; d < n; ++d) {
    const std::uint8_t* src = train.image(d);
    for (int i = 0; i < kAugmentPixels; ++i) in[static_cast<std::size_t>(i)] = static_cast<float>(src[i]) * (1.0f / 255.0f);
    const int y0 = gap + d * (side + gap);
    draw(in.data(), gap, y0);
    for (int e = 1; e <= per_digit; ++e) {
      cpu::augment_image(in.data(), out.data(), plan, augment_key(plan, e, static_cast<std::uint64_t>(d)),
                         train.labels[static_cast<std::size_t>(d)], work.data());
      draw(out.data(), gap + split + e * (side + gap), y0);
    }
  }
  return img;
}

namespace detail {

std::vector<std::uint8_t> digit_png(const Dataset& data, int index) {
  std::vector<std::uint8_t> px(static_cast<std::size_t>(data.pixels()));
  const std::uint8_t* src = data.image(index);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>(255 - src[i]);  // dark ink on white
  return encode_grey_png(data.cols, data.rows, px.data());
}

}  // namespace detail
}  // namespace mnist_gpu
