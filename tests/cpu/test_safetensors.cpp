// The safetensors container: the round trip, exact bf16/f16 conversion (every bit pattern), and each
// refusal of the reader with the tensor and what was expected in its message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/safetensors.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
using Bytes = std::vector<std::uint8_t>;

namespace {

// A file from a header's JSON text and a data section, as a writer that lies might make it.
Bytes forge(const std::string& header, const Bytes& data) {
  Bytes b(8 + header.size() + data.size());
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  std::memcpy(b.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(b.data() + 8 + header.size(), data.data(), data.size());
  return b;
}

Bytes zeros(std::size_t n) { return Bytes(n, 0); }

// The Error message of parsing `b`, or a failure (and "") when it is accepted.
std::string refusal(const Bytes& b) {
  try {
    parse_safetensors(b.data(), b.size(), "in.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// The value of IEEE half `h` computed from its fields in double (the reference for the converter).
double half_reference(std::uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  const double mag = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  return sign ? -mag : mag;
}

}  // namespace

TEST(Safetensors, RoundTripKeepsTensorsMetadataAndAlignsTheData) {
  SafeTensors in;
  in.tensors.push_back({"0.weight", {2, 3}, {1.5f, -2.0f, 0.0f, 3e-39f, -0.0f, 1e30f}, "F32"});
  in.tensors.push_back({"0.bias", {2}, {0.25f, -7.0f}, "F32"});
  in.tensors.push_back({"empty", {0, 4}, {}, "F32"});
  in.metadata = {{"architecture", "3-2"}, {"note", "quotes \" and \\ survive"}};
  const Bytes b = encode_safetensors(in);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | b[static_cast<std::size_t>(i)];
  EXPECT_EQ(n % 8, 0u) << "the data section starts 8-byte aligned";
  EXPECT_EQ(b.size(), 8 + n + 4 * 8);
  const SafeTensors out = parse_safetensors(b.data(), b.size(), "x");
  ASSERT_EQ(out.tensors.size(), 3u);
  EXPECT_EQ(out.metadata, in.metadata);
  for (const SafeTensor& t : in.tensors) {
    const SafeTensor* got = nullptr;
    for (const SafeTensor& o : out.tensors)
      if (o.name == t.name) got = &o;
    ASSERT_NE(got, nullptr) << t.name;
    EXPECT_EQ(got->shape, t.shape);
    EXPECT_EQ(got->dtype, "F32");
    ASSERT_EQ(got->values.size(), t.values.size());
    // (memcmp only on non-empty data: an empty vector's data() may be null, which memcmp must not get)
    EXPECT_TRUE(t.values.empty() || std::memcmp(got->values.data(), t.values.data(), 4 * t.values.size()) == 0)
        << t.name << ": bit for bit";
  }
}

TEST(Safetensors, EveryHalfAndBfloat16BitPatternConvertsExactly) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const float f = half_to_float(bits);
    const bool nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) != 0;
    const bool inf = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) == 0;
    if (nan) {
      ASSERT_TRUE(std::isnan(f)) << h;
    } else if (inf) {
      ASSERT_EQ(f, (h & 0x8000) ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity());
    } else {
      ASSERT_EQ(static_cast<double>(f), half_reference(bits)) << "half 0x" << std::hex << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
    }
    // bfloat16 is float32's upper half: the float whose low 16 bits are zero.
    const float g = bfloat16_to_float(bits);
    std::uint32_t gb;
    std::memcpy(&gb, &g, 4);
    ASSERT_EQ(gb, h << 16);
  }
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));  // the smallest subnormal
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);               // the largest finite half
  EXPECT_EQ(bfloat16_to_float(0x3f80), 1.0f);
}

TEST(Safetensors, ReadsBf16AndF16TensorsAsFloat32) {
  const std::string h = R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}})";
  const Bytes b = forge(h, {0x80, 0x3f, 0x49, 0xc0, 0x00, 0x3c, 0x01, 0x00});
  const SafeTensors t = parse_safetensors(b.data(), b.size(), "x");
  ASSERT_EQ(t.tensors.size(), 2u);
  EXPECT_EQ(t.tensors[0].dtype, "BF16");
  EXPECT_EQ(t.tensors[0].values, (std::vector<float>{1.0f, -3.140625f}));
  EXPECT_EQ(t.tensors[1].dtype, "F16");
  EXPECT_EQ(t.tensors[1].values, (std::vector<float>{1.0f, std::ldexp(1.0f, -24)}));
}

TEST(Safetensors, RefusesTooShortFilesAndHeaderLengthsPastTheEnd) {
  EXPECT_TRUE(contains(refusal({1, 2, 3}), "in.safetensors: 3 bytes is too short"));
  Bytes b = forge("{}", {});
  b[0] = 200;  // claims 200 header bytes of the 2 there are
  EXPECT_TRUE(contains(refusal(b), "header length 200 runs past the end of the file (10 bytes)"));
  b = forge("{}", {});
  b[4] = 1;  // 2^32 + 2 bytes
  EXPECT_TRUE(contains(refusal(b), "is above the 100000000-byte limit"));
  EXPECT_TRUE(contains(refusal(forge("<html>", {})), "the header is not valid JSON"));
  EXPECT_TRUE(contains(refusal(forge("[1, 2]", {})), "not an object of tensors"));
}

TEST(Safetensors, RefusesDtypesOtherThanF32Bf16F16NamingTheTensor) {
  for (const char* dtype : {"F64", "I64", "U8", "BOOL", "F8_E4M3"}) {
    const std::string h = std::string(R"({"0.weight":{"dtype":")") + dtype + R"(","shape":[1],"data_offsets":[0,8]}})";
    EXPECT_TRUE(contains(refusal(forge(h, zeros(8))),
                         std::string("tensor '0.weight': dtype ") + dtype + " is not supported (expected F32, BF16 or F16)"));
  }
}

TEST(Safetensors, RefusesAHeaderThatLiesAboutOffsets) {
  // The span does not hold the shape: 2x3 float32 is 24 bytes, not 20.
  EXPECT_TRUE(contains(refusal(forge(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", zeros(20))),
                       "tensor 'w': shape (2, 3) of F32 needs 24 bytes, but data_offsets [0, 20] span 20"));
  // Past the end of the data section.
  EXPECT_TRUE(contains(refusal(forge(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", zeros(8))),
                       "tensor 'w': data_offsets [0, 16] run past the end of the data section (8 bytes)"));
  // End before begin.
  EXPECT_TRUE(contains(refusal(forge(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", zeros(8))),
                       "tensor 'w': data_offsets [8, 4] end before they begin"));
  // Two tensors over the same bytes.
  EXPECT_TRUE(contains(refusal(forge(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                     zeros(12))),
                       "tensor 'b': data_offsets [4, 12] overlap tensor 'a'"));
  // A gap between tensors.
  EXPECT_TRUE(contains(refusal(forge(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                     zeros(12))),
                       "tensor 'b': data_offsets begin at 8, leaving a gap of 4 bytes after tensor 'a'"));
  // An absurd shape whose product overflows.
  EXPECT_TRUE(contains(refusal(forge(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
                                     zeros(4))),
                       "tensor 'w': shape [4294967296,4294967296] is absurdly large"));
  EXPECT_TRUE(contains(refusal(forge(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", zeros(4))),
                       "tensor 'w': shape entries must be non-negative integers, got -1"));
  EXPECT_TRUE(contains(refusal(forge(R"({"w":{"dtype":"F32","shape":[1]}})", zeros(4))),
                       "tensor 'w': data_offsets must be [begin, end]"));
  EXPECT_TRUE(contains(refusal(forge(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", zeros(4))),
                       "tensor 'w': unexpected field 'x'"));
  EXPECT_TRUE(contains(refusal(forge(R"({"__metadata__":{"a":1}})", {})), "__metadata__ 'a' is not a string"));
}

TEST(Safetensors, RefusesAFileLargerThanItsHeaderSays) {
  SafeTensors in;
  in.tensors.push_back({"w", {2}, {1.0f, 2.0f}, "F32"});
  Bytes b = encode_safetensors(in);
  b.push_back(0);
  b.push_back(0);
  EXPECT_TRUE(contains(refusal(b), "the data section is 10 bytes but the header's tensors cover 8: 2 bytes more than "
                                   "the header says"));
  // The same through the file reader, which checks the header against the file's size first.
  test::TempDir dir;
  const auto file = dir / "big.safetensors";
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  try {
    read_safetensors(file);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), file.string() + ": the data section is 10 bytes"));
  }
  EXPECT_THROW(read_safetensors(dir / "missing.safetensors"), Error);
}
