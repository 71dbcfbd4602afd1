// The log lines the commands share (cli.hpp): the backend chosen (make_backend) and the notes of
// loading a data directory.
#include <spdlog/spdlog.h>

#include "mnist_gpu/backend_factory.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/dataset.hpp"

namespace mnist_gpu {

std::unique_ptr<Backend> choose_backend(const TrainConfig& cfg, const char* work) {
  BackendChoice c = make_backend(cfg);
  if (c.fell_back) spdlog::info("notice: no usable GPU ({}); {} on the CPU", c.probe.reason, work);
  else if (c.probe.usable)
    spdlog::info("device: {} (compute capability {}.{}, {:.1f} GiB)", c.probe.name, c.probe.compute_major,
                 c.probe.compute_minor, static_cast<double>(c.probe.total_bytes) / (1024.0 * 1024.0 * 1024.0));
  return std::move(c.backend);
}

void log_data_notes(const MnistFiles& files) {
  for (const auto& s : files.shadowed)
    spdlog::info("notice: {} holds both {} and {}; reading {}", s.used.parent_path().string(),
                 s.used.filename().string(), s.ignored.filename().string(), s.used.filename().string());
  for (const auto& w : files.warnings) spdlog::warn("warning: {}", w);
}

}  // namespace mnist_gpu
