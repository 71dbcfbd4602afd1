// IDX file reader (the MNIST format), for gzip-compressed and raw files. Everything is validated
// before anything is allocated from a size the file declares; each rejection is an Error whose
// message starts with the file's path and says what was expected.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mnist_gpu {

/// What the caller expects of an IDX file. Type code is always 0x08 (unsigned byte).
struct IdxExpect {
  int ndims = 0;                    ///< 1 for labels, 3 for images
  std::vector<std::uint32_t> tail;  ///< required sizes of dims 1..ndims-1 (e.g. {28, 28}); empty = any
  /// Compute md5_file and md5_data. A caller that has recognised the file by the digest of its
  /// stored bytes already turns this off: the digest of 47 MB of pixels costs as much as a
  /// tenth of a second.
  bool digests = true;
};

/// An unsigned-byte IDX array: dims[0] items of prod(dims[1..]) bytes each, row-major.
struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
  std::string md5_file;  ///< hex md5 of the file as stored (the .gz itself for gzip files); empty without digests
  std::string md5_data;  ///< hex md5 of the decompressed bytes (header included); empty without digests
};

/// Reads `path` (gzip when it starts with the gzip magic, else raw) and checks: magic (two zero
/// bytes), type code 0x08, number of dimensions, each dimension (non-zero, matching `expect`),
/// declared size vs the bytes really there (truncated payload, truncated or corrupt gzip stream,
/// trailing bytes). Throws mnist_gpu::Error.
IdxArray read_idx(const std::filesystem::path& path, const IdxExpect& expect);

/// The same checks as read_idx on a file already in memory (`size` bytes at `data`, gzip or raw);
/// `name` starts every error message, as the path does for read_idx. For fuzzing and for callers
/// that hold the bytes already.
IdxArray parse_idx(const std::uint8_t* data, std::size_t size, const std::string& name, const IdxExpect& expect);

/// Hex md5 of a byte range (RFC 1321). Used to recognise known datasets, not for security.
std::string md5_hex(const void* data, std::size_t size);

}  // namespace mnist_gpu
