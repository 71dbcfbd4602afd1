// The backend a configuration asks for: the one place that turns cfg.device into a CPU or CUDA
// backend (the CLI's commands and the sweep all come here). Library code: it reports what it chose
// for the caller to log, and prints nothing.
#pragma once
#include <memory>
#include <string>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/device.hpp"

namespace mnist_gpu {

struct BackendChoice {
  std::unique_ptr<Backend> backend;
  DeviceProbe probe;      ///< what the GPU probe found (not asked for with --device cpu)
  bool fell_back = false; ///< `auto` found no usable GPU and chose the CPU (probe.reason says why)
};

/// The backend for cfg.device with cfg's model, optimizer, batch, seed and CUDA settings: `auto`
/// is the GPU when one is usable, else the CPU (fell_back); `cuda` without a usable GPU throws
/// Error ("--device cuda: no usable GPU: <reason>").
BackendChoice make_backend(const TrainConfig& cfg);

}  // namespace mnist_gpu
