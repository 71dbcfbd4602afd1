// probe_device() for builds without the CUDA backend (MNIST_GPU_CUDA=OFF or no nvcc).
#include "mnist_gpu/device.hpp"

namespace mnist_gpu {

DeviceProbe probe_device(int) {
  DeviceProbe p;
  p.reason = "this build has no CUDA backend (configured without nvcc or with MNIST_GPU_CUDA=OFF)";
  return p;
}

}  // namespace mnist_gpu
