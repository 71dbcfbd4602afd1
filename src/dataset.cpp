// Loading an MNIST-format directory (checked, and recognised by digest), finding the data
// directory, and the seeded train/validation split.
#include "mnist_gpu/dataset.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <limits>
#include <numeric>
#include <system_error>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/idx.hpp"
#include "mnist_gpu/rng.hpp"

namespace mnist_gpu {
namespace {

namespace fs = std::filesystem;

// The four files of a directory and their known digests: MNIST as .gz and decompressed (the
// canonical LeCun files), Fashion-MNIST as .gz (zalandoresearch's distribution).
struct KnownFile {
  const char* name;
  const char* mnist_gz;
  const char* mnist_raw;
  const char* fashion_gz;
};
constexpr KnownFile kTrainImages = {"train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                    "6bbc9ace898e44ae57da46a324031adb", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"};
constexpr KnownFile kTrainLabels = {"train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432",
                                    "a25bea736e30d166cdddb491f175f624", "25c81989df183df01b3e8a0aad5dffbe"};
constexpr KnownFile kTestImages = {"t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3",
                                   "2646ac647ad5339dbf082846283269ea", "bef4ecab320f06d8554ea6380940ec79"};
constexpr KnownFile kTestLabels = {"t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c",
                                   "27ae3e4e09519cfbb04c329615203637", "bb300cfdad3c16e7a12a480ee83cd310"};
constexpr const char* kExpectedFiles =
    "expected the four MNIST files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each gzipped (.gz) or raw";

enum class Known { none, mnist, fashion };

// One loaded file: where it came from and which dataset its digest belongs to.
struct Loaded {
  fs::path path;
  IdxArray idx;
  Known known = Known::none;
};

// NAME.gz, else NAME; when both are there, the pair goes to `shadowed` (NAME.gz is read).
fs::path find_file(const fs::path& dir, const KnownFile& k, std::vector<MnistFiles::Shadowed>& shadowed) {
  std::error_code ec;
  const fs::path gz = dir / (std::string(k.name) + ".gz"), raw = dir / k.name;
  const bool has_gz = fs::exists(gz, ec), has_raw = fs::exists(raw, ec);
  if (has_gz && has_raw) shadowed.push_back({gz, raw});
  if (has_gz) return gz;
  if (has_raw) return raw;
  throw Error(dir.string() + ": no " + k.name + "(.gz) found (" + kExpectedFiles + ")");
}

// A gzip file is recognised by the digest of its stored bytes (a fifth of the pixels' size), and
// then the decompressed bytes need none; a raw file or an unknown .gz gets both digests.
Loaded load(const fs::path& path, const KnownFile& k, int ndims) {
  const std::vector<std::uint8_t> bytes =
      read_whole_file(path, std::numeric_limits<std::size_t>::max(), "an IDX file");
  const bool gzip = bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
  const std::string gz_md5 = gzip ? md5_hex(bytes.data(), bytes.size()) : std::string();
  const bool known_gz = gzip && (gz_md5 == k.mnist_gz || gz_md5 == k.fashion_gz);
  IdxExpect expect{ndims, {}};
  expect.digests = !known_gz;
  Loaded f{path, parse_idx(bytes.data(), bytes.size(), path.string(), expect), Known::none};
  if (known_gz) f.idx.md5_file = gz_md5;
  if (f.idx.md5_file == k.mnist_gz || f.idx.md5_data == k.mnist_raw)
    f.known = Known::mnist;
  else if (f.idx.md5_file == k.fashion_gz)
    f.known = Known::fashion;
  return f;
}

std::string pixels_text(int n) {
  const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(std::max(n, 0)))));
  std::string s = std::to_string(n);
  if (side * side == n && n > 0) s += " = " + std::to_string(side) + "x" + std::to_string(side);
  return s;
}

// Pairs an images file with its labels file, checking both and each against the other.
Dataset make_dataset(Loaded& images, Loaded& labels, int input_pixels) {
  const auto& d = images.idx.dims;  // (count, rows, cols)
  const std::uint64_t pixels = std::uint64_t{d[1]} * d[2];
  if (pixels != static_cast<std::uint64_t>(input_pixels))
    throw Error(images.path.string() + ": images are " + std::to_string(d[1]) + "x" + std::to_string(d[2]) +
                " = " + std::to_string(pixels) + " pixels, but the model expects " +
                pixels_text(input_pixels) + " inputs");
  if (d[0] > static_cast<std::uint32_t>(INT_MAX))
    throw Error(images.path.string() + ": " + std::to_string(d[0]) + " images, more than the " +
                std::to_string(INT_MAX) + " supported");
  const std::vector<std::uint8_t>& l = labels.idx.data;
  if (const auto bad = std::find_if(l.begin(), l.end(), [](std::uint8_t v) { return v > 9; }); bad != l.end())
    throw Error(labels.path.string() + ": label " + std::to_string(*bad) + " at index " +
                std::to_string(bad - l.begin()) + " is out of range (expected 0..9)");
  if (labels.idx.dims[0] != d[0])
    throw Error(images.path.string() + ": " + std::to_string(d[0]) + " images, but " + labels.path.string() +
                " has " + std::to_string(labels.idx.dims[0]) + " labels (expected the same count)");
  Dataset ds;
  ds.images = std::move(images.idx.data);
  ds.labels = std::move(labels.idx.data);
  ds.count = static_cast<int>(d[0]);
  ds.rows = static_cast<int>(d[1]);
  ds.cols = static_cast<int>(d[2]);
  return ds;
}

}  // namespace

MnistFiles load_mnist_dir(const std::filesystem::path& dir, int input_pixels) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir.string() + ": no such directory (" + kExpectedFiles + ")");
  // Find all four before reading any, so that a missing file is reported at once.
  MnistFiles out;
  const fs::path paths[4] = {find_file(dir, kTrainImages, out.shadowed), find_file(dir, kTrainLabels, out.shadowed),
                             find_file(dir, kTestImages, out.shadowed), find_file(dir, kTestLabels, out.shadowed)};
  // The four files inflate on their own threads (the training images, 47 MB, take most of the
  // time); an error is the first file's in this order, as when they were read one by one.
  const KnownFile* known[4] = {&kTrainImages, &kTrainLabels, &kTestImages, &kTestLabels};
  std::future<Loaded> pending[4];
  for (int i = 1; i < 4; ++i)
    pending[i] = std::async(std::launch::async, [&paths, &known, i] { return load(paths[i], *known[i], i % 2 ? 1 : 3); });
  Loaded files[4];
  std::exception_ptr error;
  try {
    files[0] = load(paths[0], kTrainImages, 3);
  } catch (...) {
    error = std::current_exception();
  }
  for (int i = 1; i < 4; ++i) {
    try {
      files[i] = pending[i].get();  // waits for every thread, also after an error
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);

  out.train = make_dataset(files[0], files[1], input_pixels);
  out.test = make_dataset(files[2], files[3], input_pixels);
  if (out.test.pixels() != out.train.pixels())
    throw Error(paths[2].string() + ": test images are " + std::to_string(out.test.rows) + "x" +
                std::to_string(out.test.cols) + ", the training images " + std::to_string(out.train.rows) +
                "x" + std::to_string(out.train.cols));

  const auto all = [&](Known k) {
    return std::all_of(std::begin(files), std::end(files), [k](const Loaded& f) { return f.known == k; });
  };
  if (all(Known::mnist)) {
    out.dataset_name = "MNIST";
  } else if (all(Known::fashion)) {
    out.dataset_name = "Fashion-MNIST";
  } else {
    out.dataset_name = "unknown";
    for (const Loaded& f : files)
      if (f.known == Known::none)
        out.warnings.push_back(f.path.string() + ": unknown digest " + f.idx.md5_file + "; training anyway");
    if (out.warnings.empty())
      out.warnings.push_back(dir.string() + ": files from both MNIST and Fashion-MNIST; training anyway");
  }
  return out;
}

std::filesystem::path resolve_data_dir(const std::string& flag) {
  std::error_code ec;
  const auto checked = [&](const fs::path& dir, const std::string& source) {
    if (!fs::is_directory(dir, ec))
      throw Error(dir.string() + ": " + (fs::exists(dir, ec) ? "not a directory" : "no such directory") +
                  " (from " + source + ")");
    return dir;
  };
  if (!flag.empty()) return checked(flag, "--data");
  if (const char* env = std::getenv("MNIST_GPU_DATA"); env && *env) return checked(env, "$MNIST_GPU_DATA");

  // The repository's data/mnist: beside an installed or build-tree executable, else the source tree.
  std::vector<fs::path> candidates;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back((exe.parent_path() / ".." / "data" / "mnist").lexically_normal());
    candidates.push_back(exe.parent_path() / "data" / "mnist");
  }
  candidates.push_back(fs::path(MNIST_GPU_SOURCE_DIR "/data/mnist"));
  for (const fs::path& dir : candidates)
    if (fs::is_directory(dir, ec)) return dir;
  std::string looked;
  for (const fs::path& dir : candidates) looked += (looked.empty() ? "" : ", ") + dir.string();
  return checked(candidates.back(),
                 "the repository's data/mnist; looked in " + looked + "; pass --data or set $MNIST_GPU_DATA");
}

SplitIndices split_indices(int n, int val, std::uint64_t seed) {
  if (val < 0 || val >= n)
    throw UsageError("--val " + std::to_string(val) + " is out of range: expected 0 <= val < " +
                     std::to_string(n) + " (the number of training images)");
  std::vector<std::uint32_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), 0u);
  Rng rng(seed, RngStream::split);
  rng.shuffle(perm);
  SplitIndices s;
  s.val.assign(perm.begin(), perm.begin() + val);
  s.train.assign(perm.begin() + val, perm.end());
  std::sort(s.val.begin(), s.val.end());
  std::sort(s.train.begin(), s.train.end());
  return s;
}

Dataset subset(const Dataset& all, const std::vector<std::uint32_t>& indices) {
  Dataset out;
  out.rows = all.rows;
  out.cols = all.cols;
  out.count = static_cast<int>(indices.size());
  const std::size_t row = static_cast<std::size_t>(all.pixels());
  out.images.resize(indices.size() * row);
  out.labels.resize(indices.size());
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const std::uint32_t k = indices[i];
    if (k >= static_cast<std::uint32_t>(all.count))
      throw Error("subset: index " + std::to_string(k) + " out of range (the dataset has " +
                  std::to_string(all.count) + " rows)");
    std::memcpy(out.images.data() + i * row, all.image(static_cast<int>(k)), row);
    out.labels[i] = all.labels[k];
  }
  return out;
}

TrainSplit make_train_split(const Dataset& all, int val, int limit, std::uint64_t seed) {
  if (val >= all.count)
    throw UsageError("--val: expected fewer than the " + std::to_string(all.count) + " training images, got '" +
                     std::to_string(val) + "'");
  SplitIndices split = split_indices(all.count, val, seed);
  if (limit > 0 && static_cast<std::size_t>(limit) < split.train.size()) split.train.resize(static_cast<std::size_t>(limit));
  return TrainSplit{subset(all, split.train), subset(all, split.val)};
}

}  // namespace mnist_gpu
