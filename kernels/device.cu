// probe_device(): the CUDA runtime's view of one device, turned into a usable/reason pair.
#include <cuda_runtime.h>

#include <string>

#include "mnist_gpu/device.hpp"

namespace mnist_gpu {

DeviceProbe probe_device(int index) {
  DeviceProbe p;
  p.built_with_cuda = true;
  // With no driver, cudaGetDeviceCount returns cudaErrorInsufficientDriver and leaves the count
  // unwritten: start from 0 and treat every error as "no usable GPU".
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    switch (err) {
      case cudaErrorInsufficientDriver:
        p.reason = "no NVIDIA driver, or one too old for this CUDA runtime (" +
                   std::string(cudaGetErrorString(err)) + ")";
        break;
      case cudaErrorNoDevice: p.reason = "no CUDA device found"; break;
      default: p.reason = std::string("CUDA runtime error: ") + cudaGetErrorString(err); break;
    }
    cudaGetLastError();  // clear the error so it does not surface at an unrelated call
    return p;
  }
  if (count <= 0) {
    p.reason = "no CUDA device found";
    return p;
  }
  if (index < 0 || index >= count) {
    p.reason = "device " + std::to_string(index) + " asked for; " + std::to_string(count) + " visible (0 to " +
               std::to_string(count - 1) + ")";
    return p;
  }
  cudaDeviceProp prop{};
  const cudaError_t perr = cudaGetDeviceProperties(&prop, index);
  if (perr != cudaSuccess) {
    p.reason = "cannot query device " + std::to_string(index) + ": " + cudaGetErrorString(perr);
    cudaGetLastError();
    return p;
  }
  p.name = prop.name;
  p.compute_major = prop.major;
  p.compute_minor = prop.minor;
  p.total_bytes = prop.totalGlobalMem;
  if (prop.major < 7 || (prop.major == 7 && prop.minor < 5)) {
    p.reason = "device " + std::to_string(index) + " (" + p.name + ") has compute capability " + std::to_string(prop.major) +
               "." + std::to_string(prop.minor) + "; this build needs 7.5 or newer";
    return p;
  }
  p.usable = true;
  return p;
}

}  // namespace mnist_gpu
