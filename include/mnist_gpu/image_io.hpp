// Reading PNG and JPEG images (libpng, libjpeg) into a grey + alpha float image, with the size
// checked before any pixel is decoded, and writing 8-bit grey PNGs.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

namespace mnist_gpu {

/// Largest image accepted: each side at most 8192 pixels and at most 40 megapixels in all.
constexpr int kMaxImageSide = 8192;
constexpr long long kMaxImagePixels = 40'000'000;

/// A decoded image: luminance and alpha in [0, 1] (0 black / transparent), row-major (height, width).
struct GreyImage {
  int width = 0, height = 0;
  std::vector<float> grey;   // (height, width)
  std::vector<float> alpha;  // (height, width); empty when the file has no alpha channel
};

/// Decodes a PNG (1..16 bit; grey, grey+alpha, RGB, RGBA, palette, with or without tRNS;
/// interlaced or not) or a baseline/progressive JPEG (grey or colour), recognised by signature.
/// Colour becomes luminance 0.299 R + 0.587 G + 0.114 B of the stored (gamma-encoded) values. A
/// JPEG's Exif orientation tag (as phone cameras write it) is applied, so the image is upright.
/// Throws Error naming the file when it is not a regular file (a FIFO or device is refused before
/// it is opened), not a PNG or JPEG ("unsupported format (GIF)" for GIF, BMP, WebP, TIFF, HEIF
/// and AVIF, PDF), is corrupt or truncated (libpng and libjpeg errors become Errors, never an
/// exit), or declares a size beyond the limits above (refused from the header, before pixels are
/// decoded).
GreyImage read_image(const std::filesystem::path& file);

/// `img` as it is meant to be seen under Exif orientation 1..8 (1: as stored; 2 mirrored
/// left-right; 3 turned 180 degrees; 4 mirrored top-bottom; 5 transposed; 6 turned 90 degrees
/// clockwise; 7 transversed; 8 turned 90 degrees anticlockwise). Other values: unchanged.
GreyImage orient(const GreyImage& img, int exif_orientation);

/// Writes an 8-bit greyscale PNG of `pixels` (height, width) atomically (write_file_atomically).
/// Throws Error naming the file.
void write_grey_png(const std::filesystem::path& file, int width, int height, const std::uint8_t* pixels);

/// The bytes of an 8-bit greyscale PNG of `pixels` (height, width), encoded in memory (for
/// data: URLs and atomic writes). Throws Error on a libpng failure or a size outside the limits.
std::vector<std::uint8_t> encode_grey_png(int width, int height, const std::uint8_t* pixels);

}  // namespace mnist_gpu
