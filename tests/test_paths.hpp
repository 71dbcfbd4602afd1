// Where tests find the bundled data and the executable, and how they run it. Compiled-in paths of the source and build
// trees, overridable with $MNIST_GPU_TEST_DATA and $MNIST_GPU_TEST_EXE so that binaries built here
// run from another checkout (the GPU machine).
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>

namespace mnist_gpu::test {

inline std::string data_dir() {
  const char* env = std::getenv("MNIST_GPU_TEST_DATA");
  return env && *env ? env : MNIST_GPU_SOURCE_DIR "/data/mnist";
}

inline std::string exe() {
  const char* env = std::getenv("MNIST_GPU_TEST_EXE");
  return env && *env ? env : MNIST_GPU_EXE;
}

/// A fresh directory under the system temp dir, named after the running test, removed with
/// everything in it.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("mnist_gpu_" + std::string(info ? info->name() : "none") + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// The message of the exception `f` throws, or "(accepted)" when it throws none: a refusal's text
/// for the test to check.
inline std::string usage_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(accepted)";
}

/// Output (stdout and stderr together) and exit code of `mnist_gpu ARGS` (a shell command line).
struct RunResult {
  std::string out;
  int code = -1;  ///< the exit status, or -1 if the process did not exit normally
};

/// With `timeout_s` > 0 the run is killed after that many seconds (exit code 124 or 137), so that
/// a test of something that could hang (a FIFO) fails instead.
inline RunResult run_exe(const std::string& args, int timeout_s = 0) {
  RunResult r;
  const std::string limit = timeout_s > 0 ? "timeout -k 5 " + std::to_string(timeout_s) + " " : "";
  const std::string cmd = limit + "'" + exe() + "' " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) r.out += buf;
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/// Stdout and stderr apart, and the exit code, of `mnist_gpu ARGS` (a shell command line).
struct StreamsResult {
  int exit_code = -1;  ///< the exit status, or -1 if the process did not exit normally
  std::string out, err;
};

inline StreamsResult run_exe_streams(const std::string& args) {
  StreamsResult r;
  const std::filesystem::path err_file =
      std::filesystem::temp_directory_path() / ("mnist_gpu_stderr_" + std::to_string(::getpid()));
  const std::string cmd = "'" + exe() + "' " + args + " 2>'" + err_file.string() + "'";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    ADD_FAILURE() << "popen failed: " << cmd;
    return r;
  }
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  if (FILE* e = std::fopen(err_file.c_str(), "rb")) {
    while ((n = std::fread(buf, 1, sizeof buf, e)) > 0) r.err.append(buf, n);
    std::fclose(e);
  }
  std::error_code ec;
  std::filesystem::remove(err_file, ec);
  if (status == -1 || !WIFEXITED(status)) {
    ADD_FAILURE() << "did not exit normally: " << cmd;
    return r;
  }
  r.exit_code = WEXITSTATUS(status);
  return r;
}

}  // namespace mnist_gpu::test
