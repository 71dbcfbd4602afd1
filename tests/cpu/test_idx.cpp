// read_idx on small raw and gzip IDX files written to a temporary directory: round trips, and each
// rejection with the words of its message; md5_hex against the RFC 1321 test vectors.
#include <gtest/gtest.h>

#include "test_paths.hpp"
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/idx.hpp"

namespace fs = std::filesystem;
using mnist_gpu::IdxExpect;
using mnist_gpu::md5_hex;
using mnist_gpu::parse_idx;
using mnist_gpu::read_idx;
using Bytes = std::vector<std::uint8_t>;

namespace {

using mnist_gpu::test::TempDir;

// An IDX file: 00 00 type ndims, big-endian dims, payload.
Bytes idx_bytes(const std::vector<std::uint32_t>& dims, const Bytes& payload, std::uint8_t type = 0x08) {
  Bytes b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// Deterministic bytes: a ramp (compressible) or a xorshift sequence (incompressible).
Bytes ramp(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 % 251);
  return b;
}
Bytes noise(std::size_t n) {
  Bytes b(n);
  std::uint32_t x = 2463534242u;
  for (auto& v : b) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    v = static_cast<std::uint8_t>(x >> 24);
  }
  return b;
}

// One gzip member in memory (so tests can cut or damage it); level 0 = stored blocks only.
Bytes gzip(const Bytes& raw, int level = 6) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(raw.size())));
  zs.next_in = const_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void put_file(const fs::path& path, const Bytes& b) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

const IdxExpect kImages{3, {28, 28}};
const IdxExpect kLabels{1, {}};

// The message of the mnist_gpu::Error read_idx throws, or a note that it threw none.
std::string error_of(const fs::path& path, const IdxExpect& expect) {
  try {
    read_idx(path, expect);
  } catch (const mnist_gpu::Error& e) {
    return e.what();
  }
  return "(no mnist_gpu::Error)";
}

// The message starts with "<path>: " and holds every part.
::testing::AssertionResult says(const std::string& msg, const fs::path& path,
                                std::initializer_list<const char*> parts) {
  if (msg.rfind(path.string() + ": ", 0) != 0)
    return ::testing::AssertionFailure() << "message does not start with the path: " << msg;
  for (const char* p : parts)
    if (msg.find(p) == std::string::npos)
      return ::testing::AssertionFailure() << "no \"" << p << "\" in: " << msg;
  return ::testing::AssertionSuccess();
}

}  // namespace

TEST(Md5, Rfc1321TestVectors) {
  const std::pair<std::string, const char*> vectors[] = {
      {"", "d41d8cd98f00b204e9800998ecf8427e"},
      {"a", "0cc175b9c0f1b6a831c399e269772661"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72"},
      {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
      {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
      {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57edf4a22be3c955ac49da2e2107b67a"}};
  for (const auto& [text, hex] : vectors)
    EXPECT_EQ(md5_hex(text.data(), text.size()), hex) << '"' << text << '"';
}

TEST(Md5, PaddingAtBlockBoundaries) {
  // Lengths around 56 and 64 change how the padding splits into blocks (digests from Python's hashlib).
  const std::pair<std::size_t, const char*> cases[] = {
      {55, "ef1772b6dff9a122358552954ad0df65"}, {56, "3b0c8ac703f828b04c6c197006d17218"},
      {63, "b06521f39153d618550606be297466d5"}, {64, "014842d480b571495a4a0363793f7367"},
      {65, "c743a45e0d2e6a95cb859adae0248435"}, {1000000, "7707d6ae4e027c70eea2a935c2296f21"}};
  for (const auto& [n, hex] : cases) EXPECT_EQ(md5_hex(std::string(n, 'a').data(), n), hex) << n << " x 'a'";
}

TEST(ReadIdx, RawRoundTrip) {
  TempDir dir;
  const Bytes payload = ramp(3 * 28 * 28);
  const Bytes file = idx_bytes({3, 28, 28}, payload);
  put_file(dir / "images", file);
  const auto a = read_idx(dir / "images", kImages);
  EXPECT_EQ(a.dims, (std::vector<std::uint32_t>{3, 28, 28}));
  EXPECT_EQ(a.data, payload);
  EXPECT_EQ(a.md5_data, md5_hex(file.data(), file.size()));
  EXPECT_EQ(a.md5_file, a.md5_data);
  // Any tail is accepted when none is required.
  EXPECT_EQ(read_idx(dir / "images", IdxExpect{3, {}}).dims[1], 28u);
}

TEST(ParseIdx, WithoutDigestsTheDataIsTheSameAndTheDigestsEmpty) {
  const Bytes payload = noise(5 * 28 * 28);
  for (const Bytes& file : {idx_bytes({5, 28, 28}, payload), gzip(idx_bytes({5, 28, 28}, payload))}) {
    IdxExpect no_digests = kImages;
    no_digests.digests = false;
    const auto a = parse_idx(file.data(), file.size(), "f", no_digests);
    const auto b = parse_idx(file.data(), file.size(), "f", kImages);
    EXPECT_EQ(a.data, payload);
    EXPECT_EQ(a.dims, b.dims);
    EXPECT_TRUE(a.md5_file.empty());
    EXPECT_TRUE(a.md5_data.empty());
    EXPECT_EQ(b.md5_data.size(), 32u);
  }
}

TEST(ReadIdx, GzipRoundTripWrittenByGzwrite) {
  TempDir dir;
  const Bytes payload = ramp(5);
  const Bytes raw = idx_bytes({5}, payload);
  gzFile gz = gzopen((dir / "labels.gz").c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, raw.data(), static_cast<unsigned>(raw.size())), static_cast<int>(raw.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
  const auto a = read_idx(dir / "labels.gz", kLabels);
  EXPECT_EQ(a.dims, std::vector<std::uint32_t>{5});
  EXPECT_EQ(a.data, payload);
  EXPECT_EQ(a.md5_data, md5_hex(raw.data(), raw.size()));
  std::ifstream in(dir / "labels.gz", std::ios::binary);
  const std::string stored((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(a.md5_file, md5_hex(stored.data(), stored.size()));
}

TEST(ReadIdx, GzipRoundTripLargeAndMultiMember) {
  TempDir dir;
  const Bytes payload = noise(200 * 28 * 28);  // several inflate calls and deflate blocks
  const Bytes raw = idx_bytes({200, 28, 28}, payload);
  put_file(dir / "one.gz", gzip(raw));
  EXPECT_EQ(read_idx(dir / "one.gz", kImages).data, payload);
  // Concatenated gzip members are one valid gzip file (as gunzip reads it).
  const std::size_t half = raw.size() / 2;
  Bytes two = gzip(Bytes(raw.begin(), raw.begin() + static_cast<long>(half)));
  const Bytes second = gzip(Bytes(raw.begin() + static_cast<long>(half), raw.end()));
  two.insert(two.end(), second.begin(), second.end());
  put_file(dir / "two.gz", two);
  const auto a = read_idx(dir / "two.gz", kImages);
  EXPECT_EQ(a.data, payload);
  EXPECT_EQ(a.md5_data, md5_hex(raw.data(), raw.size()));
}

TEST(ReadIdx, MissingFileDirectoryAndEmptyFile) {
  TempDir dir;
  EXPECT_TRUE(
      says(error_of(dir / "nope.gz", kLabels), dir / "nope.gz", {"cannot open (No such file or directory)"}));
  fs::create_directory(dir / "sub");
  EXPECT_TRUE(says(error_of(dir / "sub", kLabels), dir / "sub", {"is a directory, expected an IDX file"}));
  put_file(dir / "empty", {});
  EXPECT_TRUE(
      says(error_of(dir / "empty", kLabels), dir / "empty", {"empty file", "expected an IDX header"}));
}

TEST(ReadIdx, ShortHeader) {
  TempDir dir;
  put_file(dir / "short", {0, 0, 8});
  EXPECT_TRUE(
      says(error_of(dir / "short", kLabels), dir / "short", {"too short for an IDX header (3 bytes"}));
  put_file(dir / "short.gz", gzip({0, 0}));
  EXPECT_TRUE(says(error_of(dir / "short.gz", kLabels), dir / "short.gz",
                   {"decompressed data too short for an IDX header (2 bytes"}));
  put_file(dir / "dims", {0, 0, 8, 3, 0, 0, 0, 2});  // three dimensions announced, one present
  EXPECT_TRUE(says(error_of(dir / "dims", kImages), dir / "dims", {"header truncated: 4 of the 12 bytes"}));
}

TEST(ReadIdx, BadMagic) {
  TempDir dir;
  put_file(dir / "bad", {0x12, 0x34, 8, 3, 0, 0, 0, 1});
  EXPECT_TRUE(says(error_of(dir / "bad", kImages), dir / "bad",
                   {"not an IDX file: starts with 12 34 08 03, expected 00 00 08 03"}));
  put_file(dir / "bad.gz", gzip({0x12, 0x34, 8, 1, 0, 0, 0, 1, 5}));
  EXPECT_TRUE(says(error_of(dir / "bad.gz", kLabels), dir / "bad.gz",
                   {"decompresses to data that is not IDX: starts with 12 34 08 01, expected 00 00 08 01"}));
}

TEST(ReadIdx, HtmlPageSavedAsGz) {
  TempDir dir;
  const std::string html = "<!DOCTYPE html><html><body>Moved</body></html>";
  put_file(dir / "train-images-idx3-ubyte.gz", Bytes(html.begin(), html.end()));
  EXPECT_TRUE(says(
      error_of(dir / "train-images-idx3-ubyte.gz", kImages), dir / "train-images-idx3-ubyte.gz",
      {"neither gzip (starts with 3c 21 44 4f, expected 1f 8b) nor a raw IDX file (expected 00 00 08 03)",
       "looks like an HTML page"}));
}

TEST(ReadIdx, WrongTypeCode) {
  TempDir dir;
  put_file(dir / "float", idx_bytes({1}, {0, 0, 0, 0}, 0x0d));
  EXPECT_TRUE(says(error_of(dir / "float", kLabels), dir / "float",
                   {"IDX type code 0x0d (float32) is not supported; only unsigned-byte 0x08"}));
}

TEST(ReadIdx, WrongNumberOfDimensionsNamesTheSwap) {
  TempDir dir;
  put_file(dir / "labels", idx_bytes({2}, {1, 2}));
  put_file(dir / "images", idx_bytes({1, 28, 28}, ramp(784)));
  EXPECT_TRUE(says(error_of(dir / "labels", kImages), dir / "labels",
                   {"has 1 dimensions, expected 3 (a labels file where an images file belongs?)"}));
  EXPECT_TRUE(says(error_of(dir / "images", kLabels), dir / "images",
                   {"has 3 dimensions, expected 1 (an images file where a labels file belongs?)"}));
}

TEST(ReadIdx, ZeroDimension) {
  TempDir dir;
  put_file(dir / "zero0", idx_bytes({0, 28, 28}, {}));
  put_file(dir / "zero2", idx_bytes({1, 28, 0}, {}));
  EXPECT_TRUE(
      says(error_of(dir / "zero0", kImages), dir / "zero0", {"dimension 0 is 0, expected a non-zero size"}));
  EXPECT_TRUE(says(error_of(dir / "zero2", IdxExpect{3, {}}), dir / "zero2",
                   {"dimension 2 is 0, expected a non-zero size"}));
}

TEST(ReadIdx, WrongTailDimensions) {
  TempDir dir;
  put_file(dir / "img", idx_bytes({2, 29, 28}, ramp(2 * 29 * 28)));
  EXPECT_TRUE(says(error_of(dir / "img", kImages), dir / "img", {"dimension 1 is 29, expected 28"}));
}

TEST(ReadIdx, LittleEndianHeader) {
  TempDir dir;
  // Each dimension's bytes reversed, as a little-endian writer would produce.
  Bytes img = {0, 0, 8, 3, 2, 0, 0, 0, 28, 0, 0, 0, 28, 0, 0, 0};
  const Bytes pixels = ramp(2 * 784);
  img.insert(img.end(), pixels.begin(), pixels.end());
  put_file(dir / "img", img);
  EXPECT_TRUE(
      says(error_of(dir / "img", kImages), dir / "img",
           {"dimension 1 is 469762048, expected 28 (the header looks little-endian; IDX is big-endian)"}));
  EXPECT_TRUE(says(error_of(dir / "img", IdxExpect{3, {}}), dir / "img",
                   {"dimensions 33554432 x 469762048 x 469762048 overflow", "looks little-endian"}));
  const Bytes labels = {0, 0, 8, 1, 5, 0, 0, 0, 1, 2, 3, 4, 5};
  put_file(dir / "lab", labels);
  EXPECT_TRUE(says(error_of(dir / "lab", kLabels), dir / "lab",
                   {"truncated: the file holds 5 bytes of data, not the 83886080 = 83886080 bytes",
                    "looks little-endian"}));
  put_file(dir / "lab.gz", gzip(labels));
  EXPECT_TRUE(says(error_of(dir / "lab.gz", kLabels), dir / "lab.gz", {"impossible size", "little-endian"}));
}

TEST(ReadIdx, DeclaredSizeBeyondRawFile) {
  TempDir dir;
  put_file(dir / "img", idx_bytes({1000000, 28, 28}, ramp(784)));
  EXPECT_TRUE(
      says(error_of(dir / "img", kImages), dir / "img",
           {"truncated: the file holds 784 bytes of data, not the 1000000 x 28 x 28 = 784000000 bytes of "
            "data the header declares"}));
}

TEST(ReadIdx, DeclaredSizeOverflows) {
  TempDir dir;
  put_file(dir / "huge", idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, ramp(16)));
  EXPECT_TRUE(says(error_of(dir / "huge", IdxExpect{3, {}}), dir / "huge",
                   {"dimensions 4294967295 x 4294967295 x 4294967295 overflow"}));
}

TEST(ReadIdx, AbsurdGzipSizeRefusedBeforeAllocating) {
  TempDir dir;
  // 4e9 x 28 x 28 = 3.1 TB declared in a gzip file of a few dozen bytes.
  put_file(dir / "img.gz", gzip(idx_bytes({4000000000u, 28, 28}, ramp(784))));
  EXPECT_TRUE(
      says(error_of(dir / "img.gz", kImages), dir / "img.gz",
           {"impossible size: the 4000000000 x 28 x 28 = 3136000000000 bytes", "expands at most 1032:1"}));
}

TEST(ReadIdx, TruncatedAndTrailingRawPayload) {
  TempDir dir;
  Bytes file = idx_bytes({2, 28, 28}, ramp(2 * 784));
  file.pop_back();
  put_file(dir / "short", file);
  EXPECT_TRUE(says(error_of(dir / "short", kImages), dir / "short",
                   {"truncated: the file holds 1567 bytes of data, not the 2 x 28 x 28 = 1568 bytes"}));
  file.insert(file.end(), {1, 2, 3, 4});
  put_file(dir / "long", file);
  EXPECT_TRUE(says(error_of(dir / "long", kImages), dir / "long",
                   {"3 trailing bytes after the 2 x 28 x 28 = 1568 bytes of data the header declares"}));
}

TEST(ReadIdx, GzipDataShorterOrLongerThanDeclared) {
  TempDir dir;
  Bytes raw = idx_bytes({2, 28, 28}, ramp(2 * 784));
  raw.resize(raw.size() - 10);
  put_file(dir / "short.gz", gzip(raw));
  EXPECT_TRUE(says(error_of(dir / "short.gz", kImages), dir / "short.gz",
                   {"truncated: the decompressed data ends after 1558 of the 2 x 28 x 28 = 1568 bytes"}));
  raw.resize(raw.size() + 15, 9);
  put_file(dir / "long.gz", gzip(raw));
  EXPECT_TRUE(says(error_of(dir / "long.gz", kImages), dir / "long.gz",
                   {"5 trailing bytes after the 2 x 28 x 28 = 1568 bytes of data the header declares"}));
}

TEST(ReadIdx, TruncatedGzipStream) {
  TempDir dir;
  const Bytes gz = gzip(idx_bytes({300, 28, 28}, noise(300 * 784)));
  // Cut inside the deflate data, and inside the 8-byte CRC/length trailer (all data present).
  for (const std::size_t keep : {gz.size() / 2, gz.size() - 4}) {
    put_file(dir / "cut.gz", Bytes(gz.begin(), gz.begin() + static_cast<long>(keep)));
    EXPECT_TRUE(says(error_of(dir / "cut.gz", kImages), dir / "cut.gz",
                     {"truncated gzip stream (the compressed data ends before the end-of-stream marker)"}))
        << "kept " << keep << " of " << gz.size() << " bytes";
  }
}

TEST(ReadIdx, CorruptGzipStream) {
  TempDir dir;
  // Stored blocks (level 0): a flipped data byte leaves the structure intact and fails the CRC.
  Bytes stored = gzip(idx_bytes({10, 28, 28}, noise(10 * 784)), 0);
  stored[stored.size() / 2] ^= 0xff;
  put_file(dir / "crc.gz", stored);
  EXPECT_TRUE(says(error_of(dir / "crc.gz", kImages), dir / "crc.gz",
                   {"corrupt gzip stream (zlib: incorrect data check)"}));
  // The first deflate byte after the 10-byte gzip header: final block of reserved type 3.
  Bytes packed = gzip(idx_bytes({10, 28, 28}, ramp(10 * 784)), 9);
  packed[10] = 0x07;
  put_file(dir / "block.gz", packed);
  EXPECT_TRUE(says(error_of(dir / "block.gz", kImages), dir / "block.gz",
                   {"corrupt gzip stream (zlib: invalid block type)"}));
}

TEST(ReadIdx, GarbageAfterGzipStream) {
  TempDir dir;
  Bytes gz = gzip(idx_bytes({3}, {1, 2, 3}));
  gz.insert(gz.end(), {'j', 'u', 'n', 'k'});
  put_file(dir / "junk.gz", gz);
  EXPECT_TRUE(says(error_of(dir / "junk.gz", kLabels), dir / "junk.gz",
                   {"4 bytes of garbage after the end of the gzip stream"}));
}
