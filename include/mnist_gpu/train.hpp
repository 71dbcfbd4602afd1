// The training loop over a backend: seeded epoch orders, per-epoch metrics, final test report.
#pragma once
#include <cstdint>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/dataset.hpp"

namespace mnist_gpu {

/// The order of epoch `epoch` (1-based) over n training rows: a fresh Fisher-Yates permutation
/// drawn from (seed, epoch) alone, the same for every backend and after a resume.
std::vector<std::uint32_t> epoch_order(std::uint64_t seed, int epoch, int n);

/// The learning rate of epoch `epoch` (1-based) of `epochs` under cfg's schedule: cosine uses
/// the rate at the epoch's midpoint, lr * 0.5 * (1 + cos(pi * (epoch - 0.5) / epochs)).
float epoch_lr(const TrainConfig& cfg, int epoch);

struct EpochMetrics {
  int epoch = 0;
  double train_loss = 0, train_acc = 0;  ///< over the epoch's batches as they were trained
  double val_loss = 0, val_acc = 0;      ///< NaN when there is no validation set
  double lr = 0;
  double epoch_s = 0;        ///< training time of the epoch (evaluation excluded)
  double samples_per_s = 0;  ///< training samples / epoch_s
};

/// Where a run stands: the epochs completed (their metrics) and, when it stopped inside an epoch,
/// the partial sums of that epoch (its next batch is partial.batches). With the seed and the
/// backend's TrainState this is all a resume needs: every epoch's order derives from (seed, epoch).
struct TrainProgress {
  std::vector<EpochMetrics> done;
  EpochSums partial;      ///< sums of the unfinished epoch done.size() + 1 (batches 0 when none)
  double partial_s = 0;   ///< training seconds spent in it so far
};

struct TrainResult {
  std::vector<EpochMetrics> epochs;
  EvalResult test;        ///< valid only when !stopped
  double train_s = 0;     ///< sum of epoch_s
  bool stopped = false;   ///< the stop flag ended the run early (after a whole step)
  TrainProgress progress; ///< where it stands (for a checkpoint)
};

/// Receives progress from train(); the CLI logs it, tests may record it. Never called from a
/// hot loop more often than once per batch.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_batch(int /*epoch*/, long long /*done*/, long long /*total*/) {}
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
/// test at the end.
TrainResult train(const TrainConfig& cfg, const TrainData& data, Backend& backend,
                  TrainObserver& observer, const TrainOptions& options = {});

}  // namespace mnist_gpu
