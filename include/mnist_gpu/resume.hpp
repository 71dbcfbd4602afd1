// Starting a run from saved state: a checkpoint (--resume, possibly continued for more epochs) or
// a saved model's parameters (--init-from).
#pragma once
#include <set>
#include <string>
#include <vector>

#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

/// What a resumed run trains with.
struct ResumePlan {
  TrainConfig cfg;          ///< the checkpoint's settings, the flags' runtime and output settings
  int checkpoint_epochs = 0;  ///< the epochs the checkpoint was configured for
  /// "" when --epochs is unchanged; else e.g. "resuming at epoch 4 of 6 (was 3): the cosine
  /// schedule is recomputed for 6 epochs".
  std::string continuation;
  std::vector<std::string> warnings;  ///< given flags that do nothing (check_inert_settings)
};

/// The settings of `train --resume` from `ck`: result settings given in `flags` must agree with the
/// checkpoint's (UsageError naming the first that differs), except --epochs, which may be larger
/// than the epochs done (the schedule is then recomputed for the new total) but not smaller
/// (UsageError). New checkpoints go to --checkpoint, else to the resumed file.
ResumePlan plan_resume(const TrainConfig& flags, const std::set<std::string>& given, const Checkpoint& ck);

/// The parameters of the saved model at `path` for a run of `spec`: UsageError naming the first
/// difference of architecture (inputs, outputs, hidden widths, activation, loss) and the flag that
/// would match it; Error when the file cannot be read.
std::vector<float> init_params_from(const std::string& path, const ModelSpec& spec);

}  // namespace mnist_gpu
