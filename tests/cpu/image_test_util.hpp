// Test images for the prediction tests: real MNIST test digits redrawn as PNG/JPEG files with
// libpng/libjpeg (large, off-centre, in every PNG colour type and as JPEG, with or without an Exif
// orientation), a small model trained once, and helpers for refusals and files.
#pragma once
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/image_io.hpp"
#include "mnist_gpu/image_prep.hpp"
#include "mnist_gpu/model_io.hpp"
#include "mnist_gpu/predict.hpp"
#include "mnist_gpu/train.hpp"
#include "test_paths.hpp"

namespace mnist_gpu::test_images {

using namespace mnist_gpu;
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

inline const MnistFiles& real_data() {
  static const MnistFiles files = load_mnist_dir(mnist_gpu::test::data_dir());
  return files;
}

class NullObserver : public TrainObserver {};

// A small model trained quickly (hidden 64, 2 epochs on 20,000 images: ~96% on the test set).
inline const SavedModel& small_model() {
  static const SavedModel model = [] {
    const MnistFiles& f = real_data();
    std::vector<std::uint32_t> idx(20000);
    for (std::uint32_t i = 0; i < idx.size(); ++i) idx[i] = i;
    const Dataset tr = subset(f.train, idx);
    TrainConfig cfg;
    cfg.model.hidden = {64};
    cfg.epochs = 2;
    cfg.batch = 100;
    cfg.val = 0;
    NullObserver obs;
    auto be = make_cpu_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed);
    const Dataset none;
    train(cfg, TrainData{tr, none, f.test}, *be, obs);
    return SavedModel{cfg.model, be->get_params()};
  }();
  return model;
}

inline DigitImage mnist_digit(int i) {
  DigitImage d;
  std::copy_n(real_data().test.image(i), d.size(), d.begin());
  return d;
}

inline fs::path fresh_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("mnist_gpu_predict_" + std::to_string(::getpid()) + "_" + tag);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

inline ::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// --- writing test images with libpng / libjpeg ----------------------------------------------------

// Writes `rows` (height rows of packed samples; 16-bit samples big-endian, as PNG stores them).
inline bool write_png(const fs::path& file, int w, int h, int bit_depth, int color_type, const Bytes& data,
               const std::vector<png_color>& palette = {}) {
  std::FILE* f = std::fopen(file.c_str(), "wb");
  if (!f) return false;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  const std::size_t rowbytes = data.size() / static_cast<std::size_t>(h);
  std::vector<png_bytep> rows(static_cast<std::size_t>(h));
  for (int y = 0; y < h; ++y) rows[y] = const_cast<png_bytep>(data.data()) + static_cast<std::size_t>(y) * rowbytes;
  bool ok = false;
  if (!setjmp(png_jmpbuf(png))) {
    png_init_io(png, f);
    png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), bit_depth, color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
    png_write_info(png, info);
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
    ok = true;
  }
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
  return ok;
}

// The APP1 payload of an Exif block that holds only the orientation tag (big-endian TIFF, IFD0 with
// one entry: tag 0x0112, type SHORT, count 1), as a phone camera writes it among other tags.
inline Bytes exif_orientation_block(int orientation) {
  return Bytes{'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8,  // TIFF header, IFD0 at 8
               0, 1,                                                   // one entry
               0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, static_cast<std::uint8_t>(orientation), 0, 0,
               0, 0, 0, 0};  // no next IFD
}

// A JPEG of `data` (h, w, components); with exif_orientation > 0, an Exif block naming it.
inline bool write_jpeg(const fs::path& file, int w, int h, int components, const Bytes& data, int quality,
                       int exif_orientation = 0) {
  std::FILE* f = std::fopen(file.c_str(), "wb");
  if (!f) return false;
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = components;
  c.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  if (exif_orientation > 0) {
    const Bytes exif = exif_orientation_block(exif_orientation);
    jpeg_write_marker(&c, JPEG_APP0 + 1, exif.data(), static_cast<unsigned>(exif.size()));
  }
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(data.data()) + static_cast<std::size_t>(c.next_scanline) * w * components;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
  return true;
}

// The MNIST digit as "ink coverage" in [0, 1], upscaled `k` times (bilinear) and placed at (ox, oy)
// on a w x h canvas; coverage (h, w).
inline std::vector<float> canvas_coverage(const DigitImage& d, int k, int w, int h, int ox, int oy) {
  std::vector<float> cov(static_cast<std::size_t>(w) * h, 0.0f);
  for (int y = 0; y < 28 * k; ++y)
    for (int x = 0; x < 28 * k; ++x) {
      const double sx = std::clamp((x + 0.5) / k - 0.5, 0.0, 27.0), sy = std::clamp((y + 0.5) / k - 0.5, 0.0, 27.0);
      const int x0 = static_cast<int>(sx), y0 = static_cast<int>(sy);
      const int x1 = std::min(x0 + 1, 27), y1 = std::min(y0 + 1, 27);
      const double fx = sx - x0, fy = sy - y0;
      auto at = [&](int xx, int yy) { return d[static_cast<std::size_t>(yy * 28 + xx)] / 255.0; };
      const double v = (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x1, y0)) + fy * ((1 - fx) * at(x0, y1) + fx * at(x1, y1));
      cov[static_cast<std::size_t>(oy + y) * w + ox + x] = static_cast<float>(v);
    }
  return cov;
}

inline std::uint8_t u8(double v) { return static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0, 255.0))); }

// The kinds of file each digit is redrawn as.
enum class Kind { rgb, rgba_transparent, grey16, palette, grey_alpha_chalk, jpeg_grey, jpeg_rgb };
inline const Kind kAllKinds[] = {Kind::rgb, Kind::rgba_transparent, Kind::grey16, Kind::palette,
                          Kind::grey_alpha_chalk, Kind::jpeg_grey, Kind::jpeg_rgb};
inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::rgb: return "rgb";
    case Kind::rgba_transparent: return "rgba";
    case Kind::grey16: return "grey16";
    case Kind::palette: return "palette";
    case Kind::grey_alpha_chalk: return "grey_alpha";
    case Kind::jpeg_grey: return "jpeg_grey";
    case Kind::jpeg_rgb: return "jpeg_rgb";
  }
  return "?";
}

// Draws digit `d` 8x enlarged, off-centre on a 300x260 canvas, as `kind`; returns the file.
inline fs::path draw(const fs::path& dir, const std::string& stem, const DigitImage& d, Kind kind) {
  const int w = 300, h = 260, k = 8;
  const std::vector<float> cov = canvas_coverage(d, k, w, h, 20, 30);
  const std::size_t n = cov.size();
  const bool jpeg = kind == Kind::jpeg_grey || kind == Kind::jpeg_rgb;
  const fs::path file = dir / (stem + "_" + kind_name(kind) + (jpeg ? ".jpg" : ".png"));
  Bytes data;
  bool ok = false;
  switch (kind) {
    case Kind::rgb:  // dark blue ink on off-white paper
      for (std::size_t i = 0; i < n; ++i)
        for (double paper_ink : {250.0 - 220 * cov[i], 248.0 - 218 * cov[i], 240.0 - 120 * cov[i]})
          data.push_back(u8(paper_ink));
      ok = write_png(file, w, h, 8, PNG_COLOR_TYPE_RGB, data);
      break;
    case Kind::rgba_transparent:  // black ink whose coverage is its alpha; transparent black paper
      for (std::size_t i = 0; i < n; ++i)
        for (double c : {0.0, 0.0, 0.0, 255.0 * cov[i]}) data.push_back(u8(c));
      ok = write_png(file, w, h, 8, PNG_COLOR_TYPE_RGBA, data);
      break;
    case Kind::grey16:  // 16-bit dark grey ink on light grey paper
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = static_cast<std::uint16_t>(std::lround(52000.0 - 45000.0 * cov[i]));
        data.push_back(static_cast<std::uint8_t>(v >> 8));
        data.push_back(static_cast<std::uint8_t>(v & 0xFF));
      }
      ok = write_png(file, w, h, 16, PNG_COLOR_TYPE_GRAY, data);
      break;
    case Kind::palette: {  // 8-bit palette of 256 sepia tones, dark ink on light paper
      std::vector<png_color> pal(256);
      for (int i = 0; i < 256; ++i)
        pal[i] = png_color{static_cast<png_byte>(255 - i * 200 / 255), static_cast<png_byte>(245 - i * 200 / 255),
                           static_cast<png_byte>(225 - i * 200 / 255)};
      for (std::size_t i = 0; i < n; ++i) data.push_back(u8(255.0 * cov[i]));
      ok = write_png(file, w, h, 8, PNG_COLOR_TYPE_PALETTE, data, pal);
      break;
    }
    case Kind::grey_alpha_chalk:  // light chalk on a dark board, opaque: no inversion needed
      for (std::size_t i = 0; i < n; ++i) {
        data.push_back(u8(40.0 + 190.0 * cov[i]));
        data.push_back(255);
      }
      ok = write_png(file, w, h, 8, PNG_COLOR_TYPE_GRAY_ALPHA, data);
      break;
    case Kind::jpeg_grey:
      for (std::size_t i = 0; i < n; ++i) data.push_back(u8(245.0 - 225.0 * cov[i]));
      ok = write_jpeg(file, w, h, 1, data, 85);
      break;
    case Kind::jpeg_rgb:  // dark red ink on white
      for (std::size_t i = 0; i < n; ++i)
        for (double c : {255.0 - 120 * cov[i], 255.0 - 235 * cov[i], 255.0 - 235 * cov[i]}) data.push_back(u8(c));
      ok = write_jpeg(file, w, h, 3, data, 85);
      break;
  }
  EXPECT_TRUE(ok) << file;
  return file;
}

inline double mean_abs_diff(const DigitImage& a, const DigitImage& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
  return s / static_cast<double>(a.size());
}

inline std::string refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "was accepted";
  return "";
}

inline void write_bytes(const fs::path& file, const Bytes& b) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

inline Bytes read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

inline void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

// A PNG chunk with its CRC (over type and data), as the format requires.
inline void put_chunk(Bytes& out, const char* type, const Bytes& data) {
  put_be32(out, static_cast<std::uint32_t>(data.size()));
  Bytes body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  out.insert(out.end(), body.begin(), body.end());
  put_be32(out, static_cast<std::uint32_t>(::crc32(0, body.data(), static_cast<uInt>(body.size()))));
}

// A PNG whose IHDR declares w x h 8-bit grey, followed by a tiny (valid-CRC) IDAT and IEND.
inline Bytes forged_png(std::uint32_t w, std::uint32_t h) {
  Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Bytes ihdr;
  put_be32(ihdr, w);
  put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0});
  put_chunk(out, "IHDR", ihdr);
  Bytes raw(64, 0), z(128);
  uLongf zlen = z.size();
  ::compress(z.data(), &zlen, raw.data(), raw.size());
  z.resize(zlen);
  put_chunk(out, "IDAT", z);
  put_chunk(out, "IEND", {});
  return out;
}


// --- running the executable -------------------------------------------------------------------

using ExeRun = mnist_gpu::test::StreamsResult;

// Runs the executable with `args` (already shell-quoted), capturing stdout and stderr apart.
inline ExeRun run_exe(const std::string& args) { return mnist_gpu::test::run_exe_streams(args); }

inline std::string q(const fs::path& p) { return "'" + p.string() + "'"; }


}  // namespace mnist_gpu::test_images
