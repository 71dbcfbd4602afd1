// For harnesses of formats that end in a CRC-32 of every byte before it: a copy of the input with
// that CRC made correct, so that mutations reach the parser behind the checksum test.
#pragma once
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mnist_gpu_fuzz {

/// `data` with its last 4 bytes replaced by the little-endian zlib CRC-32 of the bytes before them
/// (inputs shorter than 4 bytes are returned as they are).
inline std::vector<std::uint8_t> with_valid_crc(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> b(data, data + size);
  if (b.size() < 4) return b;
  const std::size_t n = b.size() - 4;
  const auto crc = static_cast<std::uint32_t>(crc32(0L, b.data(), static_cast<uInt>(n)));
  for (int i = 0; i < 4; ++i) b[n + i] = static_cast<std::uint8_t>(crc >> (8 * i));
  return b;
}

}  // namespace mnist_gpu_fuzz
