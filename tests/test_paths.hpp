// Where tests find the bundled data and the executable. Compiled-in paths of the source and build
// trees, overridable with $MNIST_GPU_TEST_DATA and $MNIST_GPU_TEST_EXE so that binaries built here
// run from another checkout (the GPU machine).
#pragma once
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

}  // namespace mnist_gpu::test
