// FileLock: flock(LOCK_EX | LOCK_NB) on a lock file holding the holder's pid. The lock file is
// removed on release; a process that locked a file just removed (its inode no longer at the
// path) retries on the new one, so two processes never both hold "the" lock.
#include "mnist_gpu/file_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "mnist_gpu/error.hpp"

namespace mnist_gpu {
namespace {

// The pid a lock file holds (0 when empty or unreadable: its holder may not have written it yet).
long read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  char* end = nullptr;
  const long pid = std::strtol(buf, &end, 10);
  return pid > 0 ? pid : 0;
}

}  // namespace

std::optional<FileLock> FileLock::try_acquire(const std::filesystem::path& path, long& holder) {
  holder = 0;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(path.string() + ": cannot create the lock file (" + std::strerror(errno) + ")");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (err == EWOULDBLOCK) holder = read_pid(fd);
      ::close(fd);
      if (err == EWOULDBLOCK) return std::nullopt;
      throw Error(path.string() + ": cannot lock (" + std::strerror(err) + ")");
    }
    struct stat held {}, now {};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_dev == now.st_dev &&
        held.st_ino == now.st_ino) {
      const std::string pid = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        const int err = errno;
        ::close(fd);
        throw Error(path.string() + ": cannot write the lock file (" + std::strerror(err) + ")");
      }
      return FileLock(fd, path);
    }
    ::close(fd);  // the previous holder removed the file after we opened it: lock the new one
  }
  throw Error(path.string() + ": cannot lock (the lock file keeps being replaced)");
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

FileLock::~FileLock() { release(); }

void FileLock::release() noexcept {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still locked, so that no one locks the removed file's inode for good
  ::close(fd_);
  fd_ = -1;
}

}  // namespace mnist_gpu
