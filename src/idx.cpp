// IDX reader (gzip or raw): every size the file declares is checked before anything is allocated
// from it. Also a small RFC 1321 MD5, used to recognise known datasets.
#include "mnist_gpu/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <limits>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"

namespace mnist_gpu {
namespace {

namespace fs = std::filesystem;

// ---- MD5 (RFC 1321) ---------------------------------------------------------------------------

class Md5 {
 public:
  void update(const std::uint8_t* p, std::size_t n) {
    total_ += n;
    if (fill_ > 0) {
      const std::size_t take = std::min(n, sizeof buf_ - fill_);
      std::memcpy(buf_ + fill_, p, take);
      fill_ += take, p += take, n -= take;
      if (fill_ < sizeof buf_) return;
      block(buf_);
      fill_ = 0;
    }
    for (; n >= 64; p += 64, n -= 64) block(p);
    std::memcpy(buf_, p, n);
    fill_ = n;
  }

  /// Pads (0x80, zeros, 64-bit little-endian bit length) and returns the 32-digit hex digest.
  std::string finish() {
    const std::uint64_t bits = total_ * 8;
    std::uint8_t pad[72] = {0x80};
    const std::size_t pad_len = (fill_ < 56 ? 56 : 120) - fill_;
    for (int i = 0; i < 8; ++i) pad[pad_len + i] = static_cast<std::uint8_t>(bits >> (8 * i));
    update(pad, pad_len + 8);
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (std::uint32_t word : h_)
      for (int i = 0; i < 4; ++i) {
        const unsigned byte = (word >> (8 * i)) & 0xffu;
        out += hex[byte >> 4];
        out += hex[byte & 15];
      }
    return out;
  }

 private:
  static std::uint32_t rotl(std::uint32_t x, unsigned s) { return (x << s) | (x >> (32 - s)); }

  // Four rounds of 16 steps; step i adds K[i] = floor(2^32 * |sin(i + 1)|) and message word g.
  void block(const std::uint8_t* p) {
    static const std::uint32_t K[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
    static const unsigned S[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};
    std::uint32_t m[16];
    for (int i = 0; i < 16; ++i)
      m[i] = std::uint32_t{p[4 * i]} | std::uint32_t{p[4 * i + 1]} << 8 | std::uint32_t{p[4 * i + 2]} << 16 |
             std::uint32_t{p[4 * i + 3]} << 24;
    std::uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3];
    auto step = [&](std::uint32_t f, int i, int g, unsigned s) {
      const std::uint32_t t = d;
      d = c;
      c = b;
      b = b + rotl(a + f + K[i] + m[g], s);
      a = t;
    };
    for (int i = 0; i < 16; ++i) step((b & c) | (~b & d), i, i, S[0][i & 3]);
    for (int i = 16; i < 32; ++i) step((d & b) | (~d & c), i, (5 * i + 1) & 15, S[1][i & 3]);
    for (int i = 32; i < 48; ++i) step(b ^ c ^ d, i, (3 * i + 5) & 15, S[2][i & 3]);
    for (int i = 48; i < 64; ++i) step(c ^ (b | ~d), i, (7 * i) & 15, S[3][i & 3]);
    h_[0] += a, h_[1] += b, h_[2] += c, h_[3] += d;
  }

  std::uint32_t h_[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  std::uint8_t buf_[64] = {};
  std::size_t fill_ = 0;
  std::uint64_t total_ = 0;
};

// ---- reading ----------------------------------------------------------------------------------

[[noreturn]] void fail(const std::string& name, const std::string& what) { throw Error(name + ": " + what); }

// A view of a file's bytes held in memory (owned by the caller).
struct ByteView {
  const std::uint8_t* ptr;
  std::size_t len;
  const std::uint8_t* data() const { return ptr; }
  std::size_t size() const { return len; }
  bool empty() const { return len == 0; }
  std::uint8_t operator[](std::size_t i) const { return ptr[i]; }
};

// The IDX bytes of a file held in memory: copied as they are, or inflated when the file is gzip.
// A truncated or corrupt gzip stream, and garbage after it, are reported here (zlib's gzread
// would hide the first until gzclose and ignore the last).
class IdxStream {
 public:
  IdxStream(const std::string& path, ByteView file, bool gzip) : path_(path), file_(file), gzip_(gzip) {
    if (gzip_ && inflateInit2(&zs_, 15 + 16) != Z_OK) fail(path_, "cannot initialise zlib");
  }
  ~IdxStream() {
    if (gzip_) inflateEnd(&zs_);
  }
  IdxStream(const IdxStream&) = delete;
  IdxStream& operator=(const IdxStream&) = delete;

  /// Copies up to n bytes into dst; returns fewer only at the end of the data.
  std::size_t read(std::uint8_t* dst, std::size_t n) {
    if (!gzip_) {
      const std::size_t k = std::min(n, file_.size() - pos_);
      if (k > 0) std::memcpy(dst, file_.data() + pos_, k);
      pos_ += k;
      return k;
    }
    std::size_t produced = 0;
    while (produced < n && !ended_) {
      if (zs_.avail_in == 0) refill();
      const std::size_t want = std::min<std::size_t>(n - produced, UINT_MAX);
      zs_.next_out = dst + produced;
      zs_.avail_out = static_cast<uInt>(want);
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      produced += want - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        end_of_member();
      } else if (rc == Z_BUF_ERROR) {
        if (zs_.avail_in == 0 && pos_ == file_.size())
          fail(path_, "truncated gzip stream (the compressed data ends before the end-of-stream marker)");
      } else if (rc == Z_MEM_ERROR) {
        fail(path_, "out of memory while decompressing");
      } else if (rc != Z_OK) {
        fail(path_, std::string("corrupt gzip stream (zlib: ") + (zs_.msg ? zs_.msg : "error") + ")");
      }
    }
    return produced;
  }

  /// Bytes of the payload left after what has been read (inflating the rest of a gzip stream,
  /// which also verifies its CRC and length trailer).
  std::uint64_t count_rest() {
    if (!gzip_) return file_.size() - pos_;
    std::uint64_t rest = 0;
    std::vector<std::uint8_t> scratch(1 << 16);
    for (std::size_t k; (k = read(scratch.data(), scratch.size())) > 0;) rest += k;
    return rest;
  }

 private:
  void refill() {
    const std::size_t k = std::min<std::size_t>(file_.size() - pos_, UINT_MAX);
    zs_.next_in = const_cast<Bytef*>(file_.data() + pos_);  // zlib never writes through next_in
    zs_.avail_in = static_cast<uInt>(k);
    pos_ += k;
  }

  // Concatenated gzip members are valid gzip (gunzip joins them); anything else after the end of
  // the stream is garbage.
  void end_of_member() {
    const std::size_t left = zs_.avail_in + (file_.size() - pos_);
    if (left == 0) {
      ended_ = true;
      return;
    }
    if (zs_.avail_in == 0) refill();
    if (zs_.avail_in >= 2 && zs_.next_in[0] == 0x1f && zs_.next_in[1] == 0x8b) {
      inflateReset(&zs_);
      return;
    }
    fail(path_, std::to_string(left) + " bytes of garbage after the end of the gzip stream");
  }

  const std::string& path_;  // the name errors start with
  ByteView file_;
  bool gzip_;
  std::size_t pos_ = 0;  // next byte of file_ to copy (raw) or to hand to zlib (gzip)
  z_stream zs_{};
  bool ended_ = false;
};

std::string hex_bytes(const std::uint8_t* p, std::size_t n) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += hex[p[i] >> 4];
    out += hex[p[i] & 15];
  }
  return out;
}

std::uint32_t byteswap(std::uint32_t x) {
  return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

constexpr const char* kLittleEndian = " (the header looks little-endian; IDX is big-endian)";
constexpr std::uint64_t kOverflow = std::numeric_limits<std::uint64_t>::max();

// The product of f(dim) over all dimensions, or kOverflow when it does not fit in a size_t.
template <class F>
std::uint64_t product(const std::vector<std::uint32_t>& dims, F f) {
  std::uint64_t p = 1;
  for (std::uint32_t d : dims) {
    const std::uint64_t v = f(d);
    if (v != 0 && p > (std::numeric_limits<std::size_t>::max() - 1) / v) return kOverflow;
    p *= v;
  }
  return p;
}

const char* type_name(std::uint8_t code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0b: return "int16";
    case 0x0c: return "int32";
    case 0x0d: return "float32";
    case 0x0e: return "float64";
  }
  return "unknown";
}

// "60000 x 28 x 28".
std::string shape_text(const std::vector<std::uint32_t>& dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
  return s;
}

// Why the first bytes are not an IDX header, in words that help (a saved HTML page is common).
std::string bad_magic(const fs::path& path, bool gzip, const std::uint8_t* head, std::size_t n, int ndims) {
  const std::string expected = "expected 00 00 08 0" + std::to_string(ndims);
  const std::string starts = "starts with " + hex_bytes(head, n);
  std::string what;
  if (gzip)
    what = "decompresses to data that is not IDX: " + starts + ", " + expected;
  else if (path.extension() == ".gz")
    what = "neither gzip (" + starts + ", expected 1f 8b) nor a raw IDX file (" + expected + ")";
  else
    what = "not an IDX file: " + starts + ", " + expected;
  if (head[0] == '<') what += " (it looks like an HTML page: a failed download?)";
  return what;
}

}  // namespace

namespace {

void check_expect(const char* who, const IdxExpect& expect) {
  if (expect.ndims < 1 || expect.ndims > 255 ||
      (!expect.tail.empty() && expect.tail.size() != static_cast<std::size_t>(expect.ndims - 1)))
    throw Error(std::string(who) + ": IdxExpect wants " + std::to_string(expect.ndims) + " dimensions with " +
                std::to_string(expect.tail.size()) + " tail sizes");
}

}  // namespace

std::string md5_hex(const void* data, std::size_t size) {
  Md5 md5;
  md5.update(static_cast<const std::uint8_t*>(data), size);
  return md5.finish();
}

IdxArray read_idx(const std::filesystem::path& path, const IdxExpect& expect) {
  check_expect("read_idx", expect);
  const std::vector<std::uint8_t> file = read_whole_file(path, std::numeric_limits<std::size_t>::max(), "an IDX file");
  return parse_idx(file.data(), file.size(), path.string(), expect);
}

IdxArray parse_idx(const std::uint8_t* data, std::size_t size, const std::string& path, const IdxExpect& expect) {
  check_expect("parse_idx", expect);
  const ByteView file{data, size};
  if (file.empty()) fail(path, "empty file (expected an IDX header, gzip-compressed or raw)");
  const bool gzip = file.size() >= 2 && file[0] == 0x1f && file[1] == 0x8b;
  IdxStream in(path, file, gzip);

  // Header: 00 00, type code, number of dimensions, then each dimension as big-endian uint32.
  const std::size_t header_len = 4 + 4 * static_cast<std::size_t>(expect.ndims);
  std::vector<std::uint8_t> header(header_len);
  const std::size_t got = in.read(header.data(), 4);
  if ((got >= 1 && header[0] != 0) || (got >= 2 && header[1] != 0))
    fail(path, bad_magic(path, gzip, header.data(), got, expect.ndims));
  if (got < 4)
    fail(path, (gzip ? "decompressed data too short for an IDX header (" : "too short for an IDX header (") +
                   std::to_string(got) + " bytes; it needs 4 + 4 per dimension)");
  const std::uint8_t type = header[2];
  if (type != 0x08) {
    char code[8];
    std::snprintf(code, sizeof code, "0x%02x", static_cast<unsigned>(type));
    fail(path, std::string("IDX type code ") + code + " (" + type_name(type) +
                   ") is not supported; only unsigned-byte 0x08 is");
  }
  const int ndims = header[3];
  if (ndims != expect.ndims) {
    std::string what =
        "has " + std::to_string(ndims) + " dimensions, expected " + std::to_string(expect.ndims);
    if (expect.ndims == 1 && ndims == 3) what += " (an images file where a labels file belongs?)";
    if (expect.ndims == 3 && ndims == 1) what += " (a labels file where an images file belongs?)";
    fail(path, what);
  }
  const std::size_t dims_got = in.read(header.data() + 4, header_len - 4);
  if (dims_got < header_len - 4)
    fail(path, "header truncated: " + std::to_string(dims_got) + " of the " + std::to_string(header_len - 4) +
                   " bytes that hold " + std::to_string(ndims) + " dimensions");

  IdxArray out;
  out.dims.resize(static_cast<std::size_t>(ndims));
  for (std::size_t i = 0; i < out.dims.size(); ++i) {
    const std::uint8_t* p = header.data() + 4 + 4 * i;
    const std::uint32_t d = std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 |
                            std::uint32_t{p[3]};
    out.dims[i] = d;
    const std::string name = "dimension " + std::to_string(i) + " is " + std::to_string(d);
    if (d == 0) fail(path, name + ", expected a non-zero size");
    if (i > 0 && !expect.tail.empty() && d != expect.tail[i - 1]) {
      std::string what = name + ", expected " + std::to_string(expect.tail[i - 1]);
      if (byteswap(d) == expect.tail[i - 1]) what += kLittleEndian;
      fail(path, what);
    }
  }
  // A little-endian header shows as absurd sizes; say so when the swapped dimensions fit the file.
  const std::uint64_t there = gzip ? 0 : file.size() - header_len;
  const char* hint = !gzip && product(out.dims, byteswap) == there ? kLittleEndian : "";
  const std::uint64_t payload = product(out.dims, [](std::uint32_t d) { return d; });
  if (payload == kOverflow)
    fail(path,
         "dimensions " + shape_text(out.dims) + " overflow: the declared size does not fit in memory" + hint);
  const std::string declared =
      "the " + shape_text(out.dims) + " = " + std::to_string(payload) + " bytes of data the header declares";

  // Refuse before allocating: raw sizes are known exactly; deflate expands at most ~1032:1.
  if (!gzip && payload > there)
    fail(path,
         "truncated: the file holds " + std::to_string(there) + " bytes of data, not " + declared + hint);
  if (!gzip && payload < there)
    fail(path, std::to_string(there - payload) + " trailing bytes after " + declared);
  if (gzip && payload > 1032 * static_cast<std::uint64_t>(file.size()) + (1u << 20))
    fail(path, "impossible size: " + declared + " cannot come from a " + std::to_string(file.size()) +
                   "-byte gzip file (deflate expands at most 1032:1); corrupt or little-endian header?");

  out.data.resize(static_cast<std::size_t>(payload));
  const std::size_t have = in.read(out.data.data(), out.data.size());
  if (have < payload)
    fail(path, "truncated: the decompressed data ends after " + std::to_string(have) + " of " + declared);
  if (const std::uint64_t rest = in.count_rest(); rest > 0)
    fail(path, std::to_string(rest) + " trailing bytes after " + declared);

  if (!expect.digests) return out;
  Md5 data_md5;
  data_md5.update(header.data(), header.size());
  data_md5.update(out.data.data(), out.data.size());
  out.md5_data = data_md5.finish();
  out.md5_file = gzip ? md5_hex(file.data(), file.size()) : out.md5_data;
  return out;
}

}  // namespace mnist_gpu
