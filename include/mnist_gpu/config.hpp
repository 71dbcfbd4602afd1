// Typed configuration: everything past the command-line boundary is an enum or a number.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mnist_gpu {

/// Hidden-layer activation. `identity` is internal (the output layer), never a user choice.
enum class Activation { relu, sigmoid, tanh, gelu, identity };
enum class Loss { xent, l2 };
enum class OptimizerKind { sgd, momentum, adam };
enum class DeviceChoice { automatic, cpu, cuda };
/// How the CUDA backend feeds training batches. streamed: the host gathers each shuffled batch into
/// a pinned staging slot and a copy stream moves it to the device while the previous batch trains;
/// resident: the training set is copied to the device once and each batch is gathered there.
enum class DataPath { streamed, resident };
/// Learning-rate schedule over epochs: constant; cosine from lr down to 0 at the last epoch's end;
/// step: lr multiplied by TrainConfig::lr_factor every TrainConfig::lr_step epochs.
enum class Schedule { constant, cosine, step };

const char* to_string(Activation a);
const char* to_string(Loss l);
const char* to_string(OptimizerKind o);
const char* to_string(DeviceChoice d);
const char* to_string(Schedule s);
const char* to_string(DataPath d);

/// MNIST's classes (the digits 0-9): the outputs of every model the backends train.
inline constexpr int kClasses = 10;

/// Limits of a model's shape, one place for the command line, the saved-model format and checkpoints.
inline constexpr int kMaxLayerWidth = 65536;  ///< inputs, outputs and each hidden width
inline constexpr int kMaxHiddenLayers = 63;   ///< hidden layers: at most 64 dense layers

/// Shape of the multilayer perceptron: inputs -> hidden... -> outputs.
struct ModelSpec {
  int inputs = 784;
  std::vector<int> hidden{512, 256};  ///< empty: softmax regression
  int outputs = kClasses;
  Activation activation = Activation::relu;
  Loss loss = Loss::xent;
  /// All layer widths, inputs first and outputs last.
  std::vector<int> widths() const;
};

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::adam;
  float lr = 0.002f;
  float momentum = 0.9f;  ///< momentum only
  bool nesterov = false;  ///< momentum only
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  ///< adam only
  float l2 = 0.0f;        ///< L2 regularisation (weight decay on weights, not biases)
  float dropout = 0.0f;   ///< probability of dropping each hidden unit in training, [0, 1)
};

/// Settings of the CUDA backend only (the CPU backend has no use for them); neither changes a
/// result, only the speed.
struct CudaConfig {
  DataPath data = DataPath::streamed;
  /// Capture the training step (input, forward, backward, update) in a CUDA graph and replay it
  /// for every full batch: one launch per step instead of one per kernel.
  bool graph = true;
  /// The GPU (0-based among the visible ones; --device cuda:N).
  int device = 0;
  /// Time cuBLASLt's candidate algorithms for each GEMM at setup and keep the fastest (cached on
  /// disk, tune_cache.hpp); off: the heuristic's first choice, and no cache read or written.
  bool autotune = true;
};

/// The default learning rate of each optimizer (used when --lr is not given).
float default_lr(OptimizerKind kind);

struct TrainConfig {
  std::string data_dir;  ///< empty: $MNIST_GPU_DATA, else the repository's data/mnist
  DeviceChoice device = DeviceChoice::automatic;
  CudaConfig cuda;
  int batch = 128;
  ModelSpec model;
  OptimizerConfig optimizer;
  Schedule schedule = Schedule::cosine;
  int lr_step = 5;          ///< step schedule: epochs between rate cuts
  float lr_factor = 0.5f;   ///< the cut of the step schedule and of plateau halving
  /// Plateau cuts: after this many epochs in a row without a better validation loss, the rate is
  /// multiplied by lr_factor (on top of the schedule), never below min_lr. 0: off.
  int lr_patience = 0;
  float min_lr = 0.0f;
  /// Early stopping: stop after this many epochs in a row without a better validation loss and
  /// restore the best epoch's weights. 0: off.
  int patience = 0;
  /// "Better" is relative: below best * (1 - min_delta).
  float min_delta = 1e-4f;
  int epochs = 10;
  int val = 5000;
  /// > 0: evaluate the test set after every epoch and report the training time until its
  /// accuracy first reaches this fraction (time to accuracy). 0: test at the end only.
  double target = 0;
  int limit = 0;  ///< train on the first `limit` rows of the training split only (quick searches); 0: all
  std::uint64_t seed = 1;
  std::string metrics_path;  ///< JSON lines; empty: none
  std::string checkpoint_path;  ///< written after every epoch and on SIGINT/SIGTERM; empty: none
  std::string resume_path;      ///< a checkpoint to continue from; empty: a fresh run
  std::string init_from_path;   ///< a saved model whose parameters the run starts from; empty: initialise
  std::string save_path;        ///< the trained model (model_io.hpp), written at the end; empty: none
  std::string report_path;      ///< a directory for the HTML report (report.hpp), written at the end; empty: none
  bool timings = false;         ///< log where the run's wall time went, phase by phase (--timings)
};

}  // namespace mnist_gpu
