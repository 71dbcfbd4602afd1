// Saved models: a versioned little-endian binary file holding a ModelSpec and its parameter arena,
// written atomically and validated completely (before any allocation) when read.
//
// Format, version 1 (every integer little-endian, no padding):
//
//   offset     size    field
//   0          8       magic "MNISTGPU" (ASCII, no terminator)
//   8          4       format version, uint32 = 1
//   12         4       inputs, uint32 in 1..65536
//   16         4       outputs, uint32 in 1..65536
//   20         4       H = number of hidden layers, uint32 in 0..63 (at most 64 dense layers)
//   24         4*H     hidden widths, uint32 each in 1..65536
//   24+4H      4       activation, uint32: 0 relu, 1 sigmoid, 2 tanh
//   28+4H      4       loss, uint32: 0 xent, 1 l2
//   32+4H      8       P = parameter count, uint64; must equal ParamLayout(spec).size
//   40+4H      4*P     the parameter arena, float32 (IEEE 754), in the layout of model.hpp:
//                      every layer's W (out, in) row-major in layer order, then every layer's b
//   40+4H+4P   4       CRC-32 (zlib's crc32, polynomial 0xEDB88320) of bytes [0, 40+4H+4P)
//
// The file is exactly 44 + 4H + 4P bytes. A reader refuses a newer version rather than guessing.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

/// The format version this build writes and the newest it reads.
constexpr std::uint32_t kModelFormatVersion = 1;

/// Limits a reader enforces on a header before it allocates anything.
constexpr std::uint32_t kModelMaxWidth = kMaxLayerWidth;         ///< inputs, outputs and each hidden width
constexpr std::uint32_t kModelMaxLayers = kMaxHiddenLayers + 1;  ///< dense layers (hidden layers + 1)

struct SavedModel {
  ModelSpec spec;
  std::vector<float> params;  // (ParamLayout(spec).size)
};

/// The file's bytes for `spec` and `params` (params.size() must equal ParamLayout(spec).size and
/// spec.hidden hold at most kModelMaxLayers - 1 layers; throws Error otherwise).
std::vector<std::uint8_t> encode_model(const ModelSpec& spec, const std::vector<float>& params);

/// Writes the model to `file` atomically (write_file_atomically: FILE.tmp.<pid>, fsync, rename
/// over FILE, fsync of the directory). On failure the temporary file is removed, a previous FILE
/// is left intact, and an Error names the file and the reason.
void save_model(const std::filesystem::path& file, const ModelSpec& spec, const std::vector<float>& params);

/// Checks that save_model could create a file beside `file` (the directory exists and is
/// writable) by creating and removing a temporary file; throws Error otherwise. Lets `train
/// --save` fail before training rather than after.
void check_model_writable(const std::filesystem::path& file);

/// Reads and validates a model file: a regular file (a FIFO or device is refused before it is
/// opened), magic, version, sizes (before allocating), exact file size, CRC, and finite
/// parameters (a NaN or infinity is refused naming its index and layer). Throws Error naming the
/// file and what is wrong.
SavedModel load_model(const std::filesystem::path& file);

}  // namespace mnist_gpu
