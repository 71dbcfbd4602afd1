// make_cuda_backend() for builds without the CUDA backend.
#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu {

std::unique_ptr<Backend> make_cuda_backend(const ModelSpec&, const OptimizerConfig&, int, std::uint64_t,
                                           const CudaConfig&, const AugmentConfig&) {
  throw Error("this build has no CUDA backend (configured without nvcc or with MNIST_GPU_CUDA=OFF)");
}

}  // namespace mnist_gpu
