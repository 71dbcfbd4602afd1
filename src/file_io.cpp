// write_file_atomically (temp + fsync + rename), read_whole_file and the checks they share: only
// regular files are read or replaced, and a symbolic link is followed to the file it names.
#include "mnist_gpu/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/stop_signal.hpp"

namespace mnist_gpu {
namespace {

namespace fs = std::filesystem;

std::string errno_text() { return std::strerror(errno); }

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

Error not_regular_input(const fs::path& path, mode_t mode, const std::string& what) {
  return Error(path.string() + ": not a regular file (it is " + kind_of(mode) + ", expected " + what + ")");
}

// Closes a file descriptor on every path out of a function.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

// Opens a regular file for reading. stat comes first so that a FIFO is refused without opening
// it (open would block until a writer came); O_NONBLOCK covers a file swapped in between.
int open_regular(const fs::path& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path.string() + ": cannot open (" + errno_text() + ")");
  if (!S_ISREG(st.st_mode)) throw not_regular_input(path, st.st_mode, what);
  Fd f{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
  if (f.fd < 0) throw Error(path.string() + ": cannot open (" + errno_text() + ")");
  if (::fstat(f.fd, &st) != 0) throw Error(path.string() + ": cannot stat (" + errno_text() + ")");
  if (!S_ISREG(st.st_mode)) throw not_regular_input(path, st.st_mode, what);
  const int flags = ::fcntl(f.fd, F_GETFL);
  if (flags < 0 || ::fcntl(f.fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
    throw Error(path.string() + ": cannot read (" + errno_text() + ")");
  return f.release();
}

// The file a write to `path` replaces, refused when it exists and is not a regular file.
fs::path checked_output(const fs::path& path, const std::string& purpose) {
  const fs::path target = output_target(path);
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(path.string() + ": not a regular file (it is " + kind_of(st.st_mode) + "); cannot " + purpose +
                " there: only a regular file is replaced");
  return target;
}

std::string temp_name(const fs::path& target) { return target.string() + ".tmp." + std::to_string(::getpid()); }

}  // namespace

fs::path output_target(const fs::path& path) {
  fs::path p = path;
  for (int hops = 0; hops < 40; ++hops) {  // 40: Linux's own limit on links followed in one lookup
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    std::error_code ec;
    const fs::path to = fs::read_symlink(p, ec);
    if (ec) throw Error(path.string() + ": cannot read the symbolic link (" + ec.message() + ")");
    p = to.is_absolute() ? to : p.parent_path() / to;
  }
  throw Error(path.string() + ": too many levels of symbolic links");
}

void write_file_atomically(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  const fs::path target = checked_output(path, "write");
  const std::string tmp = temp_name(target);
  const TempFileGuard guard(tmp);  // a second Ctrl-C from here on removes tmp before ending the process
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
  if (failure.empty() && ::rename(tmp.c_str(), target.c_str()) != 0) failure = "rename failed (" + errno_text() + ")";
  if (!failure.empty()) {
    ::unlink(tmp.c_str());
    throw Error(path.string() + ": " + failure + "; the previous file, if any, is unchanged");
  }
  // Make the rename itself durable.
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::vector<std::uint8_t> read_whole_file(const fs::path& path, std::uint64_t max_bytes, const std::string& what) {
  Fd f{open_regular(path, what)};
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw Error(path.string() + ": cannot stat (" + errno_text() + ")");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes)
    throw Error(path.string() + ": " + std::to_string(size) + " bytes is larger than the " + std::to_string(max_bytes) +
                " bytes such a file can be");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::read(f.fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw Error(path.string() + ": read failed (" + (n < 0 ? errno_text() : std::string("file shrank")) + ")");
    off += static_cast<std::size_t>(n);
  }
  return bytes;
}

InputFile open_input_file(const fs::path& path, const std::string& what) {
  Fd f{open_regular(path, what)};
  InputFile file(::fdopen(f.fd, "rb"));
  if (!file) throw Error(path.string() + ": cannot open (" + errno_text() + ")");
  f.release();
  return file;
}

void check_file_writable(const fs::path& path, const std::string& purpose) {
  const std::string probe = temp_name(checked_output(path, purpose));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path.string() + ": cannot " + purpose + " here (" + errno_text() + ")");
  ::close(fd);
  ::unlink(probe.c_str());
}

MadeDirs::MadeDirs(const fs::path& dir, const std::string& what) {
  std::error_code ec;
  fs::path p = dir.lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();  // "a/b/" -> "a/b"
  for (; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    made_.push_back(p);
    if (p == p.parent_path()) break;
  }
  fs::create_directories(dir, ec);
  if (ec) {
    const std::string reason = ec.message();
    std::vector<fs::path> none;
    std::swap(made_, none);
    for (const fs::path& q : none) fs::remove(q, ec);  // those made before the failure, if empty
    throw Error(dir.string() + ": cannot create " + what + " (" + reason + ")");
  }
}

MadeDirs::~MadeDirs() {
  std::error_code ec;
  for (const fs::path& p : made_)
    if (fs::is_directory(p, ec) && fs::is_empty(p, ec)) fs::remove(p, ec);
}

void check_distinct_paths(const std::vector<std::pair<std::string, fs::path>>& paths) {
  // Compared as absolute paths with links and `..` resolved, and by inode when both exist.
  auto same = [](const fs::path& a, const fs::path& b) {
    std::error_code ea, eb;
    const fs::path ca = fs::weakly_canonical(fs::absolute(output_target(a), ea), ea);
    const fs::path cb = fs::weakly_canonical(fs::absolute(output_target(b), eb), eb);
    if (!ea && !eb && ca == cb) return true;
    struct stat sa {}, sb {};
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
  };
  for (std::size_t i = 0; i < paths.size(); ++i)
    for (std::size_t j = 0; j < i; ++j) {
      const auto& [flag_a, a] = paths[j];
      const auto& [flag_b, b] = paths[i];
      if (a.empty() || b.empty() || !same(a, b)) continue;
      throw UsageError(flag_a + " and " + flag_b + " both name '" + b.string() +
                       "'; each output needs its own file");
    }
}

}  // namespace mnist_gpu
