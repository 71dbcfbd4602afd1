// The error paths of CUDA_CHECK and CUBLAS_CHECK.
#include <string>

#include "cuda_check.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  // A sticky error (e.g. an illegal address) poisons the context: say so, so that the caller
  // stops instead of producing a stream of follow-on errors.
  cudaGetLastError();
  std::string msg = std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
                    ") in " + expr + " at " + file + ":" + std::to_string(line);
  if (err == cudaErrorIllegalAddress || err == cudaErrorLaunchFailure || err == cudaErrorAssert ||
      err == cudaErrorHardwareStackError || err == cudaErrorIllegalInstruction)
    msg += "; the GPU context is unusable after this error";
  throw Error(msg);
}

void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line) {
  throw Error(std::string("cuBLAS error ") + cublasGetStatusName(status) + " (" +
              cublasGetStatusString(status) + ") in " + expr + " at " + file + ":" + std::to_string(line));
}

void throw_alloc_error(cudaError_t err, std::size_t bytes, bool pinned, const char* file, int line) {
  cudaGetLastError();
  std::size_t free_b = 0, total_b = 0;
  std::string where = pinned ? "pinned host memory" : "GPU memory";
  std::string msg = "out of " + where + ": asked for " + std::to_string(bytes) + " bytes";
  if (!pinned && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
    msg += ", " + std::to_string(free_b) + " of " + std::to_string(total_b) + " bytes free";
  msg += std::string(" (") + cudaGetErrorString(err) + ", at " + file + ":" + std::to_string(line) +
         "); try a smaller --batch or --hidden";
  cudaGetLastError();
  throw Error(msg);
}

}  // namespace mnist_gpu::gpu
