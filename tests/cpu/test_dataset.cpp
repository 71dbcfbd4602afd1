// load_mnist_dir on synthetic and on the bundled MNIST files, resolve_data_dir's order of sources,
// and the seeded train/validation split.
#include <gtest/gtest.h>

#include "test_paths.hpp"
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/idx.hpp"

namespace fs = std::filesystem;
using mnist_gpu::load_mnist_dir;
using mnist_gpu::resolve_data_dir;
using mnist_gpu::split_indices;
using Bytes = std::vector<std::uint8_t>;

namespace {

const fs::path kBundled = mnist_gpu::test::data_dir();

using mnist_gpu::test::TempDir;

// Writes an unsigned-byte IDX file, gzip-compressed when the name ends in .gz.
void put_idx(const fs::path& path, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes b = {0, 0, 8, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
  b.insert(b.end(), payload.begin(), payload.end());
  if (path.extension() == ".gz") {
    gzFile gz = gzopen(path.c_str(), "wb");
    ASSERT_NE(gz, nullptr);
    ASSERT_EQ(gzwrite(gz, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
    ASSERT_EQ(gzclose(gz), Z_OK);
  } else {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
}

Bytes labels_of(std::uint32_t n) {
  Bytes b(n);
  for (std::uint32_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i % 10);
  return b;
}

// A small MNIST-format directory: `train` and `test` images of rows x cols; train files gzipped.
void put_set(const TempDir& dir, std::uint32_t train, std::uint32_t test, std::uint32_t rows = 28,
             std::uint32_t cols = 28) {
  put_idx(dir / "train-images-idx3-ubyte.gz", {train, rows, cols}, Bytes(train * rows * cols, 3));
  put_idx(dir / "train-labels-idx1-ubyte.gz", {train}, labels_of(train));
  put_idx(dir / "t10k-images-idx3-ubyte", {test, rows, cols}, Bytes(test * rows * cols, 4));
  put_idx(dir / "t10k-labels-idx1-ubyte", {test}, labels_of(test));
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const mnist_gpu::Error& e) {
    return e.what();
  } catch (const mnist_gpu::UsageError& e) {
    return std::string("usage: ") + e.what();
  }
  return "(no error)";
}

// The message starts with `start` and holds every part.
::testing::AssertionResult says(const std::string& msg, const std::string& start,
                                std::initializer_list<const char*> parts) {
  if (msg.rfind(start, 0) != 0)
    return ::testing::AssertionFailure() << "does not start with " << start << ": " << msg;
  for (const char* p : parts)
    if (msg.find(p) == std::string::npos)
      return ::testing::AssertionFailure() << "no \"" << p << "\" in: " << msg;
  return ::testing::AssertionSuccess();
}

// Sets (or unsets, for nullopt) an environment variable and restores it on destruction.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST(LoadMnistDir, BundledDataIsMnist) {
  const auto m = load_mnist_dir(kBundled);
  EXPECT_EQ(m.dataset_name, "MNIST");
  EXPECT_TRUE(m.warnings.empty());
  EXPECT_EQ(m.train.count, 60000);
  EXPECT_EQ(m.test.count, 10000);
  EXPECT_EQ(m.train.rows, 28);
  EXPECT_EQ(m.train.cols, 28);
  EXPECT_EQ(m.train.images.size(), 60000u * 784u);
  EXPECT_EQ(m.test.labels.size(), 10000u);
  EXPECT_EQ(m.train.labels[0], 5);
  EXPECT_EQ(m.test.labels[0], 7);
}

TEST(LoadMnistDir, RawLabelFilesAreRecognisedByTheirDecompressedDigest) {
  // Decompressing the small label files is enough to exercise the raw-digest path cheaply.
  TempDir dir;
  for (const char* name : {"train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"}) {
    const auto gz = mnist_gpu::read_idx(kBundled / (std::string(name) + ".gz"), {1, {}});
    put_idx(dir / name, gz.dims, gz.data);
    const auto raw = mnist_gpu::read_idx(dir / name, {1, {}});
    EXPECT_EQ(raw.md5_file, gz.md5_data) << name;
  }
  // The images stay gzipped (symlinks): the directory as a whole is still MNIST.
  for (const char* name : {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"})
    fs::create_symlink(kBundled / name, dir / name);
  const auto m = load_mnist_dir(dir.path());
  EXPECT_EQ(m.dataset_name, "MNIST");
  EXPECT_TRUE(m.warnings.empty());
  EXPECT_EQ(m.train.labels[0], 5);
}

TEST(LoadMnistDir, SyntheticFilesLoadAsUnknownWithOneWarningEach) {
  TempDir dir;
  put_set(dir, 12, 7);
  const auto m = load_mnist_dir(dir.path());
  EXPECT_EQ(m.dataset_name, "unknown");
  ASSERT_EQ(m.warnings.size(), 4u);
  const auto labels = mnist_gpu::read_idx(dir / "train-labels-idx1-ubyte.gz", {1, {}});
  EXPECT_EQ(m.warnings[1], (dir / "train-labels-idx1-ubyte.gz").string() + ": unknown digest " +
                               labels.md5_file + "; training anyway");
  EXPECT_EQ(m.train.count, 12);
  EXPECT_EQ(m.test.count, 7);
  EXPECT_EQ(m.train.labels, labels_of(12));
  EXPECT_EQ(m.test.images, Bytes(7 * 784, 4));
}

TEST(LoadMnistDir, PrefersGzOverRaw) {
  TempDir dir;
  put_set(dir, 3, 2);
  std::ofstream(dir / "train-labels-idx1-ubyte") << "broken";  // ignored: the .gz is there
  EXPECT_EQ(load_mnist_dir(dir.path()).train.count, 3);
}

TEST(LoadMnistDir, MissingDirectoryOrFile) {
  TempDir dir;
  const std::string missing = (dir / "none").string();
  EXPECT_TRUE(says(error_of([&] { load_mnist_dir(missing); }), missing + ": no such directory",
                   {"expected the four MNIST files"}));
  put_set(dir, 3, 2);
  fs::remove(dir / "t10k-labels-idx1-ubyte");
  EXPECT_TRUE(
      says(error_of([&] { load_mnist_dir(dir.path()); }), dir.path().string() + ": ",
           {"no t10k-labels-idx1-ubyte(.gz) found (expected the four MNIST files train-images-idx3-ubyte"}));
}

TEST(LoadMnistDir, LabelAboveNine) {
  TempDir dir;
  put_set(dir, 5, 2);
  put_idx(dir / "train-labels-idx1-ubyte.gz", {5}, {0, 1, 2, 12, 4});
  EXPECT_TRUE(says(error_of([&] { load_mnist_dir(dir.path()); }),
                   (dir / "train-labels-idx1-ubyte.gz").string() + ": ",
                   {"label 12 at index 3 is out of range (expected 0..9)"}));
}

TEST(LoadMnistDir, OfSeveralBadFilesTheFirstInOrderIsReported) {
  // The four files load on parallel threads; the error is still the first file's, every time.
  TempDir dir;
  put_set(dir, 20, 10);
  // The test labels: a gzip stream cut short (a raw file of that name is also there: .gz wins).
  {
    const fs::path good = dir / "good.gz";
    put_idx(good, {10}, labels_of(10));
    std::ifstream in(good, std::ios::binary);
    Bytes gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    gz.resize(gz.size() / 2);
    std::ofstream(dir / "t10k-labels-idx1-ubyte.gz", std::ios::binary)
        .write(reinterpret_cast<const char*>(gz.data()), static_cast<std::streamsize>(gz.size()));
  }
  const std::string test_labels = (dir / "t10k-labels-idx1-ubyte.gz").string();
  EXPECT_TRUE(says(error_of([&] { load_mnist_dir(dir.path()); }), test_labels + ": ", {"truncated gzip stream"}));
  // Also the training labels bad: theirs is reported, whichever thread ends first.
  put_idx(dir / "train-labels-idx1-ubyte.gz", {20, 1}, Bytes(20, 1));
  const std::string train_labels = (dir / "train-labels-idx1-ubyte.gz").string();
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(says(error_of([&] { load_mnist_dir(dir.path()); }), train_labels + ": ", {"has 2 dimensions, expected 1"}));
}

TEST(LoadMnistDir, ImageAndLabelCountsDiffer) {
  TempDir dir;
  put_set(dir, 5, 2);
  put_idx(dir / "t10k-labels-idx1-ubyte", {3}, {0, 1, 2});
  const std::string images = (dir / "t10k-images-idx3-ubyte").string();
  const std::string labels = (dir / "t10k-labels-idx1-ubyte").string();
  EXPECT_TRUE(says(error_of([&] { load_mnist_dir(dir.path()); }),
                   images + ": 2 images, but " + labels + " has 3 labels", {}));
}

TEST(LoadMnistDir, ImageSizeMustMatchTheModelInput) {
  TempDir dir;
  put_set(dir, 3, 2, 29, 28);
  EXPECT_TRUE(says(error_of([&] { load_mnist_dir(dir.path()); }),
                   (dir / "train-images-idx3-ubyte.gz").string() + ": ",
                   {"images are 29x28 = 812 pixels, but the model expects 784 = 28x28 inputs"}));
  const auto m = load_mnist_dir(dir.path(), 812);
  EXPECT_EQ(m.train.rows, 29);
  EXPECT_EQ(m.train.pixels(), 812);
}

TEST(LoadMnistDir, LabelsWhereImagesBelong) {
  TempDir dir;
  put_set(dir, 3, 2);
  fs::copy_file(dir / "train-labels-idx1-ubyte.gz", dir / "train-images-idx3-ubyte.gz",
                fs::copy_options::overwrite_existing);
  EXPECT_TRUE(says(error_of([&] { load_mnist_dir(dir.path()); }),
                   (dir / "train-images-idx3-ubyte.gz").string() + ": ",
                   {"has 1 dimensions, expected 3 (a labels file where an images file belongs?)"}));
}

TEST(ResolveDataDir, FlagThenEnvironmentThenRepository) {
  TempDir dir;
  fs::create_directory(dir / "a");
  fs::create_directory(dir / "b");
  {
    ScopedEnv env("MNIST_GPU_DATA", (dir / "b").string());
    EXPECT_EQ(resolve_data_dir((dir / "a").string()), dir / "a");
    EXPECT_EQ(resolve_data_dir(""), dir / "b");
  }
  for (const std::optional<std::string>& value :
       {std::optional<std::string>(), std::optional<std::string>("")}) {
    ScopedEnv env("MNIST_GPU_DATA", value);
    const fs::path found = resolve_data_dir("");
    EXPECT_TRUE(fs::exists(found / "train-images-idx3-ubyte.gz")) << found;
    EXPECT_TRUE(fs::equivalent(found, kBundled)) << found;
  }
}

TEST(ResolveDataDir, MissingDirectoryNamesItsSource) {
  TempDir dir;
  const std::string missing = (dir / "none").string();
  EXPECT_TRUE(
      says(error_of([&] { resolve_data_dir(missing); }), missing + ": no such directory (from --data)", {}));
  ScopedEnv env("MNIST_GPU_DATA", missing);
  EXPECT_TRUE(says(error_of([&] { resolve_data_dir(""); }),
                   missing + ": no such directory (from $MNIST_GPU_DATA)", {}));
  std::ofstream(dir / "file") << "x";
  EXPECT_TRUE(says(error_of([&] { resolve_data_dir((dir / "file").string()); }),
                   (dir / "file").string() + ": ", {"not a directory (from --data)"}));
}

TEST(SplitIndices, DisjointCompleteSortedAndSeeded) {
  const int n = 1000, val = 137;
  const auto s = split_indices(n, val, 42);
  ASSERT_EQ(s.val.size(), 137u);
  ASSERT_EQ(s.train.size(), 863u);
  EXPECT_TRUE(std::is_sorted(s.val.begin(), s.val.end()));
  EXPECT_TRUE(std::is_sorted(s.train.begin(), s.train.end()));
  std::vector<std::uint32_t> all;
  std::merge(s.val.begin(), s.val.end(), s.train.begin(), s.train.end(), std::back_inserter(all));
  for (int i = 0; i < n; ++i) ASSERT_EQ(all[static_cast<std::size_t>(i)], static_cast<std::uint32_t>(i));
  // The held-out rows are spread over the range, not a block at either end.
  EXPECT_LT(s.val.front(), 100u);
  EXPECT_GT(s.val.back(), 900u);

  const auto same = split_indices(n, val, 42);
  EXPECT_EQ(same.val, s.val);
  EXPECT_EQ(same.train, s.train);
  EXPECT_NE(split_indices(n, val, 43).val, s.val);
}

TEST(SplitIndices, ZeroValidationAllowedOutOfRangeRefused) {
  const auto s = split_indices(10, 0, 1);
  EXPECT_TRUE(s.val.empty());
  EXPECT_EQ(s.train.size(), 10u);
  for (const int val : {10, 11, -1})
    EXPECT_TRUE(says(error_of([&] { split_indices(10, val, 1); }), "usage: --val " + std::to_string(val),
                     {"is out of range: expected 0 <= val < 10"}));
}

TEST(Subset, CopiesRowsInOrder) {
  mnist_gpu::Dataset all;
  all.rows = 2;
  all.cols = 3;
  all.count = 4;
  for (int i = 0; i < 4; ++i) {
    all.labels.push_back(static_cast<std::uint8_t>(i));
    for (int p = 0; p < 6; ++p) all.images.push_back(static_cast<std::uint8_t>(10 * i + p));
  }
  const auto s = mnist_gpu::subset(all, {3, 1});
  EXPECT_EQ(s.count, 2);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.cols, 3);
  EXPECT_EQ(s.labels, (Bytes{3, 1}));
  EXPECT_EQ(s.images, (Bytes{30, 31, 32, 33, 34, 35, 10, 11, 12, 13, 14, 15}));
  EXPECT_THROW(mnist_gpu::subset(all, {4}), mnist_gpu::Error);
}
