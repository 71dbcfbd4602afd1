// Bad data through the real executable: for each class of broken MNIST directory, `train` exits 1
// with a message that names the broken file and what was expected, before any training.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "mnist_gpu/dataset.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

Bytes idx(std::uint8_t type, const std::vector<std::uint32_t>& dims, std::size_t payload, std::uint8_t fill) {
  Bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims) put_be32(b, d);
  b.insert(b.end(), payload, fill);
  return b;
}

Bytes gzip(const Bytes& raw) {
  const fs::path tmp = fs::temp_directory_path() / ("mnist_gpu_badin_" + std::to_string(::getpid()) + ".gz");
  gzFile f = gzopen(tmp.c_str(), "wb");
  gzwrite(f, raw.data(), static_cast<unsigned>(raw.size()));
  gzclose(f);
  std::ifstream in(tmp, std::ios::binary);
  Bytes out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(tmp);
  return out;
}

// A tiny valid MNIST directory: 20 training and 10 test images of 28x28, labels 0..9.
struct Files {
  Bytes train_images = idx(8, {20, 28, 28}, 20 * 784, 7);
  Bytes train_labels = idx(8, {20}, 20, 3);
  Bytes test_images = idx(8, {10, 28, 28}, 10 * 784, 9);
  Bytes test_labels = idx(8, {10}, 10, 4);
};

struct Case {
  const char* name;
  std::function<void(Files&)> damage;
  const char* file;      ///< the file the message must name
  const char* expected;  ///< a phrase the message must contain
};

// The tiny valid directory's four files, raw, in `dir`.
void write_files(const fs::path& dir, const Files& f) {
  fs::create_directories(dir);
  const std::pair<const char*, const Bytes*> files[] = {{"train-images-idx3-ubyte", &f.train_images},
                                                        {"train-labels-idx1-ubyte", &f.train_labels},
                                                        {"t10k-images-idx3-ubyte", &f.test_images},
                                                        {"t10k-labels-idx1-ubyte", &f.test_labels}};
  for (const auto& [name, bytes] : files)
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes->data()), static_cast<std::streamsize>(bytes->size()));
}

std::string run(const fs::path& dir, int* code) {
  const auto r = mnist_gpu::test::run_exe("train --device cpu --epochs 1 --hidden 8 --val 5 --data '" + dir.string() + "'");
  *code = r.code;
  return r.out;
}

}  // namespace

TEST(BadInput, EveryBrokenMnistDirectoryIsRefusedNamingTheFile) {
  const std::vector<Case> cases{
      {"empty file", [](Files& f) { f.train_labels.clear(); }, "train-labels-idx1-ubyte", "empty"},
      {"short header", [](Files& f) { f.train_labels.resize(6); }, "train-labels-idx1-ubyte", "header"},
      {"html saved as gz", [](Files& f) { const std::string h = "<!DOCTYPE html><html>404</html>"; f.test_images.assign(h.begin(), h.end()); },
       "t10k-images-idx3-ubyte", "HTML"},
      {"wrong type code", [](Files& f) { f.test_labels[2] = 0x0D; }, "t10k-labels-idx1-ubyte", "0x08"},
      {"wrong dimensions", [](Files& f) { f.train_images = idx(8, {20, 28, 28, 1}, 20 * 784, 7); },
       "train-images-idx3-ubyte", "dimensions"},
      {"labels and images swapped", [](Files& f) { std::swap(f.train_images, f.train_labels); },
       "train-images-idx3-ubyte", "dimension"},
      {"little-endian header", [](Files& f) {
         f.test_labels = Bytes{0, 0, 8, 1, 10, 0, 0, 0};
         f.test_labels.insert(f.test_labels.end(), 10, 4);
       }, "t10k-labels-idx1-ubyte", "little-endian"},
      {"zero dimension", [](Files& f) { f.train_images = idx(8, {20, 0, 28}, 0, 7); }, "train-images-idx3-ubyte", "dimension 1 is 0"},
      {"declared size beyond the file", [](Files& f) { f.test_images.resize(f.test_images.size() - 100); },
       "t10k-images-idx3-ubyte", "truncated"},
      {"declared size overflowing", [](Files& f) { f.train_images = idx(8, {0xFFFFFFFFu, 28, 28}, 16, 7); },
       "train-images-idx3-ubyte", "3367254359280 bytes of data the header declares"},
      {"trailing bytes", [](Files& f) { f.train_labels.push_back(1); }, "train-labels-idx1-ubyte", "trailing"},
      {"truncated gzip", [](Files& f) { f.train_images = gzip(f.train_images); f.train_images.resize(f.train_images.size() / 2); },
       "train-images-idx3-ubyte", "truncated"},
      {"corrupt gzip", [](Files& f) { f.train_images = gzip(f.train_images); f.train_images[f.train_images.size() / 2] ^= 0xFF; f.train_images[f.train_images.size() / 2 + 1] ^= 0x55; },
       "train-images-idx3-ubyte", "corrupt gzip stream"},
      {"label above 9", [](Files& f) { f.train_labels.back() = 10; }, "train-labels-idx1-ubyte", "label 10 at index 19 is out of range"},
      {"count mismatch", [](Files& f) { f.test_labels = idx(8, {9}, 9, 4); }, "t10k-labels-idx1-ubyte", "has 9 labels"},
      {"images of another size", [](Files& f) {
         f.train_images = idx(8, {20, 32, 32}, 20 * 1024, 7);
         f.test_images = idx(8, {10, 32, 32}, 10 * 1024, 9);
       }, "train-images-idx3-ubyte", "784"},
  };
  const fs::path root = fs::temp_directory_path() / ("mnist_gpu_badin_dirs_" + std::to_string(::getpid()));
  for (const Case& c : cases) {
    Files f;
    c.damage(f);
    const fs::path dir = root / c.name;
    fs::create_directories(dir);
    const std::pair<const char*, const Bytes*> files[] = {{"train-images-idx3-ubyte", &f.train_images},
                                                          {"train-labels-idx1-ubyte", &f.train_labels},
                                                          {"t10k-images-idx3-ubyte", &f.test_images},
                                                          {"t10k-labels-idx1-ubyte", &f.test_labels}};
    for (const auto& [name, bytes] : files) {
      // gzip data goes to NAME.gz, as a user's download would be named
      const bool gz = bytes->size() >= 2 && (*bytes)[0] == 0x1f && (*bytes)[1] == 0x8b;
      const bool html = bytes->size() > 0 && (*bytes)[0] == '<';
      std::ofstream(dir / (std::string(name) + (gz || html ? ".gz" : "")), std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes->data()), static_cast<std::streamsize>(bytes->size()));
    }
    int code = 0;
    const std::string out = run(dir, &code);
    EXPECT_EQ(code, 1) << c.name << "\n" << out;
    EXPECT_NE(out.find(c.file), std::string::npos) << c.name << ": message must name " << c.file << "\n" << out;
    EXPECT_NE(out.find(c.expected), std::string::npos) << c.name << ": expected '" << c.expected << "'\n" << out;
    EXPECT_EQ(out.find("epoch"), std::string::npos) << c.name << ": must fail before training\n" << out;
    if (std::getenv("MNIST_GPU_SHOW_MESSAGES")) std::printf("%-32s %s", c.name, out.substr(out.rfind("error:")).c_str());
  }
  // And the sanity check that the undamaged tiny directory trains (so the failures above are the damage's).
  const fs::path dir = root / "valid";
  write_files(dir, Files{});
  int code = 0;
  const std::string out = run(dir, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("unknown digest"), std::string::npos) << "unknown data must be warned about\n" << out;
  fs::remove_all(root);
}

TEST(BadInput, MissingDirectoryAndMissingFile) {
  int code = 0;
  std::string out = run("/nonexistent/mnist", &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("/nonexistent/mnist"), std::string::npos) << out;
  const fs::path dir = fs::temp_directory_path() / ("mnist_gpu_badin_empty_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  out = run(dir, &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("train-images-idx3-ubyte"), std::string::npos) << out;
  fs::remove_all(dir);
}

// A FIFO would block the reader forever (no writer ever comes) and a link to /dev/zero never
// ends: both are refused before they are opened, naming the file. The timeout fails, not hangs.
TEST(BadInput, FifoOrDeviceAsADataFileIsRefusedAtOnce) {
  mnist_gpu::test::TempDir tmp;
  const fs::path dir = tmp / "data";
  write_files(dir, Files{});
  fs::remove(dir / "train-images-idx3-ubyte");
  ASSERT_EQ(::mkfifo((dir / "train-images-idx3-ubyte").c_str(), 0644), 0);
  const std::string args = "train --device cpu --epochs 1 --hidden 8 --val 5 --data '" + dir.string() + "'";
  auto r = mnist_gpu::test::run_exe(args, 120);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find((dir / "train-images-idx3-ubyte").string() +
                       ": not a regular file (it is a FIFO, expected an IDX file)"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("epoch"), std::string::npos) << r.out;

  fs::remove(dir / "train-images-idx3-ubyte");
  write_files(dir, Files{});
  fs::remove(dir / "t10k-labels-idx1-ubyte");
  fs::create_symlink("/dev/zero", dir / "t10k-labels-idx1-ubyte");
  r = mnist_gpu::test::run_exe(args, 120);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find((dir / "t10k-labels-idx1-ubyte").string() + ": not a regular file (it is a character device"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("epoch"), std::string::npos) << r.out;
}

// NAME.gz is read when NAME is there too, and the run says so (the library reports the pair).
TEST(BadInput, BothNameAndNameGzSaysWhichIsRead) {
  mnist_gpu::test::TempDir tmp;
  const fs::path dir = tmp / "data";
  const Files f;
  write_files(dir, f);
  const Bytes gz = gzip(f.train_labels);
  std::ofstream(dir / "train-labels-idx1-ubyte.gz", std::ios::binary)
      .write(reinterpret_cast<const char*>(gz.data()), static_cast<std::streamsize>(gz.size()));

  const mnist_gpu::MnistFiles files = mnist_gpu::load_mnist_dir(dir);
  ASSERT_EQ(files.shadowed.size(), 1u);
  EXPECT_EQ(files.shadowed[0].used, dir / "train-labels-idx1-ubyte.gz");
  EXPECT_EQ(files.shadowed[0].ignored, dir / "train-labels-idx1-ubyte");

  int code = 0;
  const std::string out = run(dir, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("notice: " + dir.string() +
                     " holds both train-labels-idx1-ubyte.gz and train-labels-idx1-ubyte; reading "
                     "train-labels-idx1-ubyte.gz"),
            std::string::npos)
      << out;
  // The bundled directory holds only the .gz files: no such notice.
  EXPECT_TRUE(mnist_gpu::load_mnist_dir(mnist_gpu::test::data_dir()).shadowed.empty());
}
