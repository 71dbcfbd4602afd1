// The safetensors container (https://github.com/huggingface/safetensors), as PyTorch's
// safetensors.torch reads and writes it: an 8-byte little-endian header length N, N bytes of JSON
//   {"NAME": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// then the data section, where each tensor's bytes (row-major, little-endian) lie at
// [begin, end) counted from the section's start. This writer emits float32 only; the reader
// takes F32, BF16 and F16 and converts the latter two to float32 exactly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace mnist_gpu {

/// One tensor as float32 values, row-major, with its shape and the dtype it was stored as.
struct SafeTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // (product of shape)
  std::string dtype = "F32";  ///< as stored in the file: F32, BF16 or F16
};

struct SafeTensors {
  std::vector<SafeTensor> tensors;  ///< in the order of their data in the file
  std::map<std::string, std::string> metadata;  ///< the header's __metadata__ (may be empty)
};

/// The largest header this reader accepts (the reference implementation's limit, 100 MB).
constexpr std::uint64_t kSafetensorsMaxHeader = 100'000'000;

/// The file's bytes: the header (keys sorted, padded with spaces to a multiple of 8 bytes so that
/// the data is aligned) and every tensor as F32, in the given order. Throws Error when a tensor's
/// values do not match its shape, a name is empty, repeated or "__metadata__".
std::vector<std::uint8_t> encode_safetensors(const SafeTensors& file);

/// Parses and validates a whole file held in memory. Everything is checked before any tensor is
/// allocated: the header length against the size, the JSON's form, each tensor's dtype (F32,
/// BF16, F16), shape and offsets (in range, shape x dtype size == byte span, no overlap, no gap),
/// and that the data section is exactly what the header covers. Throws Error starting with
/// `name` (the file) and naming the tensor and what was expected.
SafeTensors parse_safetensors(const std::uint8_t* bytes, std::size_t size, const std::string& name);

/// Reads `file` and parses it as parse_safetensors does; the header is validated against the
/// file's size before the data section is read.
SafeTensors read_safetensors(const std::filesystem::path& file);

/// A shape as PyTorch prints it, for messages: "(2, 3)", "(10,)", "()".
std::string shape_text(const std::vector<std::int64_t>& shape);

/// IEEE half and bfloat16 bit patterns to float32, exactly (subnormals, infinities and NaNs kept).
float half_to_float(std::uint16_t bits);
float bfloat16_to_float(std::uint16_t bits);

}  // namespace mnist_gpu
