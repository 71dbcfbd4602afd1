// MNIST-format datasets in memory (uint8 pixels and labels), where they are found, how they are
// recognised, and the seeded train/validation split.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mnist_gpu {

/// n images of rows*cols uint8 pixels (row-major, (n, rows*cols)) and n labels in 0..9.
struct Dataset {
  std::vector<std::uint8_t> images;  // (count, rows * cols)
  std::vector<std::uint8_t> labels;  // (count)
  int count = 0;
  int rows = 28;
  int cols = 28;
  int pixels() const { return rows * cols; }
  const std::uint8_t* image(int i) const { return images.data() + static_cast<std::size_t>(i) * pixels(); }
};

/// The four files of an MNIST-format directory, loaded and checked.
struct MnistFiles {
  Dataset train;                      ///< all 60,000 (or however many) training images
  Dataset test;                       ///< the test set, for the final report only
  std::string dataset_name;           ///< "MNIST", "Fashion-MNIST" or "unknown"
  std::vector<std::string> warnings;  ///< e.g. unknown digests; the CLI logs them
  /// Files found both as NAME.gz and NAME: the one read (NAME.gz) and the one ignored; the CLI says so.
  struct Shadowed {
    std::filesystem::path used, ignored;
  };
  std::vector<Shadowed> shadowed;
};

/// Loads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
/// t10k-labels-idx1-ubyte from `dir`, each as NAME.gz or raw NAME (NAME.gz when both are there,
/// listed in `shadowed`); each must be a regular file. Checks labels in 0..9,
/// image count == label count, and image size == `input_pixels` (the model's input). Recognises
/// MNIST and Fashion-MNIST by digest. Throws mnist_gpu::Error naming the file.
MnistFiles load_mnist_dir(const std::filesystem::path& dir, int input_pixels = 784);

/// The data directory: `flag` if non-empty, else $MNIST_GPU_DATA if set and non-empty, else the
/// repository's data/mnist (found from the executable's location or the source tree, so any
/// working directory works). Throws Error naming which source was used if that directory is missing.
std::filesystem::path resolve_data_dir(const std::string& flag);

/// Indices of a seeded split of [0, n): `val` sorted indices held out, the other n - val (sorted)
/// for training. Disjoint and complete. Requires 0 <= val < n.
struct SplitIndices {
  std::vector<std::uint32_t> train;
  std::vector<std::uint32_t> val;
};
SplitIndices split_indices(int n, int val, std::uint64_t seed);

/// The training and validation sets of a run: `val` images held out by split_indices(seed), the
/// training rows cut to the first `limit` of the split when 0 < limit (quick searches). Throws
/// UsageError (--val) when val leaves no training image.
struct TrainSplit {
  Dataset train, val;
};
TrainSplit make_train_split(const Dataset& all, int val, int limit, std::uint64_t seed);

/// The rows of `all` at `indices`, in that order.
Dataset subset(const Dataset& all, const std::vector<std::uint32_t>& indices);

}  // namespace mnist_gpu
