// The deformations' plan and CPU twin (augment.hpp).
#include "mnist_gpu/augment.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/row_workers.hpp"

namespace mnist_gpu {

AugmentPlan make_augment_plan(const AugmentConfig& cfg, std::uint64_t seed) {
  auto check = [](float v, float hi, const char* what) {
    if (!(v >= 0.0f && v <= hi))
      throw Error(std::string("augment: ") + what + " " + std::to_string(v) + " is outside [0, " + std::to_string(hi) + "]");
  };
  check(cfg.rotate, 180.0f, "rotation (degrees)");
  check(cfg.scale, 99.0f, "scaling (percent)");
  check(cfg.shear, 80.0f, "shear (degrees)");
  check(cfg.sigma, 100.0f, "sigma (pixels)");
  check(cfg.alpha, 1000.0f, "alpha (pixels)");
  const double deg = 3.14159265358979323846 / 180.0;
  AugmentPlan p;
  p.base = mix64(seed ^ 0xA0761D6478BD642Full);
  p.rotate = static_cast<float>(cfg.rotate * deg);
  p.rotate_17 = cfg.kind == AugmentKind::ciresan ? static_cast<float>(0.5 * cfg.rotate * deg) : p.rotate;
  p.scale = cfg.scale / 100.0f;
  p.shear = static_cast<float>(cfg.shear * deg);
  p.alpha = cfg.alpha;
  if (cfg.sigma > 0.0f) {
    p.radius = std::min(kAugmentMaxRadius, static_cast<int>(std::ceil(3.0 * cfg.sigma)));
    std::vector<double> w(static_cast<std::size_t>(2 * p.radius + 1));
    double sum = 0;
    for (int k = -p.radius; k <= p.radius; ++k) {
      w[static_cast<std::size_t>(k + p.radius)] = std::exp(-0.5 * k * k / (static_cast<double>(cfg.sigma) * cfg.sigma));
      sum += w[static_cast<std::size_t>(k + p.radius)];
    }
    for (std::size_t i = 0; i < w.size(); ++i) p.weights[i] = static_cast<float>(w[i] / sum);
  } else {
    p.radius = 0;
    p.weights[0] = 1.0f;  // no smoothing: the raw field
  }
  return p;
}

namespace cpu {

void augment_image(const float* in, float* out, const AugmentPlan& plan, std::uint64_t key, int label, float* work) {
  const AugmentAffine m = augment_affine(plan, key, label);
  float* dx = work;                       // (784) the field along x, then along y, smoothed
  float* dy = work + kAugmentPixels;
  float* tmp = work + 2 * kAugmentPixels;
  const bool elastic = plan.alpha != 0.0f;
  if (elastic) {
    for (int axis = 0; axis < 2; ++axis) {
      float* f = axis == 0 ? dx : dy;
      for (int i = 0; i < kAugmentPixels; ++i) f[i] = augment_noise(key, axis, i);
      for (int y = 0; y < kAugmentSide; ++y)
        for (int x = 0; x < kAugmentSide; ++x) tmp[y * kAugmentSide + x] = augment_blur_at(plan, f, x, y, true);
      for (int y = 0; y < kAugmentSide; ++y)
        for (int x = 0; x < kAugmentSide; ++x)
          f[y * kAugmentSide + x] = plan.alpha * augment_blur_at(plan, tmp, x, y, false);
    }
  }
  for (int y = 0; y < kAugmentSide; ++y)
    for (int x = 0; x < kAugmentSide; ++x) {
      const int i = y * kAugmentSide + x;
      out[i] = augment_pixel(in, m, x, y, elastic ? dx[i] : 0.0f, elastic ? dy[i] : 0.0f);
    }
}

void augment(const float* in, float* out, int rows, const AugmentPlan& plan, const std::uint32_t* indices,
             const std::uint8_t* labels, long long epoch) {
  float work[3 * kAugmentPixels];
  for (int r = 0; r < rows; ++r) {
    const std::size_t at = static_cast<std::size_t>(r) * kAugmentPixels;
    augment_image(in + at, out + at, plan, augment_key(plan, epoch, indices[r]), labels[r], work);
  }
}

namespace {

struct AugmentRows {
  const float* in;
  float* out;
  const AugmentPlan* plan;
  const std::uint32_t* indices;
  const std::uint8_t* labels;
  long long epoch;
};

void augment_rows(void* context, int begin, int end) noexcept {
  const AugmentRows& a = *static_cast<const AugmentRows*>(context);
  const std::size_t at = static_cast<std::size_t>(begin) * kAugmentPixels;
  augment(a.in + at, a.out + at, end - begin, *a.plan, a.indices + begin, a.labels + begin, a.epoch);
}

}  // namespace

void augment(const float* in, float* out, int rows, const AugmentPlan& plan, const std::uint32_t* indices,
             const std::uint8_t* labels, long long epoch, RowWorkers& workers) {
  AugmentRows a{in, out, &plan, indices, labels, epoch};
  // An elastic image takes about 0.1 ms on one core (an affine one a tenth of that): 16 rows a
  // part keep a thread's wake-up small beside its work.
  workers.run(rows, 16, augment_rows, &a);
}

}  // namespace cpu
}  // namespace mnist_gpu
