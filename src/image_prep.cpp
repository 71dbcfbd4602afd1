// MNIST-style preprocessing of a digit image: alpha, polarity, ink bounding box, fit to 20x20,
// centre of mass to (14, 14). The steps and their constants are documented in image_prep.hpp.
#include "mnist_gpu/image_prep.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "mnist_gpu/error.hpp"

namespace mnist_gpu {
namespace {

constexpr float kMinContrast = 0.1f;  // below this (25/255) the image counts as blank
constexpr float kBoxLevel = 0.4f;     // share of the contrast that counts as ink for the box
constexpr float kNoiseFloor = 0.08f;  // below this share: paper texture, JPEG ringing -> 0
constexpr float kNoiseSigmas = 3.0f;  // and below this many of the paper's noise deviations -> 0
constexpr int kMargin = 4;            // output pixels of context kept around the box
constexpr int kMinSide = 8;           // a smaller image cannot show a digit
constexpr int kBlocksPerSide = 8;     // the background is estimated per block of about 1/8 of a side
constexpr int kMinBlock = 8;          // ... and at least 8 x 8 pixels
constexpr float kSpeckShare = 0.1f;   // ink pieces smaller than this share of the largest are specks
constexpr float kScatterShare = 0.15f;  // the largest piece under this share of all ink, in
constexpr int kScatterPieces = 10;      // at least this many pieces: scattered noise, no digit

float median(std::vector<float> v) {
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

// Indices of the pixels on the image's outer frame, each once.
std::vector<std::size_t> border_indices(int w, int h) {
  std::vector<std::size_t> idx;
  auto at = [w](int x, int y) { return static_cast<std::size_t>(y) * w + x; };
  for (int x = 0; x < w; ++x) {
    idx.push_back(at(x, 0));
    if (h > 1) idx.push_back(at(x, h - 1));
  }
  for (int y = 1; y + 1 < h; ++y) {
    idx.push_back(at(0, y));
    if (w > 1) idx.push_back(at(w - 1, y));
  }
  return idx;
}

// Grey with alpha composited onto the paper colour (see image_prep.hpp, step 1).
std::vector<float> composite(const GreyImage& img, const std::vector<std::size_t>& border) {
  if (img.alpha.empty()) return img.grey;
  std::vector<float> opaque;
  for (std::size_t i : border)
    if (img.alpha[i] >= 0.5f) opaque.push_back(img.grey[i]);
  float paper;
  if (2 * opaque.size() >= border.size()) {
    paper = median(opaque);
  } else {
    double sum_a = 0, sum_ag = 0;
    for (std::size_t i = 0; i < img.grey.size(); ++i) {
      sum_a += img.alpha[i];
      sum_ag += static_cast<double>(img.alpha[i]) * img.grey[i];
    }
    if (sum_a <= 0) throw Error("no ink found: the image is fully transparent");
    paper = sum_ag / sum_a < 0.5 ? 1.0f : 0.0f;
  }
  std::vector<float> v(img.grey.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = img.alpha[i] * img.grey[i] + (1 - img.alpha[i]) * paper;
  return v;
}

// Resamples each of `rows` rows of `src` (rows, in) (row stride `stride`) to `out` samples into
// dst (rows, out): area averaging when shrinking, bilinear (pixel centres aligned) when enlarging.
void resample_rows(const float* src, int rows, int in, std::size_t stride, int out, float* dst) {
  const double r = static_cast<double>(in) / out;  // input pixels per output pixel
  for (int y = 0; y < rows; ++y) {
    const float* s = src + static_cast<std::size_t>(y) * stride;
    float* d = dst + static_cast<std::size_t>(y) * out;
    for (int i = 0; i < out; ++i) {
      if (r > 1.0) {
        const double a = i * r, b = (i + 1) * r;  // covers input [a, b)
        double sum = 0;
        for (int j = static_cast<int>(a); j < in && j < b; ++j)
          sum += s[j] * (std::min<double>(j + 1, b) - std::max<double>(j, a));
        d[i] = static_cast<float>(sum / r);
      } else {
        const double x = std::clamp((i + 0.5) * r - 0.5, 0.0, static_cast<double>(in - 1));
        const int j = static_cast<int>(x);
        const int j1 = std::min(j + 1, in - 1);
        const double f = x - j;
        d[i] = static_cast<float>((1 - f) * s[j] + f * s[j1]);
      }
    }
  }
}

// (h, w) -> (oh, ow), separably.
std::vector<float> resample(const std::vector<float>& src, int w, int h, int ow, int oh) {
  std::vector<float> horiz(static_cast<std::size_t>(h) * ow);  // (h, ow)
  resample_rows(src.data(), h, w, static_cast<std::size_t>(w), ow, horiz.data());
  std::vector<float> t(static_cast<std::size_t>(ow) * h);  // transposed (ow, h)
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < ow; ++x) t[static_cast<std::size_t>(x) * h + y] = horiz[static_cast<std::size_t>(y) * ow + x];
  std::vector<float> vert(static_cast<std::size_t>(ow) * oh);  // (ow, oh)
  resample_rows(t.data(), ow, h, static_cast<std::size_t>(h), oh, vert.data());
  std::vector<float> out(static_cast<std::size_t>(oh) * ow);  // (oh, ow)
  for (int x = 0; x < ow; ++x)
    for (int y = 0; y < oh; ++y) out[static_cast<std::size_t>(y) * ow + x] = vert[static_cast<std::size_t>(x) * oh + y];
  return out;
}

// The paper's level at every pixel of v (h, w) (ink bright): per block of s x s pixels its 20th
// percentile, lowered to the least of its 3 x 3 neighbourhood of blocks (a block that a stroke fills
// does not raise it), interpolated bilinearly between block centres. It follows uneven lighting
// and shading that vary over more than a block; strokes are narrower than a block.
std::vector<float> background(const std::vector<float>& v, int w, int h) {
  const int s = std::max(kMinBlock, (std::max(w, h) + kBlocksPerSide - 1) / kBlocksPerSide);
  const int bx = (w + s - 1) / s, by = (h + s - 1) / s;
  std::vector<float> level(static_cast<std::size_t>(bx) * by);
  std::vector<float> block;
  for (int j = 0; j < by; ++j)
    for (int i = 0; i < bx; ++i) {
      block.clear();
      for (int y = j * s; y < std::min(h, (j + 1) * s); ++y)
        for (int x = i * s; x < std::min(w, (i + 1) * s); ++x) block.push_back(v[static_cast<std::size_t>(y) * w + x]);
      const auto at = block.begin() + static_cast<std::ptrdiff_t>(block.size() / 5);
      std::nth_element(block.begin(), at, block.end());
      level[static_cast<std::size_t>(j) * bx + i] = *at;
    }
  std::vector<float> low(level.size());
  for (int j = 0; j < by; ++j)
    for (int i = 0; i < bx; ++i) {
      float m = level[static_cast<std::size_t>(j) * bx + i];
      for (int jj = std::max(0, j - 1); jj <= std::min(by - 1, j + 1); ++jj)
        for (int ii = std::max(0, i - 1); ii <= std::min(bx - 1, i + 1); ++ii)
          m = std::min(m, level[static_cast<std::size_t>(jj) * bx + ii]);
      low[static_cast<std::size_t>(j) * bx + i] = m;
    }
  std::vector<float> bg(v.size());
  auto coord = [s](int p, int blocks, int* b0, int* b1, float* f) {  // pixel -> blocks and weight
    const float c = std::clamp((static_cast<float>(p) + 0.5f) / static_cast<float>(s) - 0.5f, 0.0f,
                               static_cast<float>(blocks - 1));
    *b0 = static_cast<int>(c);
    *b1 = std::min(*b0 + 1, blocks - 1);
    *f = c - static_cast<float>(*b0);
  };
  for (int y = 0; y < h; ++y) {
    int j0, j1;
    float fy;
    coord(y, by, &j0, &j1, &fy);
    for (int x = 0; x < w; ++x) {
      int i0, i1;
      float fx;
      coord(x, bx, &i0, &i1, &fx);
      auto L = [&](int j, int i) { return low[static_cast<std::size_t>(j) * bx + i]; };
      bg[static_cast<std::size_t>(y) * w + x] =
          (1 - fy) * ((1 - fx) * L(j0, i0) + fx * L(j0, i1)) + fy * ((1 - fx) * L(j1, i0) + fx * L(j1, i1));
    }
  }
  return bg;
}

// The noise of the paper in r (ink bright, the paper at 0): 1.4826 x the median absolute value, an
// estimate of the standard deviation that the ink (a minority of pixels) does not move.
float noise_sigma(const std::vector<float>& r) {
  std::vector<float> dev(r.size());
  for (std::size_t i = 0; i < r.size(); ++i) dev[i] = std::abs(r[i]);
  return 1.4826f * median(dev);
}

// Removes the specks from t (h, w) (0..1 of the contrast): the 8-connected pieces of pixels at or
// above kBoxLevel smaller than kSpeckShare of the largest piece are set to 0. Returns the bounding
// box of what is kept ({x0, y0, x1, y1}, inclusive). Throws when the ink is scattered noise: at
// least kScatterPieces pieces with the largest under kScatterShare of all.
std::array<int, 4> drop_specks(std::vector<float>& t, int w, int h) {
  std::vector<int> piece(t.size(), -1);
  std::vector<std::vector<std::size_t>> pieces;
  std::vector<std::size_t> stack;
  for (std::size_t start = 0; start < t.size(); ++start) {
    if (t[start] < kBoxLevel || piece[start] >= 0) continue;
    const int id = static_cast<int>(pieces.size());
    pieces.emplace_back();
    piece[start] = id;
    stack.assign(1, start);
    while (!stack.empty()) {
      const std::size_t p = stack.back();
      stack.pop_back();
      pieces.back().push_back(p);
      const int px = static_cast<int>(p % w), py = static_cast<int>(p / w);
      for (int y = std::max(0, py - 1); y <= std::min(h - 1, py + 1); ++y)
        for (int x = std::max(0, px - 1); x <= std::min(w - 1, px + 1); ++x) {
          const std::size_t q = static_cast<std::size_t>(y) * w + x;
          if (t[q] >= kBoxLevel && piece[q] < 0) {
            piece[q] = id;
            stack.push_back(q);
          }
        }
    }
  }
  if (pieces.empty()) throw Error("no ink found: nothing stands out from the paper");
  std::size_t largest = 0, total = 0;
  for (const auto& p : pieces) {
    largest = std::max(largest, p.size());
    total += p.size();
  }
  if (static_cast<int>(pieces.size()) >= kScatterPieces && static_cast<float>(largest) < kScatterShare * static_cast<float>(total))
    throw Error("no digit found: the ink is scattered specks (" + std::to_string(pieces.size()) +
                " pieces, the largest " + std::to_string(largest) + " of " + std::to_string(total) + " ink pixels)");
  std::array<int, 4> box{w, h, -1, -1};
  for (const auto& p : pieces) {
    const bool speck = static_cast<float>(p.size()) < kSpeckShare * static_cast<float>(largest);
    for (std::size_t i : p) {
      if (speck) {
        t[i] = 0;
        continue;
      }
      const int x = static_cast<int>(i % w), y = static_cast<int>(i / w);
      box = {std::min(box[0], x), std::min(box[1], y), std::max(box[2], x), std::max(box[3], y)};
    }
  }
  return box;
}

}  // namespace

DigitImage prepare_digit(const GreyImage& img) {
  const int w = img.width, h = img.height;
  const std::size_t n = static_cast<std::size_t>(w) * h;
  if (w < 1 || h < 1 || img.grey.size() != n || (!img.alpha.empty() && img.alpha.size() != n))
    throw Error("no ink found: the image is empty");
  if (w < kMinSide || h < kMinSide)
    throw Error("no digit found: the image is " + std::to_string(w) + "x" + std::to_string(h) +
                " pixels, too small to hold a digit (at least " + std::to_string(kMinSide) + "x" +
                std::to_string(kMinSide) + ")");
  const std::vector<std::size_t> border = border_indices(w, h);
  std::vector<float> v = composite(img, border);

  // Polarity: the border's median is the paper; MNIST has bright ink on black.
  std::vector<float> edge;
  edge.reserve(border.size());
  for (std::size_t i : border) edge.push_back(v[i]);
  if (median(edge) > 0.5f)
    for (float& x : v) x = 1 - x;
  // The paper, lit unevenly or not, becomes 0 (pixels darker than it go negative): the background
  // removed, then what is left of the paper's level (its median; the background is a low estimate
  // of a noisy paper).
  const std::vector<float> bg = background(v, w, h);
  for (std::size_t i = 0; i < n; ++i) v[i] -= bg[i];
  const float level = median(v);
  for (float& x : v) x -= level;
  const float sigma = noise_sigma(v);
  // The ink's level: the brightest 3x3 mean, so that a lone bright speck does not set the scale.
  float ink = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float sum = 0;
      int cnt = 0;
      for (int yy = std::max(0, y - 1); yy <= std::min(h - 1, y + 1); ++yy)
        for (int xx = std::max(0, x - 1); xx <= std::min(w - 1, x + 1); ++xx, ++cnt)
          sum += v[static_cast<std::size_t>(yy) * w + xx];
      ink = std::max(ink, sum / static_cast<float>(cnt));
    }
  const float contrast = ink;  // over the paper's 0
  if (!(contrast >= kMinContrast))
    throw Error("no ink found: the image is blank (ink/paper contrast " + std::to_string(std::lround(100 * std::max(0.0f, contrast))) +
                "%, at least " + std::to_string(std::lround(100 * kMinContrast)) + "% needed)");
  // Below the floor (paper texture, JPEG ringing, the paper's noise): 0.
  const float floor = std::max(kNoiseFloor, kNoiseSigmas * sigma / contrast);
  for (float& t : v) {
    t = std::clamp(t / contrast, 0.0f, 1.0f);
    if (t < floor) t = 0;
  }
  // The bounding box of the ink, inclusive, specks left out.
  const auto [x0, y0, x1, y1] = drop_specks(v, w, h);

  // Fit the box to 20x20 keeping the aspect ratio; bring kMargin output pixels of context.
  const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const double scale = static_cast<double>(kDigitBox) / std::max(bw, bh);
  const int m = static_cast<int>(std::ceil(kMargin / scale));
  const int wx0 = std::max(0, x0 - m), wy0 = std::max(0, y0 - m);
  const int ww = std::min(w - 1, x1 + m) - wx0 + 1, wh = std::min(h - 1, y1 + m) - wy0 + 1;
  std::vector<float> window(static_cast<std::size_t>(ww) * wh);  // (wh, ww)
  for (int y = 0; y < wh; ++y)
    std::copy_n(v.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(wy0 + y) * w + wx0), ww,
                window.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(y) * ww));
  const int ow = std::max(1, static_cast<int>(std::lround(ww * scale)));
  const int oh = std::max(1, static_cast<int>(std::lround(wh * scale)));
  const std::vector<float> fitted = resample(window, ww, wh, ow, oh);  // (oh, ow)

  // Centre of mass (row/column index) to (14, 14).
  double mass = 0, mx = 0, my = 0;
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      const double t = fitted[static_cast<std::size_t>(y) * ow + x];
      mass += t;
      mx += t * x;
      my += t * y;
    }
  if (!(mass > 0)) throw Error("no ink found: the digit vanished when scaled");
  const long dx = std::lround(kDigitSide / 2 - mx / mass), dy = std::lround(kDigitSide / 2 - my / mass);
  DigitImage out{};
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      const long tx = x + dx, ty = y + dy;
      if (tx < 0 || ty < 0 || tx >= kDigitSide || ty >= kDigitSide) continue;
      const float t = std::clamp(fitted[static_cast<std::size_t>(y) * ow + x], 0.0f, 1.0f);
      out[static_cast<std::size_t>(ty * kDigitSide + tx)] = static_cast<std::uint8_t>(std::lround(255 * t));
    }
  return out;
}

}  // namespace mnist_gpu
