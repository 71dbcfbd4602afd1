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

/// MNIST-style preprocessing of `img` (at least 8 x 8 pixels):
///  1. alpha is composited onto the paper colour: the median grey of the border's opaque pixels,
///     or, when the border is mostly transparent, white under dark ink and black under light ink;
///  2. if the border's median brightness is bright the image is inverted so the ink is bright, as
///     in MNIST;
///  3. the background is removed: the paper's level, estimated per block of about 1/8 of the
///     image's side (the 20th percentile, the least of the 3x3 neighbouring blocks, interpolated),
///     is subtracted, so that uneven lighting and shaded paper become 0;
///  4. ink is measured relative to the ink/paper contrast (paper 0, the ink's brightest 3x3 mean
///     1); values below 8% of it, or below 3 deviations of the paper's noise, become 0;
///  5. pieces of ink (8-connected pixels at >= 40% of the contrast) smaller than 10% of the largest
///     piece are specks and are removed; the bounding box of the rest is the digit's box. Ink in
///     10 or more pieces, the largest under 15% of it, is scattered noise: refused;
///  6. the bounding box is scaled to fit 20x20 keeping its aspect ratio (area averaging when
///     shrinking, bilinear when enlarging; faint ink just outside the box comes along);
///  7. the result is placed in 28x28 with its centre of mass at (14, 14) (row and column index,
///     shift rounded, clipped at the borders).
/// Throws Error("no ink found ...") when the image is uniform (contrast below 10%) and Error("no
/// digit found ...") when it is smaller than 8 x 8 pixels or its ink is scattered noise.
DigitImage prepare_digit(const GreyImage& img);

}  // namespace mnist_gpu
