// Saved models: the round trip (spec, parameters, predictions), every refusal of the reader with
// its message, and the atomic write (no temporary left, a failed save keeps the previous file).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/model_io.hpp"

using namespace mnist_gpu;
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

// A fresh, empty directory per test, removed afterwards.
class ModelIo : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("mnist_gpu_model_io_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

ModelSpec small_spec() {
  ModelSpec s;
  s.inputs = 784;
  s.hidden = {32, 16};
  s.outputs = 10;
  s.activation = Activation::tanh;
  s.loss = Loss::l2;
  return s;
}

std::vector<float> random_params(const ModelSpec& spec, std::uint64_t seed) {
  const ParamLayout layout(spec);
  std::vector<float> p(layout.size);
  init_params(spec, layout, seed, p.data());
  for (std::size_t i = 0; i < p.size(); ++i) p[i] += 1e-3f * static_cast<float>(i % 7);  // non-zero biases
  return p;
}

void write_bytes(const fs::path& file, const Bytes& b) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

Bytes read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void put_u32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put_u64(Bytes& b, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// Recomputes the trailing CRC so that a forged header reaches the reader's other checks.
void fix_crc(Bytes& b) {
  const uLong c = ::crc32(0, b.data(), static_cast<uInt>(b.size() - 4));
  put_u32(b, b.size() - 4, static_cast<std::uint32_t>(c));
}

// The Error message of load_model(file), or a failure (and "") when it is accepted.
std::string refusal(const fs::path& file) {
  try {
    load_model(file);
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << file << " was accepted";
  return "";
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

std::vector<std::string> temp_leftovers(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(e.path().string());
  return found;
}

}  // namespace

TEST_F(ModelIo, RoundTripKeepsSpecAndEveryParameterBit) {
  for (const ModelSpec& spec : {small_spec(), ModelSpec{784, {}, 10, Activation::relu, Loss::xent},
                                ModelSpec{5, {3, 1, 4}, 2, Activation::sigmoid, Loss::xent},
                                ModelSpec{5, {3, 4}, 2, Activation::gelu, Loss::l2}}) {
    const std::vector<float> p = random_params(spec, 7);
    const fs::path file = dir_ / "m.bin";
    save_model(file, spec, p);
    EXPECT_EQ(fs::file_size(file), 44 + 4 * spec.hidden.size() + 4 * p.size());
    const SavedModel m = load_model(file);
    EXPECT_EQ(m.spec.inputs, spec.inputs);
    EXPECT_EQ(m.spec.outputs, spec.outputs);
    EXPECT_EQ(m.spec.hidden, spec.hidden);
    EXPECT_EQ(m.spec.activation, spec.activation);
    EXPECT_EQ(m.spec.loss, spec.loss);
    ASSERT_EQ(m.params.size(), p.size());
    EXPECT_EQ(std::memcmp(m.params.data(), p.data(), 4 * p.size()), 0);  // bit-identical
    EXPECT_TRUE(temp_leftovers(dir_).empty());
  }
}

TEST_F(ModelIo, HeaderIsTheDocumentedLittleEndianLayout) {
  const ModelSpec spec = small_spec();
  const Bytes b = encode_model(spec, random_params(spec, 1));
  EXPECT_EQ(std::string(b.begin(), b.begin() + 8), "MNISTGPU");
  const std::vector<std::uint8_t> expect = {1, 0, 0, 0,  0x10, 3, 0, 0,  10, 0, 0, 0,  2, 0, 0, 0,
                                            32, 0, 0, 0,  16, 0, 0, 0,  2, 0, 0, 0,  1, 0, 0, 0};
  EXPECT_EQ(Bytes(b.begin() + 8, b.begin() + 40), expect);
  const std::uint64_t count = ParamLayout(spec).size;
  Bytes c(8);
  put_u64(c, 0, count);
  EXPECT_EQ(Bytes(b.begin() + 40, b.begin() + 48), c);
}

TEST_F(ModelIo, ReloadedModelPredictsIdentically) {
  const ModelSpec spec = small_spec();
  const std::vector<float> p = random_params(spec, 3);
  save_model(dir_ / "m.bin", spec, p);
  const SavedModel m = load_model(dir_ / "m.bin");
  const int batch = 5;
  std::vector<float> x(static_cast<std::size_t>(batch) * 784);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 256) / 255.0f;
  CpuNet<float> a(spec, batch), b(m.spec, batch);
  a.params() = p;
  b.params() = m.params;
  const float* ya = a.forward(x.data(), batch);
  const float* yb = b.forward(x.data(), batch);
  float norm = 0;
  for (int i = 0; i < batch * 10; ++i) {
    EXPECT_EQ(ya[i], yb[i]) << i;
    norm += std::abs(ya[i]);
  }
  EXPECT_GT(norm, 0.0f);  // two empty outputs must not "match"
}

TEST_F(ModelIo, RefusesWrongMagicEmptyAndMissingFiles) {
  write_bytes(dir_ / "text", Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
  EXPECT_TRUE(contains(refusal(dir_ / "text"), "not an mnist_gpu model file"));
  write_bytes(dir_ / "short", Bytes{'M', 'N'});
  EXPECT_TRUE(contains(refusal(dir_ / "short"), "not an mnist_gpu model file"));
  write_bytes(dir_ / "empty", Bytes{});
  const std::string empty = refusal(dir_ / "empty");
  EXPECT_TRUE(contains(empty, "empty"));
  EXPECT_TRUE(contains(empty, (dir_ / "empty").string()));
  const std::string missing = refusal(dir_ / "missing.bin");
  EXPECT_TRUE(contains(missing, "missing.bin"));
  EXPECT_TRUE(contains(missing, "No such file"));
  EXPECT_TRUE(contains(refusal(dir_), "not a regular file"));
}

TEST_F(ModelIo, RefusesNewerVersionNamingBoth) {
  const ModelSpec spec = small_spec();
  Bytes b = encode_model(spec, random_params(spec, 1));
  put_u32(b, 8, 7);
  fix_crc(b);
  write_bytes(dir_ / "v7.bin", b);
  const std::string m = refusal(dir_ / "v7.bin");
  EXPECT_TRUE(contains(m, "version 7"));
  EXPECT_TRUE(contains(m, "version 1"));
}

TEST_F(ModelIo, RefusesTruncatedAndTrailingBytes) {
  const ModelSpec spec = small_spec();
  const Bytes b = encode_model(spec, random_params(spec, 1));
  for (std::size_t len : {std::size_t{10}, std::size_t{30}, std::size_t{47}, b.size() / 2, b.size() - 1}) {
    SCOPED_TRACE(len);
    write_bytes(dir_ / "cut.bin", Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len)));
    EXPECT_TRUE(contains(refusal(dir_ / "cut.bin"), "truncated"));
  }
  Bytes longer = b;
  longer.push_back(0);
  longer.push_back(0);
  write_bytes(dir_ / "long.bin", longer);
  EXPECT_TRUE(contains(refusal(dir_ / "long.bin"), "2 trailing bytes"));
}

TEST_F(ModelIo, RefusesFlippedBytesByChecksum) {
  const ModelSpec spec = small_spec();
  const Bytes b = encode_model(spec, random_params(spec, 1));
  // A parameter byte, the last parameter byte and the CRC itself.
  for (std::size_t at : {std::size_t{100}, b.size() - 5, b.size() - 1}) {
    SCOPED_TRACE(at);
    Bytes c = b;
    c[at] ^= 0x10;
    write_bytes(dir_ / "flip.bin", c);
    EXPECT_TRUE(contains(refusal(dir_ / "flip.bin"), "checksum mismatch: the file is corrupt"));
  }
}

TEST_F(ModelIo, RefusesAbsurdSizesInAForgedHeaderWithAValidCrc) {
  const ModelSpec spec = small_spec();  // hidden {32, 16}: width 1 at offset 24, width 2 at 28
  const Bytes good = encode_model(spec, random_params(spec, 1));
  struct Forge {
    std::size_t at;
    std::uint64_t value;
    bool wide;
    const char* message;
  };
  const Forge cases[] = {
      {12, 0, false, "inputs 0 is outside 1..65536"},
      {12, 100000, false, "inputs 100000 is outside"},
      {16, 0xFFFFFFFFu, false, "outputs 4294967295 is outside"},
      {20, 1000000, false, "1000000 hidden layers: at most 63"},
      {20, 64, false, "64 hidden layers"},
      {24, 65537, false, "hidden width 1 65537 is outside"},
      {28, 0, false, "hidden width 2 0 is outside"},
      {32, 9, false, "unknown activation code 9"},
      {36, 2, false, "unknown loss code 2"},
      {40, 1ull << 40, true, "parameter count 1099511627776 does not match"},
      {40, 0, true, "parameter count 0 does not match"},
  };
  for (const Forge& f : cases) {
    SCOPED_TRACE(f.message);
    Bytes b = good;
    if (f.wide) put_u64(b, f.at, f.value);
    else put_u32(b, f.at, static_cast<std::uint32_t>(f.value));
    fix_crc(b);
    write_bytes(dir_ / "forged.bin", b);
    EXPECT_TRUE(contains(refusal(dir_ / "forged.bin"), f.message));
  }
  // A header that is consistent but declares a huge model: refused by the file size, before any
  // allocation of its (would-be 68 GB) arena.
  Bytes huge(48, 0);  // header (44) + CRC, no arena
  std::memcpy(huge.data(), "MNISTGPU", 8);
  put_u32(huge, 8, 1);
  put_u32(huge, 12, 65536);
  put_u32(huge, 16, 65536);
  put_u32(huge, 20, 1);
  put_u32(huge, 24, 65536);
  put_u32(huge, 28, 0);
  put_u32(huge, 32, 0);
  put_u64(huge, 36, 2ull * 65536 * 65536 + 2 * 65536);
  fix_crc(huge);
  write_bytes(dir_ / "huge.bin", huge);
  EXPECT_TRUE(contains(refusal(dir_ / "huge.bin"), "truncated: 48 bytes, the model needs 34360262704"));
}

TEST_F(ModelIo, SaveReplacesAtomicallyAndLeavesNoTemporary) {
  const ModelSpec spec = small_spec();
  const fs::path file = dir_ / "model.bin";
  save_model(file, spec, random_params(spec, 1));
  save_model(file, spec, random_params(spec, 2));  // replaces
  const SavedModel m = load_model(file);
  EXPECT_EQ(m.params, random_params(spec, 2));
  EXPECT_TRUE(temp_leftovers(dir_).empty());
  EXPECT_NO_THROW(check_model_writable(file));
  EXPECT_TRUE(temp_leftovers(dir_).empty());
}

TEST_F(ModelIo, UnwritableDirectoryIsAnErrorAndKeepsThePreviousFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  const ModelSpec spec = small_spec();
  const fs::path file = dir_ / "model.bin";
  save_model(file, spec, random_params(spec, 1));
  const Bytes before = read_bytes(file);
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
  try {
    save_model(file, spec, random_params(spec, 2));
    FAIL() << "saved into a read-only directory";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), file.string()));
    EXPECT_TRUE(contains(e.what(), "Permission denied"));
  }
  EXPECT_THROW(check_model_writable(file), Error);
  fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
  EXPECT_EQ(read_bytes(file), before);
  EXPECT_TRUE(temp_leftovers(dir_).empty());
  EXPECT_THROW(save_model(dir_ / "no" / "such" / "dir.bin", spec, random_params(spec, 1)), Error);
}

// The same guarantees where permissions cannot be used (as root): the temporary name is taken by
// a directory, or the target is a directory that rename cannot replace.
TEST_F(ModelIo, FailedSaveIsAnErrorAndLeavesNoTemporary) {
  const ModelSpec spec = small_spec();
  const fs::path file = dir_ / "model.bin";
  save_model(file, spec, random_params(spec, 1));
  const Bytes before = read_bytes(file);
  const fs::path blocker = file.string() + ".tmp." + std::to_string(::getpid());
  fs::create_directory(blocker);
  try {
    save_model(file, spec, random_params(spec, 2));
    FAIL() << "saved although the temporary file could not be created";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), file.string()));
    EXPECT_TRUE(contains(e.what(), "Is a directory"));
  }
  EXPECT_THROW(check_model_writable(file), Error);
  EXPECT_EQ(read_bytes(file), before);
  fs::remove(blocker);

  const fs::path target = dir_ / "target";
  fs::create_directories(target / "inside");
  EXPECT_THROW(save_model(target, spec, random_params(spec, 1)), Error);
  EXPECT_TRUE(fs::is_directory(target / "inside"));
  EXPECT_TRUE(temp_leftovers(dir_).empty());
}

TEST_F(ModelIo, SaveRefusesParametersThatDoNotFitTheSpec) {
  EXPECT_THROW(save_model(dir_ / "m.bin", small_spec(), std::vector<float>(3)), Error);
  EXPECT_FALSE(fs::exists(dir_ / "m.bin"));
}

// NaN or infinite parameters would evaluate to "loss nan": refused when read, naming the file and
// the first bad parameter by index and place.
TEST_F(ModelIo, RefusesNanOrInfiniteParametersNamingTheFirst) {
  const ModelSpec spec = small_spec();  // 784-32-16-10: layer 1 W is (32, 784), then 2, 3; then the biases
  const ParamLayout layout(spec);
  std::vector<float> p = random_params(spec, 1);
  p[layout.layers[1].w + 32 + 5] = std::numeric_limits<float>::quiet_NaN();  // layer 2 W[1, 5]: W is (16, 32)
  p[layout.layers[2].b + 3] = std::numeric_limits<float>::infinity();
  save_model(dir_ / "nan.bin", spec, p);
  const std::string m = refusal(dir_ / "nan.bin");
  EXPECT_TRUE(contains(m, (dir_ / "nan.bin").string() + ": parameter " +
                              std::to_string(layout.layers[1].w + 32 + 5) + " (layer 2 weight [1, 5]) is NaN"));
  EXPECT_TRUE(contains(m, "2 of the " + std::to_string(layout.size) + " parameters are not finite"));

  p = random_params(spec, 1);
  p[layout.layers[2].b + 3] = -std::numeric_limits<float>::infinity();
  save_model(dir_ / "inf.bin", spec, p);
  EXPECT_TRUE(contains(refusal(dir_ / "inf.bin"), "(layer 3 bias [3]) is -infinity"));
}

// The parser and the format share one limit: the deepest model `train` accepts is one a saved
// file holds (63 hidden layers), and one more is refused before training.
TEST_F(ModelIo, DeepestModelTheCommandLineAcceptsRoundTrips) {
  ModelSpec spec;
  spec.inputs = 4;
  spec.hidden.assign(static_cast<std::size_t>(kMaxHiddenLayers), 2);
  spec.outputs = 3;
  const std::vector<float> p = random_params(spec, 5);
  save_model(dir_ / "deep.bin", spec, p);
  EXPECT_EQ(load_model(dir_ / "deep.bin").spec.hidden.size(), static_cast<std::size_t>(kMaxHiddenLayers));
  spec.hidden.push_back(2);
  try {
    save_model(dir_ / "deeper.bin", spec, random_params(spec, 5));
    ADD_FAILURE() << "saved a model no reader accepts";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "64 hidden layers; a model file holds at most 63"));
  }
  EXPECT_FALSE(fs::exists(dir_ / "deeper.bin"));
}
