// Where tests find the bundled data and the executable, and how they run it. Compiled-in paths of the source and build
// trees, overridable with $MNIST_GPU_TEST_DATA and $MNIST_GPU_TEST_EXE so that binaries built here
// run from another checkout (the GPU machine).
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace mnist_gpu::test {

inline std::string data_dir() {
  const char* env = std::getenv("MNIST_GPU_TEST_DATA");
  return env && *env ? env : MNIST_GPU_SOURCE_DIR "/data/mnist";
}

inline std::string exe() {
  const char* env = std::getenv("MNIST_GPU_TEST_EXE");
  return env && *env ? env : MNIST_GPU_EXE;
}

/// Output (stdout and stderr together) and exit code of `mnist_gpu ARGS` (a shell command line).
struct RunResult {
  std::string out;
  int code = -1;  ///< the exit status, or -1 if the process did not exit normally
};

inline RunResult run_exe(const std::string& args) {
  RunResult r;
  const std::string cmd = "'" + exe() + "' " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) r.out += buf;
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace mnist_gpu::test
