// An exclusive, advisory lock on a lock file (flock), so that two runs never write the same
// output at once. The kernel releases it when the process ends, however it ends (SIGKILL too).
#pragma once
#include <filesystem>
#include <optional>
#include <utility>

namespace mnist_gpu {

class FileLock {
 public:
  /// Locks `path` (created when missing; the holder's pid is written into it). When another
  /// process holds the lock, returns nullopt and sets `holder` to that process's pid (0 when it
  /// cannot be read). Throws Error naming `path` when the lock file cannot be created or locked.
  static std::optional<FileLock> try_acquire(const std::filesystem::path& path, long& holder);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  /// Removes the lock file, then releases the lock.
  ~FileLock();

  const std::filesystem::path& path() const { return path_; }

 private:
  FileLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  void release() noexcept;
  int fd_ = -1;
  std::filesystem::path path_;
};

}  // namespace mnist_gpu
