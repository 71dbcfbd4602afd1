// measure_gpu_gemm_gflops() for builds without the CUDA backend.
#include "mnist_gpu/bench.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu {

double measure_gpu_gemm_gflops(int, Precision) {
  throw Error("no usable GPU: this build has no CUDA backend (configured without nvcc or with MNIST_GPU_CUDA=OFF)");
}

}  // namespace mnist_gpu
