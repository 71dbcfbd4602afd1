// Deformations of the training images (--augment): a random affine map about the image centre
// (rotation, horizontal and vertical scaling, horizontal shear) and an elastic distortion (Simard
// et al. 2003: a displacement field uniform in [-1, 1] per pixel and axis, smoothed by a Gaussian
// of width sigma, scaled by alpha), resampled bilinearly; outside the image is background (0).
//
// Every random number is a counter-based hash of (seed, epoch, the sample's index in the training
// set, draw number), as dropout's masks are (dropout.hpp): the CPU and the GPU deform a sample the
// same way whatever batch it is in, and a resumed run sees the images the uninterrupted run saw.
//
// The map, for output pixel q = (x, y) (x to the right, y down, c = (13.5, 13.5) the centre):
//   source(q) = c + M (q - c) + d(q),   out(q) = bilinear(in, source(q)), clamped to [0, 1]
// where M is the inverse of the content's transform F = Rot(angle) Shear(shear) Scale(sx, sy),
// Rot(a) = [[cos a, -sin a], [sin a, cos a]] (a positive angle turns the digit clockwise as
// displayed, y pointing down), Shear(h) = [[1, tan h], [0, 1]], Scale = diag(sx, sy), and d is
// the elastic field. With every parameter 0 the image is returned unchanged, bit for bit.
//
// Compiles as host code and, under nvcc, device code (the kernel in kernels/augment.cu uses the
// same functions; its CPU twin is cpu::augment).
#pragma once
#include <cmath>
#include <cstdint>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/dropout.hpp"  // mix64, MNIST_GPU_HD

namespace mnist_gpu {

inline constexpr int kAugmentSide = 28;  ///< the images deformed are 28 x 28
inline constexpr int kAugmentPixels = kAugmentSide * kAugmentSide;
/// The Gaussian is truncated at radius min(ceil(3 sigma), 27): past 27 pixels nothing of a 28-pixel
/// image is in reach.
inline constexpr int kAugmentMaxRadius = kAugmentSide - 1;
/// Draws per sample: 4 for the affine map, then one per pixel for x, one per pixel for y.
inline constexpr int kAugmentAffineDraws = 4;

/// A configuration made ready for the deforming: radians, fractions and the smoothing kernel.
struct AugmentPlan {
  std::uint64_t base = 0;   ///< mixes the seed
  float rotate = 0.0f;      ///< the largest rotation, radians
  float rotate_17 = 0.0f;   ///< the largest rotation of the digits 1 and 7 (ciresan: half)
  float scale = 0.0f;       ///< the largest relative change of each scale factor
  float shear = 0.0f;       ///< the largest shear angle, radians
  float alpha = 0.0f;       ///< the elastic field's scale, pixels (0: no elastic distortion)
  int radius = 0;           ///< the Gaussian's half width: weights[0 .. 2 radius]
  float weights[2 * kAugmentMaxRadius + 1] = {};  ///< exp(-k^2 / (2 sigma^2)), normalised to sum 1
};

/// The plan of `cfg` for a run seeded with `seed`. Throws Error for parameters out of range.
AugmentPlan make_augment_plan(const AugmentConfig& cfg, std::uint64_t seed);

/// The key of sample `index` (its row in the training set) in epoch `epoch` (1-based).
MNIST_GPU_HD inline std::uint64_t augment_key(const AugmentPlan& p, long long epoch, std::uint64_t index) {
  return mix64(mix64(p.base + static_cast<std::uint64_t>(epoch) * 0x100000001B3ull) + (index + 1) * 0x9E3779B97F4A7C15ull);
}

/// Draw j of a sample: uniform in [-1, 1) in steps of 2^-23 (exact in float on every device).
MNIST_GPU_HD inline float augment_uniform(std::uint64_t key, std::uint64_t j) {
  const std::uint32_t bits = static_cast<std::uint32_t>(mix64(key + (j + 1) * 0xD1B54A32D192ED03ull) >> 40);
  return static_cast<float>(bits) * (1.0f / 8388608.0f) - 1.0f;
}

/// The sampling matrix M (row-major) of the content transform F described above.
struct AugmentAffine {
  float m00 = 1.0f, m01 = 0.0f, m10 = 0.0f, m11 = 1.0f;
};

/// M = F^-1 for a rotation by `angle` (radians), scale factors sx, sy and shear tangent `shear_tan`.
MNIST_GPU_HD inline AugmentAffine augment_matrix(float angle, float sx, float sy, float shear_tan) {
  const float c = cosf(angle), s = sinf(angle);
  AugmentAffine m;
  m.m00 = (c + shear_tan * s) / sx;
  m.m01 = (s - shear_tan * c) / sx;
  m.m10 = -s / sy;
  m.m11 = c / sy;
  return m;
}

/// The affine map of the sample with key `key` and label `label` (its draws 0 to 3).
MNIST_GPU_HD inline AugmentAffine augment_affine(const AugmentPlan& p, std::uint64_t key, int label) {
  const float largest = (label == 1 || label == 7) ? p.rotate_17 : p.rotate;
  const float angle = largest * augment_uniform(key, 0);
  const float sx = 1.0f + p.scale * augment_uniform(key, 1);
  const float sy = 1.0f + p.scale * augment_uniform(key, 2);
  const float shear_tan = tanf(p.shear * augment_uniform(key, 3));
  return augment_matrix(angle, sx, sy, shear_tan);
}

/// The raw elastic draw of pixel `pixel` on axis `axis` (0: x, 1: y).
MNIST_GPU_HD inline float augment_noise(std::uint64_t key, int axis, int pixel) {
  return augment_uniform(key, static_cast<std::uint64_t>(kAugmentAffineDraws + axis * kAugmentPixels + pixel));
}

/// One pass of the separable smoothing at (x, y) of a 28 x 28 field `f`, along x (`along_x`) or y;
/// outside the image the field is 0.
MNIST_GPU_HD inline float augment_blur_at(const AugmentPlan& p, const float* f, int x, int y, bool along_x) {
  float sum = 0.0f;
  for (int k = -p.radius; k <= p.radius; ++k) {
    const int xx = along_x ? x + k : x, yy = along_x ? y : y + k;
    if (xx < 0 || xx >= kAugmentSide || yy < 0 || yy >= kAugmentSide) continue;
    sum += p.weights[k + p.radius] * f[yy * kAugmentSide + xx];
  }
  return sum;
}

/// Pixel (x, y) of `in`, 0 outside the image.
MNIST_GPU_HD inline float augment_source(const float* in, int x, int y) {
  return (x < 0 || x >= kAugmentSide || y < 0 || y >= kAugmentSide) ? 0.0f : in[y * kAugmentSide + x];
}

/// Output pixel (x, y) of image `in` (28 x 28 in [0, 1]) under M and displacement (dx, dy).
MNIST_GPU_HD inline float augment_pixel(const float* in, const AugmentAffine& m, int x, int y, float dx, float dy) {
  const float c = 0.5f * (kAugmentSide - 1);
  const float ox = static_cast<float>(x) - c, oy = static_cast<float>(y) - c;
  const float px = c + (m.m00 * ox + m.m01 * oy) + dx;
  const float py = c + (m.m10 * ox + m.m11 * oy) + dy;
  const float fx0 = floorf(px), fy0 = floorf(py);
  // Far outside: background (also keeps the int conversion in range).
  if (!(fx0 > -2.0f && fx0 < kAugmentSide + 1.0f && fy0 > -2.0f && fy0 < kAugmentSide + 1.0f)) return 0.0f;
  const int x0 = static_cast<int>(fx0), y0 = static_cast<int>(fy0);
  const float fx = px - fx0, fy = py - fy0;
  const float top = (1.0f - fx) * augment_source(in, x0, y0) + fx * augment_source(in, x0 + 1, y0);
  const float bottom = (1.0f - fx) * augment_source(in, x0, y0 + 1) + fx * augment_source(in, x0 + 1, y0 + 1);
  const float v = (1.0f - fy) * top + fy * bottom;
  return fminf(fmaxf(v, 0.0f), 1.0f);
}

class RowWorkers;

namespace cpu {

/// One image deformed: `in` and `out` (28 x 28, in [0, 1], not overlapping) with the sample's key
/// and label. `work` holds 3 x 784 floats (the field and the smoothing's intermediate).
void augment_image(const float* in, float* out, const AugmentPlan& plan, std::uint64_t key, int label, float* work);

/// `rows` images (rows, 784) of `in` deformed into `out`: row r is training sample indices[r]
/// with label labels[r], in epoch `epoch`. The GPU twin is gpu::augment (kernels/gpu_ops.hpp).
void augment(const float* in, float* out, int rows, const AugmentPlan& plan, const std::uint32_t* indices,
             const std::uint8_t* labels, long long epoch);

/// As above, the rows split between `workers`' threads: each image is deformed on its own, so the
/// result is the same bit for bit whatever the split.
void augment(const float* in, float* out, int rows, const AugmentPlan& plan, const std::uint32_t* indices,
             const std::uint8_t* labels, long long epoch, RowWorkers& workers);

}  // namespace cpu
}  // namespace mnist_gpu
