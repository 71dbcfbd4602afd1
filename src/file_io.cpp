// write_file_atomically (temp + fsync + rename) and read_whole_file.
#include "mnist_gpu/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "mnist_gpu/error.hpp"

namespace mnist_gpu {
namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

void write_file_atomically(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path.string() + ": cannot write (" + errno_text() + ")");
  std::size_t off = 0;
  std::string failure;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      failure = "write failed (" + errno_text() + ")";
      break;
    }
    off += static_cast<std::size_t>(n);
  }
  if (failure.empty() && ::fsync(fd) != 0) failure = "fsync failed (" + errno_text() + ")";
  if (::close(fd) != 0 && failure.empty()) failure = "close failed (" + errno_text() + ")";
  if (failure.empty() && ::rename(tmp.c_str(), path.c_str()) != 0) failure = "rename failed (" + errno_text() + ")";
  if (!failure.empty()) {
    ::unlink(tmp.c_str());
    throw Error(path.string() + ": " + failure + "; the previous file, if any, is unchanged");
  }
  // Make the rename itself durable.
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::vector<std::uint8_t> read_whole_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path.string() + ": cannot open (" + errno_text() + ")");
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size < 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
    ::close(fd);
    throw Error(path.string() + ": cannot read (not a regular file?)");
  }
  if (static_cast<std::uint64_t>(size) > max_bytes) {
    ::close(fd);
    throw Error(path.string() + ": " + std::to_string(size) + " bytes is larger than the " + std::to_string(max_bytes) +
                " bytes such a file can be");
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw Error(path.string() + ": read failed (" + (n < 0 ? errno_text() : std::string("file shrank")) + ")");
    }
    off += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return bytes;
}

void check_file_writable(const std::filesystem::path& path, const std::string& purpose) {
  const std::string probe = path.string() + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path.string() + ": cannot " + purpose + " here (" + errno_text() + ")");
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace mnist_gpu
