// `mnist_gpu sweep`: trains a grid of models with the same seed and budget and compares them.
#pragma once
#include <string>
#include <vector>

#include "mnist_gpu/cli.hpp"

namespace CLI {
class App;
}

namespace mnist_gpu {

/// The `sweep` flags as typed: the grid's axes, and the train flags every run shares.
struct SweepArgs {
  TrainArgs base;                              ///< everything but the four axes
  std::vector<std::string> hidden{"512,256"};  ///< --hidden, repeatable: one architecture each
  std::string activations = "relu", losses = "xent", batches = "128";  ///< comma-separated
  std::string out = "sweep";                   ///< the output folder
  bool resume = false;                         ///< continue the sweep in --out
  std::string command_line;                    ///< the whole command, shell-quoted, for the report page
};

void add_sweep_options(CLI::App& app, SweepArgs& args);

/// Runs the sweep: after every run, OUT/results.md, OUT/results.csv, OUT/report.html and
/// OUT/sweep.json (the rows with their curves, for --resume) are rewritten atomically, so an
/// interrupted sweep keeps the rows already done. SIGINT/SIGTERM abandon the current run and
/// return 130/143. Returns the exit code; throws UsageError / Error like the other commands.
int run_sweep_command(const SweepArgs& args);

}  // namespace mnist_gpu
