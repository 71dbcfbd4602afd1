// Whole-file reads and crash-safe writes: a file is replaced only by a complete, synced copy.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

namespace mnist_gpu {

/// Writes `bytes` to `path` atomically: to a temporary file beside it, flushed and fsynced, then
/// renamed over `path` (and the directory synced). On any failure (unwritable directory, full
/// disk) the temporary file is removed, the old `path` is untouched, and Error names the file.
void write_file_atomically(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);

/// The whole file; Error naming it if it cannot be read or is larger than `max_bytes`.
std::vector<std::uint8_t> read_whole_file(const std::filesystem::path& path, std::uint64_t max_bytes);

}  // namespace mnist_gpu
