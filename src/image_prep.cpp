// MNIST-style preprocessing of a digit image: alpha, polarity, ink bounding box, fit to 20x20,
// centre of mass to (14, 14). The steps and their constants are documented in image_prep.hpp.
#include "mnist_gpu/image_prep.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "mnist_gpu/error.hpp"

namespace mnist_gpu {
namespace {

constexpr float kMinContrast = 0.1f;  // below this (25/255) the image counts as blank
constexpr float kBoxLevel = 0.4f;     // share of the contrast that counts as ink for the box
constexpr float kNoiseFloor = 0.08f;  // below this share: paper texture, JPEG ringing -> 0
constexpr int kMargin = 4;            // output pixels of context kept around the box

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

}  // namespace

DigitImage prepare_digit(const GreyImage& img) {
  const int w = img.width, h = img.height;
  const std::size_t n = static_cast<std::size_t>(w) * h;
  if (w < 1 || h < 1 || img.grey.size() != n || (!img.alpha.empty() && img.alpha.size() != n))
    throw Error("no ink found: the image is empty");
  const std::vector<std::size_t> border = border_indices(w, h);
  std::vector<float> v = composite(img, border);

  // Polarity: the paper is the border's median; MNIST has bright ink on black.
  std::vector<float> edge;
  edge.reserve(border.size());
  for (std::size_t i : border) edge.push_back(v[i]);
  float paper = median(edge);
  if (paper > 0.5f) {
    for (float& x : v) x = 1 - x;
    paper = 1 - paper;
  }
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
  const float contrast = ink - paper;
  if (!(contrast >= kMinContrast))
    throw Error("no ink found: the image is blank (ink/paper contrast " + std::to_string(std::lround(100 * std::max(0.0f, contrast))) +
                "%, at least " + std::to_string(std::lround(100 * kMinContrast)) + "% needed)");
  int x0 = w, y0 = h, x1 = -1, y1 = -1;  // bounding box of the ink, inclusive
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float& t = v[static_cast<std::size_t>(y) * w + x];
      t = std::clamp((t - paper) / contrast, 0.0f, 1.0f);
      if (t < kNoiseFloor) t = 0;
      if (t >= kBoxLevel) {
        x0 = std::min(x0, x);
        x1 = std::max(x1, x);
        y0 = std::min(y0, y);
        y1 = std::max(y1, y);
      }
    }
  if (x1 < 0) throw Error("no ink found: nothing stands out from the paper");

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
