// make_backend (backend_factory.hpp).
#include "mnist_gpu/backend_factory.hpp"

#include <string>

#include "mnist_gpu/error.hpp"

namespace mnist_gpu {

BackendChoice make_backend(const TrainConfig& cfg) {
  BackendChoice c;
  if (cfg.device != DeviceChoice::cpu) {
    c.probe = probe_device(cfg.cuda.device);
    if (c.probe.usable) {
      c.backend = make_cuda_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed, cfg.cuda, cfg.augment);
      return c;
    }
    if (cfg.device == DeviceChoice::cuda)
      throw Error("--device cuda" + (cfg.cuda.device > 0 ? ":" + std::to_string(cfg.cuda.device) : std::string()) +
                  ": no usable GPU: " + c.probe.reason);
    c.fell_back = true;
  }
  c.backend = make_cpu_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed, cfg.augment);
  return c;
}

}  // namespace mnist_gpu
