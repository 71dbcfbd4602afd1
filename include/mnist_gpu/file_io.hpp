// Whole-file reads and crash-safe writes: a file is replaced only by a complete, synced copy; only
// regular files are read or replaced (a FIFO, device or directory is refused at once, by name).
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mnist_gpu {

/// Writes `bytes` to `path` atomically: to a temporary file beside it, flushed and fsynced, then
/// renamed over `path` (and the directory synced). A symbolic link is followed: the file it points
/// to is replaced, the link kept. An existing `path` that is not a regular file (a device, FIFO,
/// directory) is refused, never replaced. On any failure (unwritable directory, full disk) the
/// temporary file is removed, the old `path` is untouched, and Error names the file.
void write_file_atomically(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);

/// Fails early, before long work whose result goes to `path`: refuses an existing `path` that is
/// not a regular file (after following symbolic links), then creates and removes a probe file
/// beside it; Error "<path>: cannot <purpose> here (<reason>)" if that is refused (missing or
/// unwritable directory, a name too long for the file system).
void check_file_writable(const std::filesystem::path& path, const std::string& purpose);

/// The file a write to `path` replaces: `path` with every symbolic link of its last component
/// followed (the link's target need not exist). Error naming `path` on a link loop.
std::filesystem::path output_target(const std::filesystem::path& path);

/// Refuses (UsageError "<flag a> and <flag b> both name '<path>'") two of `paths` (flag, path;
/// empty paths skipped) that are the same file, also through symbolic links or `..`.
void check_distinct_paths(const std::vector<std::pair<std::string, std::filesystem::path>>& paths);

/// The whole file; Error naming it if it cannot be read, is not a regular file (refused before it
/// is opened for reading, so a FIFO cannot block), or is larger than `max_bytes`. `what` names
/// the content expected, for the message ("an mnist_gpu checkpoint").
std::vector<std::uint8_t> read_whole_file(const std::filesystem::path& path, std::uint64_t max_bytes,
                                          const std::string& what = "a regular file");

/// Folders a run creates for its outputs, removed again (when still empty) unless kept, so that a
/// run that fails or is interrupted before writing into them leaves no empty folder behind.
class MadeDirs {
 public:
  MadeDirs() = default;
  /// Creates `dir` and its missing parents, remembering which it made; Error "<dir>: cannot
  /// create <what> (<reason>)" on failure.
  MadeDirs(const std::filesystem::path& dir, const std::string& what);
  MadeDirs(MadeDirs&& other) noexcept : made_(std::move(other.made_)) { other.made_.clear(); }
  MadeDirs& operator=(MadeDirs&&) = delete;
  MadeDirs(const MadeDirs&) = delete;
  MadeDirs& operator=(const MadeDirs&) = delete;
  /// Removes the folders it made that are still empty, deepest first (never one holding a file).
  ~MadeDirs();
  /// The run wrote into them: keep them.
  void keep() { made_.clear(); }
  /// Whether `dir` was made by this object (and not kept).
  bool made() const { return !made_.empty(); }

 private:
  std::vector<std::filesystem::path> made_;  // deepest first
};

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using InputFile = std::unique_ptr<std::FILE, FileCloser>;

/// Opens `path` for reading ("rb"), refusing anything but a regular file (symbolic links followed)
/// before it could block: Error "<path>: not a regular file (it is a FIFO (named pipe), expected
/// <what>)", or "<path>: cannot open (<reason>)".
InputFile open_input_file(const std::filesystem::path& path, const std::string& what);

}  // namespace mnist_gpu
