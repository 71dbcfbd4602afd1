// What `train` does about SIGINT and SIGTERM outside the training steps: the phases a run goes
// through (each checks for a signal when it ends), the hidden test hook that signals at a phase,
// and the command that resumes an interrupted run exactly as it was.
#pragma once
#include <string>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

enum class TrainPhase { load, train, validate, test, save, report, metrics };

/// "load", "train", "validate", "test", "save", "report", "metrics": the names the test hook takes.
const char* to_string(TrainPhase p);

/// What the phase does, for "interrupted: <it>": "while loading the data", ...
const char* phase_doing(TrainPhase p);

/// Test hook, inert unless the environment variable MNIST_GPU_TEST_SIGNAL_AT is set: when it
/// names `p` (e.g. "report"), the process raises SIGINT on itself as it enters that phase; with
/// ":SIGTERM" after the name ("save:SIGTERM") it raises SIGTERM. Lets tests interrupt each phase
/// at a deterministic point instead of racing a kill against the clock.
void signal_self_if_asked(TrainPhase p);

/// The command that continues the run of `cfg` from `checkpoint` with the same outputs and
/// run flags: --resume CHECKPOINT, then --checkpoint (when another file), --data, --device,
/// --metrics, --save, --report, --data-path and --cuda-graph (when not the defaults), each
/// shell-quoted. The settings that shape the result come from the checkpoint.
std::string resume_command(const TrainConfig& cfg, const std::string& checkpoint);

}  // namespace mnist_gpu
