// Sweeps: a grid over architectures, activations, losses and batch sizes trained with the same
// seed and budget, compared in one table (Markdown and CSV) and one report page. The command is
// in src/cli_sweep.cpp; this is the grid and the table, free of I/O.
#pragma once
#include <string>
#include <vector>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/train.hpp"

namespace mnist_gpu {

/// One cell of the grid.
struct SweepPoint {
  std::vector<int> hidden;
  Activation activation = Activation::relu;
  Loss loss = Loss::xent;
  int batch = 128;
  /// e.g. "512-256 relu xent b32" ("none" for no hidden layer): unique within a grid.
  std::string label() const;
};

/// The axes; points() is their product in this order: hidden (outermost), activation, loss,
/// batch (innermost), each in the order given.
struct SweepGrid {
  std::vector<std::vector<int>> hidden;
  std::vector<Activation> activations;
  std::vector<Loss> losses;
  std::vector<int> batches;
  std::vector<SweepPoint> points() const;
};

/// One finished run.
struct SweepRow {
  SweepPoint point;
  std::vector<EpochMetrics> epochs;
  double test_acc = 0, test_loss = 0;
  double best_val_acc = 0;  ///< the highest validation accuracy of any epoch (NaN without --val)
  int best_val_epoch = 0;   ///< its epoch (the first, on ties; 0 without --val)
  double train_s = 0;       ///< training time (evaluation excluded)
  double samples_per_s = 0; ///< training samples / train_s
  bool stopped_early = false;
};

/// The row of a finished run of `point`.
SweepRow make_sweep_row(const SweepPoint& point, const TrainResult& result);

/// The comparison table as GitHub Markdown: one row per run in grid order, the best test
/// accuracy in bold.
std::string sweep_markdown(const std::vector<SweepRow>& rows);

/// The same table as CSV (RFC 4180; a header line, then one line per run; full precision).
std::string sweep_csv(const std::vector<SweepRow>& rows);

}  // namespace mnist_gpu
