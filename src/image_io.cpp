// PNG and JPEG decoding into GreyImage, and 8-bit grey PNG writing. libpng and libjpeg report
// errors by longjmp: each call that can fail runs in a small function that holds setjmp and only
// trivially destructible locals, so a longjmp skips no destructor; C++ owners live in the caller.
#include "mnist_gpu/image_io.hpp"

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <string>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"

namespace mnist_gpu {
namespace {

using FilePtr = InputFile;

float luminance(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

void check_size(const std::string& name, unsigned long long w, unsigned long long h) {
  if (w == 0 || h == 0) throw Error(name + ": the image is empty (" + std::to_string(w) + "x" + std::to_string(h) + ")");
  if (w > kMaxImageSide || h > kMaxImageSide || w * h > static_cast<unsigned long long>(kMaxImagePixels))
    throw Error(name + ": the image is " + std::to_string(w) + "x" + std::to_string(h) + " pixels, more than the " +
                std::to_string(kMaxImageSide) + "x" + std::to_string(kMaxImageSide) + " (and " +
                std::to_string(kMaxImagePixels / 1'000'000) + " megapixel) limit");
}

// --- PNG --------------------------------------------------------------------------------------

struct PngError {
  char msg[256] = "unknown libpng error";
};

void png_error_cb(png_structp png, png_const_charp msg) {
  auto* e = static_cast<PngError*>(png_get_error_ptr(png));
  std::snprintf(e->msg, sizeof e->msg, "%s", msg);
  png_longjmp(png, 1);
}
void png_warning_cb(png_structp, png_const_charp) {}  // library code never prints

struct PngShape {
  png_uint_32 width = 0, height = 0;
};

// Reads the signature and the chunks before the image data.
bool png_read_header(png_structp png, png_infop info, std::FILE* f, PngShape* shape) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, f);
  png_read_info(png, info);
  shape->width = png_get_image_width(png, info);
  shape->height = png_get_image_height(png, info);
  return true;
}

// Asks for 8-bit samples (palette to RGB, low bit depths widened, tRNS to alpha, 16 bit rounded
// to 8) with the interlace passes combined; reports the resulting channels and row size.
bool png_set_transforms(png_structp png, png_infop info, int* channels, std::size_t* rowbytes) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_expand(png);
  png_set_scale_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  *channels = png_get_channels(png, info);
  *rowbytes = png_get_rowbytes(png, info);
  return true;
}

bool png_read_pixels(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

std::uint32_t be32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
         static_cast<std::uint32_t>(p[2]) << 8 | static_cast<std::uint32_t>(p[3]);
}

GreyImage read_png(const std::string& name, FilePtr f, const unsigned char* head, std::size_t head_len) {
  // The IHDR must be the first chunk: refuse a huge declared size from its bytes, before libpng
  // reads anything more.
  if (head_len >= 24 && std::memcmp(head + 12, "IHDR", 4) == 0) check_size(name, be32(head + 16), be32(head + 20));
  PngError err;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_cb, png_warning_cb);
  if (!png) throw Error(name + ": cannot initialise libpng");
  png_infop info = png_create_info_struct(png);
  struct Owner {
    png_structp* png;
    png_infop* info;
    ~Owner() { png_destroy_read_struct(png, info, nullptr); }
  } owner{&png, &info};
  if (!info) throw Error(name + ": cannot initialise libpng");
  std::rewind(f.get());

  PngShape shape;
  if (!png_read_header(png, info, f.get(), &shape)) throw Error(name + ": not a valid PNG image (" + err.msg + ")");
  check_size(name, shape.width, shape.height);
  int channels = 0;
  std::size_t rowbytes = 0;
  if (!png_set_transforms(png, info, &channels, &rowbytes)) throw Error(name + ": corrupt PNG (" + err.msg + ")");
  if (channels < 1 || channels > 4 || rowbytes != static_cast<std::size_t>(channels) * shape.width)
    throw Error(name + ": unsupported PNG layout (" + std::to_string(channels) + " channels)");

  std::vector<png_byte> buf(rowbytes * shape.height);  // (height, width, channels)
  std::vector<png_bytep> rows(shape.height);
  for (png_uint_32 y = 0; y < shape.height; ++y) rows[y] = buf.data() + y * rowbytes;
  if (!png_read_pixels(png, rows.data())) throw Error(name + ": corrupt or truncated PNG (" + err.msg + ")");

  GreyImage img;
  img.width = static_cast<int>(shape.width);
  img.height = static_cast<int>(shape.height);
  const std::size_t n = static_cast<std::size_t>(img.width) * img.height;
  img.grey.resize(n);
  const bool has_alpha = channels == 2 || channels == 4;
  if (has_alpha) img.alpha.resize(n);
  const float s = 1.0f / 255.0f;
  for (std::size_t i = 0; i < n; ++i) {
    const png_byte* p = buf.data() + i * static_cast<std::size_t>(channels);
    img.grey[i] = channels <= 2 ? s * p[0] : luminance(s * p[0], s * p[1], s * p[2]);
    if (has_alpha) img.alpha[i] = s * p[channels - 1];
  }
  return img;
}

// --- JPEG -------------------------------------------------------------------------------------

struct JpegError {
  jpeg_error_mgr mgr;  // first member: libjpeg hands back a pointer to it
  std::jmp_buf jmp;
  char msg[JMSG_LENGTH_MAX];
  char warning[JMSG_LENGTH_MAX];
  int warnings;
};

void jpeg_error_exit_cb(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  (*c->err->format_message)(c, e->msg);
  std::longjmp(e->jmp, 1);
}
// Warnings (level -1: corrupt data, premature end) are counted and become an Error afterwards;
// trace messages are dropped. Nothing is printed.
void jpeg_emit_cb(j_common_ptr c, int level) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  if (level >= 0) return;
  if (e->warnings++ == 0) (*c->err->format_message)(c, e->warning);
}
void jpeg_output_cb(j_common_ptr) {}

bool jpeg_header(jpeg_decompress_struct* cinfo, JpegError* err, std::FILE* f) {
  if (setjmp(err->jmp)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_stdio_src(cinfo, f);
  jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);  // APP1: Exif, for the orientation tag
  jpeg_read_header(cinfo, TRUE);
  return true;
}

// The Exif orientation (1..8) of a JPEG from its saved APP1 markers: "Exif\0\0", then a TIFF
// header (byte order, 42, offset of IFD0) and IFD0's 12-byte entries, of which tag 0x0112 (a
// SHORT) is the orientation. 1 (as stored) when absent or malformed; every read is bounds-checked.
int exif_orientation(const jpeg_decompress_struct& cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 1 || m->data_length < 14 || std::memcmp(m->data, "Exif\0\0", 6) != 0) continue;
    const unsigned char* t = m->data + 6;
    const std::size_t n = m->data_length - 6;
    const bool little = t[0] == 'I' && t[1] == 'I';
    if (!little && !(t[0] == 'M' && t[1] == 'M')) return 1;
    auto u16 = [&](std::size_t at) {
      return static_cast<unsigned>(little ? t[at] | t[at + 1] << 8 : t[at] << 8 | t[at + 1]);
    };
    auto u32 = [&](std::size_t at) {
      return little ? static_cast<std::uint32_t>(u16(at)) | static_cast<std::uint32_t>(u16(at + 2)) << 16
                    : static_cast<std::uint32_t>(u16(at)) << 16 | static_cast<std::uint32_t>(u16(at + 2));
    };
    if (u16(2) != 42) return 1;
    const std::uint32_t ifd = u32(4);
    if (ifd > n || n - ifd < 2) return 1;
    const unsigned entries = u16(ifd);
    for (unsigned e = 0; e < entries; ++e) {
      const std::size_t at = ifd + 2 + 12 * static_cast<std::size_t>(e);
      if (at + 12 > n) return 1;
      if (u16(at) == 0x0112 && u16(at + 2) == 3 && u32(at + 4) >= 1) {
        const unsigned v = u16(at + 8);
        return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
      }
    }
    return 1;
  }
  return 1;
}

// Decodes to one grey channel (the Y of YCbCr, or converted from RGB) into `out` (height, width).
bool jpeg_pixels(jpeg_decompress_struct* cinfo, JpegError* err, unsigned char* out) {
  if (setjmp(err->jmp)) return false;
  cinfo->out_color_space = JCS_GRAYSCALE;
  jpeg_start_decompress(cinfo);
  if (cinfo->output_components != 1) {
    std::snprintf(err->msg, sizeof err->msg, "%d components after conversion to grey", cinfo->output_components);
    return false;
  }
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out + static_cast<std::size_t>(cinfo->output_scanline) * cinfo->output_width;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

GreyImage read_jpeg(const std::string& name, FilePtr f) {
  JpegError err{};
  jpeg_decompress_struct cinfo{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit_cb;
  err.mgr.emit_message = jpeg_emit_cb;
  err.mgr.output_message = jpeg_output_cb;
  struct Owner {
    jpeg_decompress_struct* c;
    ~Owner() { jpeg_destroy_decompress(c); }
  } owner{&cinfo};
  std::rewind(f.get());
  if (!jpeg_header(&cinfo, &err, f.get())) throw Error(name + ": not a valid JPEG image (" + err.msg + ")");
  check_size(name, cinfo.image_width, cinfo.image_height);
  const int orientation = exif_orientation(cinfo);  // now: the saved markers are freed by the decode
  if (cinfo.jpeg_color_space != JCS_GRAYSCALE && cinfo.jpeg_color_space != JCS_YCbCr &&
      cinfo.jpeg_color_space != JCS_RGB)
    throw Error(name + ": unsupported JPEG colour space (only grey and RGB/YCbCr are read)");
  std::vector<unsigned char> buf(static_cast<std::size_t>(cinfo.image_width) * cinfo.image_height);
  if (!jpeg_pixels(&cinfo, &err, buf.data())) throw Error(name + ": corrupt JPEG (" + err.msg + ")");
  if (err.warnings > 0) throw Error(name + ": corrupt or truncated JPEG (" + err.warning + ")");
  GreyImage img;
  img.width = static_cast<int>(cinfo.output_width);
  img.height = static_cast<int>(cinfo.output_height);
  img.grey.resize(buf.size());
  for (std::size_t i = 0; i < buf.size(); ++i) img.grey[i] = static_cast<float>(buf[i]) / 255.0f;
  return orient(img, orientation);
}

// What a file that is neither PNG nor JPEG is, from its first bytes, for the refusal; "" if unknown.
std::string other_format(const unsigned char* h, std::size_t got) {
  if (got >= 6 && (std::memcmp(h, "GIF87a", 6) == 0 || std::memcmp(h, "GIF89a", 6) == 0)) return "GIF";
  if (got >= 12 && std::memcmp(h, "RIFF", 4) == 0 && std::memcmp(h + 8, "WEBP", 4) == 0) return "WebP";
  if (got >= 14 && h[0] == 'B' && h[1] == 'M') return "BMP";
  if (got >= 4 && (std::memcmp(h, "II*\0", 4) == 0 || std::memcmp(h, "MM\0*", 4) == 0)) return "TIFF";
  if (got >= 12 && std::memcmp(h + 4, "ftyp", 4) == 0) {
    if (std::memcmp(h + 8, "avif", 4) == 0) return "AVIF";
    if (std::memcmp(h + 8, "heic", 4) == 0 || std::memcmp(h + 8, "heix", 4) == 0 || std::memcmp(h + 8, "mif1", 4) == 0)
      return "HEIF/HEIC";
  }
  if (got >= 5 && std::memcmp(h, "%PDF-", 5) == 0) return "PDF";
  return "";
}

// --- PNG writing ------------------------------------------------------------------------------

// libpng's write callbacks for encoding into a std::vector. No exception may cross libpng's C
// frames: a failed allocation becomes a libpng error (a longjmp, taken outside the try block).
void png_append_cb(png_structp png, png_bytep data, png_size_t n) {
  bool ok = true;
  try {
    auto* out = static_cast<std::vector<std::uint8_t>*>(png_get_io_ptr(png));
    out->insert(out->end(), data, data + n);
  } catch (...) {
    ok = false;
  }
  if (!ok) png_error(png, "out of memory");
}
void png_flush_cb(png_structp) {}

// Encodes a grey image through libpng into out. Kept free of C++ objects with destructors: a
// libpng error longjmps back to the setjmp here.
bool png_write_grey(png_structp png, png_infop info, std::vector<std::uint8_t>* out, int width, int height,
                    png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, out, png_append_cb, png_flush_cb);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

GreyImage read_image(const std::filesystem::path& file) {
  const std::string name = file.string();
  FilePtr f = open_input_file(file, "a PNG or JPEG image");
  unsigned char head[24] = {};
  const std::size_t got = std::fread(head, 1, sizeof head, f.get());
  static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (got >= 8 && std::memcmp(head, png_sig, 8) == 0) return read_png(name, std::move(f), head, got);
  if (got >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) return read_jpeg(name, std::move(f));
  if (got == 0) throw Error(name + ": the file is empty, not an image");
  const std::string other = other_format(head, got);
  if (!other.empty()) throw Error(name + ": unsupported format (" + other + "); convert it to PNG or JPEG");
  throw Error(name + ": not an image (only PNG and JPEG files are read)");
}

GreyImage orient(const GreyImage& img, int exif_orientation) {
  if (exif_orientation < 2 || exif_orientation > 8) return img;
  // For each orientation: whether the sides swap, and the stored pixel (sx, sy) that shows at
  // (x, y) of the upright image, as flips of the axes after an optional transpose.
  const bool swap = exif_orientation >= 5;
  const int w = img.width, h = img.height;
  const int ow = swap ? h : w, oh = swap ? w : h;
  // Mirrors applied in the stored frame: 2 x, 3 x+y, 4 y, 5 none (transpose), 6 y, 7 x+y, 8 x.
  const bool flip_x = exif_orientation == 2 || exif_orientation == 3 || exif_orientation == 7 || exif_orientation == 8;
  const bool flip_y = exif_orientation == 3 || exif_orientation == 4 || exif_orientation == 6 || exif_orientation == 7;
  GreyImage out;
  out.width = ow;
  out.height = oh;
  out.grey.resize(img.grey.size());
  if (!img.alpha.empty()) out.alpha.resize(img.alpha.size());
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      int sx = swap ? y : x, sy = swap ? x : y;
      if (flip_x) sx = w - 1 - sx;
      if (flip_y) sy = h - 1 - sy;
      const std::size_t from = static_cast<std::size_t>(sy) * w + sx, to = static_cast<std::size_t>(y) * ow + x;
      out.grey[to] = img.grey[from];
      if (!img.alpha.empty()) out.alpha[to] = img.alpha[from];
    }
  return out;
}

void write_grey_png(const std::filesystem::path& file, int width, int height, const std::uint8_t* pixels) {
  write_file_atomically(file, encode_grey_png(width, height, pixels));
}

std::vector<std::uint8_t> encode_grey_png(int width, int height, const std::uint8_t* pixels) {
  check_size("encode_grey_png", width < 0 ? 0 : static_cast<unsigned long long>(width),
             height < 0 ? 0 : static_cast<unsigned long long>(height));
  PngError err;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_cb, png_warning_cb);
  if (!png) throw Error("encode_grey_png: cannot initialise libpng");
  png_infop info = png_create_info_struct(png);
  struct Owner {
    png_structp* png;
    png_infop* info;
    ~Owner() { png_destroy_write_struct(png, info); }
  } owner{&png, &info};
  if (!info) throw Error("encode_grey_png: cannot initialise libpng");
  std::vector<png_bytep> rows(static_cast<std::size_t>(height));
  for (int y = 0; y < height; ++y)
    rows[static_cast<std::size_t>(y)] = const_cast<png_bytep>(pixels + static_cast<std::size_t>(y) * width);
  std::vector<std::uint8_t> out;
  if (!png_write_grey(png, info, &out, width, height, rows.data()))
    throw Error(std::string("encode_grey_png: cannot encode the PNG (") + err.msg + ")");
  return out;
}

}  // namespace mnist_gpu
