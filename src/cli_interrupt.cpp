// TrainPhase names, the MNIST_GPU_TEST_SIGNAL_AT hook and resume_command.
#include "mnist_gpu/cli_interrupt.hpp"

#include <csignal>
#include <cstdlib>
#include <vector>

#include "mnist_gpu/run_record.hpp"

namespace mnist_gpu {

const char* to_string(TrainPhase p) {
  switch (p) {
    case TrainPhase::load: return "load";
    case TrainPhase::train: return "train";
    case TrainPhase::validate: return "validate";
    case TrainPhase::test: return "test";
    case TrainPhase::save: return "save";
    case TrainPhase::report: return "report";
    case TrainPhase::metrics: return "metrics";
  }
  return "?";
}

const char* phase_doing(TrainPhase p) {
  switch (p) {
    case TrainPhase::load: return "while loading the data";
    case TrainPhase::train: return "during training";
    case TrainPhase::validate: return "during an epoch's validation";
    case TrainPhase::test: return "during the final test evaluation";
    case TrainPhase::save: return "while saving the model";
    case TrainPhase::report: return "while writing the report";
    case TrainPhase::metrics: return "while writing the metrics summary";
  }
  return "?";
}

void signal_self_if_asked(TrainPhase p) {
  const char* at = std::getenv("MNIST_GPU_TEST_SIGNAL_AT");
  if (!at || !*at) return;
  const std::string want = at, name = to_string(p);
  if (want == name) std::raise(SIGINT);
  if (want == name + ":SIGTERM") std::raise(SIGTERM);
}

std::string resume_command(const TrainConfig& cfg, const std::string& checkpoint) {
  std::vector<std::string> w = {"mnist_gpu", "train", "--resume", checkpoint};
  auto add = [&w](const char* flag, const std::string& value) {
    if (value.empty()) return;
    w.push_back(flag);
    w.push_back(value);
  };
  if (cfg.checkpoint_path != checkpoint) add("--checkpoint", cfg.checkpoint_path);
  add("--data", cfg.data_dir);
  add("--device", to_string(cfg.device));
  add("--metrics", cfg.metrics_path);
  add("--save", cfg.save_path);
  add("--report", cfg.report_path);
  const CudaConfig defaults;
  if (cfg.cuda.data != defaults.data) add("--data-path", to_string(cfg.cuda.data));
  if (cfg.cuda.graph != defaults.graph) add("--cuda-graph", cfg.cuda.graph ? "on" : "off");
  return shell_command(w);
}

}  // namespace mnist_gpu
