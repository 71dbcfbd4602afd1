// A per-process temporary file for harnesses whose target takes a path: write(bytes) replaces its
// contents (abort on I/O failure, which is the harness's fault, not a finding); removed at exit.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace mnist_gpu_fuzz {

class ScratchFile {
 public:
  explicit ScratchFile(const std::string& stem)
      : path_(std::filesystem::temp_directory_path() / (stem + "_" + std::to_string(::getpid()))) {}
  ~ScratchFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::filesystem::path& write(const std::uint8_t* data, std::size_t size) const {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    if (std::fclose(f) != 0) std::abort();
    return path_;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace mnist_gpu_fuzz
