// Turns an arbitrary photo or scan of one digit into a 28x28 MNIST-like image: bright ink on a
// black background, fitted to 20x20 and centred by its centre of mass, as MNIST was made.
#pragma once
#include <array>
#include <cstdint>

#include "mnist_gpu/image_io.hpp"

namespace mnist_gpu {

constexpr int kDigitSide = 28;  ///< MNIST's image side
constexpr int kDigitBox = 20;   ///< the box the ink's bounding box is scaled to fit

/// A prepared digit: (28, 28) uint8, row-major, 0 paper .. 255 ink.
using DigitImage = std::array<std::uint8_t, kDigitSide * kDigitSide>;

/// MNIST-style preprocessing of `img`:
///  1. alpha is composited onto the paper colour: the median grey of the border's opaque pixels,
///     or, when the border is mostly transparent, white under dark ink and black under light ink;
///  2. the paper is the border's median brightness; if it is bright the image is inverted so the
///     ink is bright, as in MNIST;
///  3. ink is measured relative to the ink/paper contrast (paper 0, the ink's brightest 3x3 mean
///     1); the ink's bounding box holds the pixels at >= 40% of that contrast;
///  4. the bounding box is scaled to fit 20x20 keeping its aspect ratio (area averaging when
///     shrinking, bilinear when enlarging; faint ink just outside the box comes along);
///  5. the result is placed in 28x28 with its centre of mass at (14, 14) (row and column index,
///     shift rounded, clipped at the borders).
/// Throws Error("no ink found ...") when the image is uniform (contrast below 10%) or too small
/// to hold a digit.
DigitImage prepare_digit(const GreyImage& img);

}  // namespace mnist_gpu
