// verify_gpu() for builds without the CUDA backend.
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/verify.hpp"

namespace mnist_gpu {

VerifyReport verify_gpu(const ModelSpec&, const OptimizerConfig&, const Dataset&, int, std::uint64_t, int, GemmPath) {
  throw Error("no usable GPU: this build has no CUDA backend (configured without nvcc or with MNIST_GPU_CUDA=OFF)");
}

}  // namespace mnist_gpu
