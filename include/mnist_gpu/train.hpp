// The training loop over a backend: seeded epoch orders, per-epoch metrics, final test report.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/dataset.hpp"

namespace mnist_gpu {

/// The order of epoch `epoch` (1-based) over n training rows: a fresh Fisher-Yates permutation
/// drawn from (seed, epoch) alone, the same for every backend and after a resume.
std::vector<std::uint32_t> epoch_order(std::uint64_t seed, int epoch, int n);

/// The learning rate of epoch `epoch` (1-based) of `epochs` under cfg's schedule alone: cosine
/// uses the rate at the epoch's midpoint, lr * 0.5 * (1 + cos(pi * (epoch - 0.5) / epochs));
/// step: lr * lr_factor^floor((epoch - 1) / lr_step); exp: lr * lr_factor^(epoch - 1).
float epoch_lr(const TrainConfig& cfg, int epoch);

/// The epoch's batch loop, the one in the program: begin_epoch, then one backend step per batch
/// of BatchPlan(order, backend.batch()) from ctl.first_batch on (progress after each), then
/// end_epoch. Stops after a whole step when *ctl.stop becomes true (the sums say stopped).
EpochSums run_epoch(Backend& backend, const Dataset& data, const std::vector<std::uint32_t>& order, float lr,
                    const EpochControl& ctl = {});

struct EpochMetrics {
  int epoch = 0;
  double train_loss = 0, train_acc = 0;  ///< over the epoch's batches as they were trained
  double val_loss = 0, val_acc = 0;      ///< NaN when there is no validation set
  double lr = 0;
  double epoch_s = 0;        ///< training time of the epoch (evaluation excluded)
  double samples_per_s = 0;  ///< training samples / epoch_s
  double test_acc = std::numeric_limits<double>::quiet_NaN();  ///< only with cfg.target > 0
};

/// What the validation losses of the epochs done so far decide, replayed from them alone (so a
/// resumed run decides as the uninterrupted one did). An epoch "improves" when its validation
/// loss is below best * (1 - min_delta): relative, as PyTorch's ReduceLROnPlateau's default.
struct ValidationState {
  int best_epoch = 0;        ///< 0: none yet (or no validation set)
  double best_loss = 0;      ///< the best epoch's validation loss
  int since_best = 0;        ///< epochs since the best one (early stopping's count)
  int since_cut = 0;         ///< epochs without improvement since the best one or the last cut
  double lr_scale = 1;       ///< product of the plateau cuts so far
  int cuts = 0;              ///< plateau cuts so far
  bool stop = false;         ///< early stopping: since_best reached cfg.patience
};
ValidationState replay_validation(const TrainConfig& cfg, const std::vector<EpochMetrics>& done);

/// The rate epoch `epoch` trains at after the epochs `done`: the schedule's rate times the
/// plateau cuts, never below cfg.min_lr when a cut applied (the schedule alone may go lower).
float next_epoch_lr(const TrainConfig& cfg, int epoch, const std::vector<EpochMetrics>& done);

/// Where a run stands: the epochs completed (their metrics) and, when it stopped inside an epoch,
/// the partial sums of that epoch (its next batch is partial.batches). With the seed and the
/// backend's TrainState this is all a resume needs: every epoch's order derives from (seed, epoch).
struct TrainProgress {
  std::vector<EpochMetrics> done;
  EpochSums partial;      ///< sums of the unfinished epoch done.size() + 1 (batches 0 when none)
  double partial_s = 0;   ///< training seconds spent in it so far
  /// Early stopping: the parameters after the best epoch so far (empty when off or none yet).
  std::vector<float> best_params;
};

struct TrainResult {
  std::vector<EpochMetrics> epochs;
  EvalResult test;        ///< valid only when !stopped
  double train_s = 0;     ///< sum of epoch_s
  /// The stop flag ended the run early: after a whole step, or (partial.batches 0) after a whole
  /// epoch, its validation and checkpoint included, when it came during them.
  bool stopped = false;
  bool stopped_early = false;  ///< early stopping ended the run before cfg.epochs
  /// cfg.time_limit_s of training passed: the run ended after epochs.size() of cfg.epochs, tested.
  bool time_limited = false;
  int best_epoch = 0;     ///< the best validation epoch (0: no validation set)
  bool restored_best = false;  ///< the test ran on the best epoch's weights (early stopping on)
  /// cfg.target > 0: training seconds until the test accuracy first reached it; NaN if never.
  double train_s_to_target = std::numeric_limits<double>::quiet_NaN();
  TrainProgress progress; ///< where it stands (for a checkpoint)
};

/// Asks the backend for the epoch's running sums (Backend::running_sums): cheap, never waits.
using RunningSumsFn = std::function<bool(EpochSums&)>;

/// What an evaluation inside train() is for.
enum class EvalKind {
  validation,  ///< after each epoch, on the validation set
  target,      ///< after each epoch with cfg.target > 0, on the test set (time to accuracy)
  test,        ///< the final test, after the last epoch
};

/// Receives progress from train(); the CLI logs it, tests may record it. Never called from a
/// hot loop more often than once per batch.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  /// After each step: `done` of `total` batches of `epoch`; `running` gives the loss and accuracy
  /// so far when a progress line wants them.
  virtual void on_batch(int /*epoch*/, long long /*done*/, long long /*total*/, const RunningSumsFn& /*running*/) {}
  /// Evaluation progress: first (0, total) as it starts, then (rows done, total) as the backend
  /// reports it (Backend::evaluate). `epoch` is the epoch just trained (the final test: the last).
  virtual void on_eval(EvalKind /*what*/, int /*epoch*/, long long /*done*/, long long /*total*/) {}
  virtual void on_epoch(const EpochMetrics& /*m*/) {}
  /// After each completed epoch, with everything done so far (the CLI writes a checkpoint).
  virtual void on_progress(const TrainProgress& /*p*/) {}
};

/// Optional controls: resume from a checkpoint's progress, stop when *stop becomes true.
struct TrainOptions {
  TrainProgress resume;
  const std::atomic<bool>* stop = nullptr;
};

struct TrainData {
  const Dataset& train;
  const Dataset& val;   ///< may be empty (count 0)
  const Dataset& test;
};

/// Trains for cfg.epochs epochs of cfg.seed's orders, evaluating on val after each epoch and on
/// test at the end. With cfg.patience > 0 it stops after that many epochs without improvement
/// and (whether it stopped early or not) restores the best epoch's parameters before the test;
/// with cfg.lr_patience > 0 it cuts the rate on plateaus (ValidationState).
TrainResult train(const TrainConfig& cfg, const TrainData& data, Backend& backend,
                  TrainObserver& observer, const TrainOptions& options = {});

}  // namespace mnist_gpu
