// kernels/cublas_lazy.cpp: cuBLAS and cuBLASLt are loaded on first use, not at process start.
// Needs no GPU (loading the libraries and their version queries do not touch a device), so these
// run, and can fail, on every machine with the CUDA build.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "test_paths.hpp"

namespace {

std::string command_output(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  return out;
}

bool mapped(const std::string& library) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find(library) != std::string::npos) return true;
  return false;
}

}  // namespace

// The executable starts without them: the dynamic loader's file log of `mnist_gpu --version`
// (LD_DEBUG=files) names libcudart but neither cuBLAS library.
TEST(CublasLazy, TheExecutableStartsWithoutLoadingCublas) {
  const std::string log =
      command_output("LD_DEBUG=files '" + mnist_gpu::test::exe() + "' --version 2>&1 >/dev/null");
  ASSERT_NE(log.find("libcudart"), std::string::npos) << "LD_DEBUG gave no file log:\n" << log.substr(0, 2000);
  EXPECT_EQ(log.find("libcublas"), std::string::npos) << log.substr(0, 4000);
}

// The first call loads the library and forwards to the real function.
TEST(CublasLazy, TheFirstCallLoadsTheLibraryAndForwards) {
  const std::size_t version = cublasLtGetVersion();
  EXPECT_GE(version, static_cast<std::size_t>(CUBLAS_VER_MAJOR) * 10000) << version;
  EXPECT_TRUE(mapped("libcublasLt.so")) << "cublasLtGetVersion answered without loading libcublasLt";
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_SUCCESS), "CUBLAS_STATUS_SUCCESS");
  EXPECT_TRUE(mapped("libcublas.so")) << "cublasGetStatusName answered without loading libcublas";
  // A handle argument cuBLAS refuses is refused by cuBLAS itself, through the forwarder.
  EXPECT_EQ(cublasLtCreate(nullptr), CUBLAS_STATUS_INVALID_VALUE);
}
