// Whether a usable CUDA GPU is present, and if not, why. Works in every build: without the CUDA
// backend compiled in, the answer is "built without CUDA".
#pragma once
#include <string>

namespace mnist_gpu {

struct DeviceProbe {
  bool usable = false;  ///< a GPU this build can run on
  std::string reason;   ///< why not (no driver, driver too old, no device, built without CUDA)
  std::string name;     ///< the GPU's name when usable, e.g. "NVIDIA H200"
  int compute_major = 0, compute_minor = 0;
  std::size_t total_bytes = 0;
  bool built_with_cuda = false;
};

/// Asks the CUDA runtime for device `index` (0-based among the visible ones); never throws.
/// `reason` is set when `usable` is false.
DeviceProbe probe_device(int index = 0);

}  // namespace mnist_gpu
