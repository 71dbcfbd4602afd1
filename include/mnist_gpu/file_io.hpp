// Whole-file reads and crash-safe writes: a file is replaced only by a complete, synced copy.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mnist_gpu {

/// Writes `bytes` to `path` atomically: to a temporary file beside it, flushed and fsynced, then
/// renamed over `path` (and the directory synced). On any failure (unwritable directory, full
/// disk) the temporary file is removed, the old `path` is untouched, and Error names the file.
void write_file_atomically(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);

/// Fails early, before long work whose result goes to `path`: creates and removes a probe file
/// beside it; Error "<path>: cannot <purpose> here (<reason>)" if that is refused.
void check_file_writable(const std::filesystem::path& path, const std::string& purpose);

/// The whole file; Error naming it if it cannot be read or is larger than `max_bytes`.
std::vector<std::uint8_t> read_whole_file(const std::filesystem::path& path, std::uint64_t max_bytes);

}  // namespace mnist_gpu
