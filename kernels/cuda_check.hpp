// Checks for every CUDA runtime and cuBLAS call and every kernel launch: a failure throws
// mnist_gpu::Error naming the expression, file, line and CUDA's own description.
// Host-only header (no device code): it compiles with g++ as well as nvcc.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace mnist_gpu::gpu {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line);
/// cudaMalloc/cudaMallocHost failed: says how many bytes were asked and how many are free.
[[noreturn]] void throw_alloc_error(cudaError_t err, std::size_t bytes, bool pinned, const char* file, int line);

}  // namespace mnist_gpu::gpu

#define CUDA_CHECK(expr)                                                                  \
  do {                                                                                    \
    const cudaError_t mnist_gpu_err_ = (expr);                                            \
    if (mnist_gpu_err_ != cudaSuccess)                                                    \
      ::mnist_gpu::gpu::throw_cuda_error(mnist_gpu_err_, #expr, __FILE__, __LINE__);      \
  } while (0)

#define CUBLAS_CHECK(expr)                                                                \
  do {                                                                                    \
    const cublasStatus_t mnist_gpu_st_ = (expr);                                          \
    if (mnist_gpu_st_ != CUBLAS_STATUS_SUCCESS)                                           \
      ::mnist_gpu::gpu::throw_cublas_error(mnist_gpu_st_, #expr, __FILE__, __LINE__);     \
  } while (0)

/// After every <<<...>>>: a bad configuration surfaces here, not at an unrelated later call.
/// cudaGetLastError also clears a non-sticky error, so that one reported here is not reported
/// again by the next launch.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
