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
enum class OptimizerKind { sgd, momentum, adam, rmsprop };
enum class DeviceChoice { automatic, cpu, cuda };
/// How the CUDA backend feeds training batches. streamed: the host gathers each shuffled batch into
/// a pinned staging slot and a copy stream moves it to the device while the previous batch trains;
/// resident: the training set is copied to the device once and each batch is gathered there.
enum class DataPath { streamed, resident };
/// Learning-rate schedule over epochs: constant; cosine from lr down to 0 at the last epoch's end;
/// step: lr multiplied by TrainConfig::lr_factor every TrainConfig::lr_step epochs; exp: epoch e
/// (0-based) trains at lr * lr_factor^e (a constant factor each epoch, as Ciresan et al. 2010).
enum class Schedule { constant, cosine, step, exp };
/// How the dense layers' products round their operands (--precision). fp32: strict FP32 maths;
/// tf32: operands rounded to TF32 (10-bit mantissa) on tensor cores, FP32 accumulation; bf16:
/// BF16 copies of weights and activations (8-bit mantissa), FP32 accumulation, FP32 master
/// weights and optimizer state. The CPU emulates the rounding (precision.hpp).
enum class Precision { fp32, tf32, bf16 };
/// Which library runs the CUDA backend's dense products (--gemm): cuBLAS SGEMM with separate
/// bias/activation kernels, or cuBLASLt with bias, ReLU and their gradients fused into the GEMMs.
enum class GemmPath { cublas, cublaslt };
/// Deformation of the training images (--augment): the preset that gives the parameters their
/// defaults. none: the images as they are; affine: rotation, scaling and shear; elastic: Simard et
/// al. 2003's elastic distortion alone; ciresan: both, as Ciresan et al. 2010 (augment.hpp).
enum class AugmentKind { none, affine, elastic, ciresan };
/// How the initial weights are drawn (--init); biases always start at 0. standard: the
/// activation's scheme (He-normal for relu and gelu, Glorot-uniform for sigmoid and tanh);
/// uniform: every weight uniform in +-OptimizerConfig::init_uniform (Ciresan et al. 2010);
/// glorot: Glorot-uniform, +-sqrt(6 / (in + out)) per layer, for any activation (Keras's Dense).
enum class WeightInit { standard, uniform, glorot };

const char* to_string(Activation a);
const char* to_string(Loss l);
const char* to_string(OptimizerKind o);
const char* to_string(DeviceChoice d);
const char* to_string(Schedule s);
const char* to_string(DataPath d);
const char* to_string(Precision p);
const char* to_string(GemmPath g);
const char* to_string(AugmentKind a);

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
  /// The dense products' rounding (a training setting: TrainConfig's --precision; model files do
  /// not store it, and a loaded model evaluates at fp32).
  Precision precision = Precision::fp32;
  /// All layer widths, inputs first and outputs last.
  std::vector<int> widths() const;
};

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::adam;
  float lr = 0.002f;
  float momentum = 0.9f;  ///< momentum only
  bool nesterov = false;  ///< momentum only
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  ///< adam only
  float rho = 0.9f, rms_eps = 1e-7f;  ///< rmsprop only (Keras's defaults)
  float l2 = 0.0f;        ///< L2 regularisation (weight decay on weights, not biases)
  float dropout = 0.0f;   ///< probability of dropping each hidden unit in training, [0, 1)
  float input_dropout = 0.0f;  ///< probability of dropping each input pixel in training, [0, 1)
  /// > 0: after each update, every hidden unit's incoming weight vector (a row of its layer's w)
  /// with L2 norm above this is scaled back to it (Srivastava et al. 2014). 0: off.
  float max_norm = 0.0f;
  /// The initial weights' scheme (init_params); init_uniform is the bound of WeightInit::uniform
  /// (> 0 exactly when init is uniform, 0 otherwise).
  WeightInit init = WeightInit::standard;
  float init_uniform = 0.0f;
};

/// The deformation of every training image (augment.hpp). Validation and test images are never
/// deformed. Each parameter's default comes from `kind` (augment_preset).
struct AugmentConfig {
  AugmentKind kind = AugmentKind::none;
  float rotate = 0.0f;  ///< rotation uniform in +-rotate degrees (ciresan: half for the digits 1 and 7)
  float scale = 0.0f;   ///< horizontal and vertical scale factors, each uniform in 1 +- scale/100
  float shear = 0.0f;   ///< horizontal shear angle uniform in +-shear degrees
  float sigma = 0.0f;   ///< elastic: width (pixels) of the Gaussian smoothing the displacement field
  float alpha = 0.0f;   ///< elastic: the smoothed field's scale (pixels); 0: no elastic distortion
  /// Whether any training image is deformed at all.
  bool on() const { return kind != AugmentKind::none; }
};

/// The parameters of a preset: none all 0; affine rotate 15, scale 15, shear 15; elastic sigma 4,
/// alpha 34; ciresan rotate 15, scale 15, shear 15, sigma 6, alpha 36.
AugmentConfig augment_preset(AugmentKind kind);

/// Settings of the CUDA backend only (the CPU backend has no use for them); neither changes a
/// result, only the speed.
struct CudaConfig {
  DataPath data = DataPath::streamed;
  /// Capture the training step (input, forward, backward, update) in a CUDA graph and replay it
  /// for every full batch: one launch per step instead of one per kernel.
  bool graph = true;
  /// The GPU (0-based among the visible ones; --device cuda:N).
  int device = 0;
  /// The library of the dense products. A precision other than fp32 always runs on cuBLASLt
  /// (effective_gemm).
  GemmPath gemm = GemmPath::cublas;
  /// Time cuBLASLt's candidate algorithms for each GEMM at setup and keep the fastest (cached on
  /// disk, tune_cache.hpp); off: the heuristic's first choice, and no cache read or written.
  bool autotune = true;
};

/// The GEMM path a model runs on: cuBLASLt for any precision but fp32 (cuBLAS SGEMM has none),
/// else the configured one.
inline GemmPath effective_gemm(const CudaConfig& cuda, Precision p) {
  return p == Precision::fp32 ? cuda.gemm : GemmPath::cublaslt;
}

/// The default learning rate of each optimizer (used when --lr is not given).
float default_lr(OptimizerKind kind);

struct TrainConfig {
  std::string data_dir;  ///< empty: $MNIST_GPU_DATA, else the repository's data/mnist
  DeviceChoice device = DeviceChoice::automatic;
  CudaConfig cuda;
  int batch = 128;
  ModelSpec model;
  OptimizerConfig optimizer;
  AugmentConfig augment;
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
  std::string recipe;           ///< the recipe (recipe.hpp) whose settings were applied; empty: none
  bool timings = false;         ///< log where the run's wall time went, phase by phase (--timings)
  /// > 0: end the run after the epoch during which this many seconds of training (this process's
  /// epochs, evaluations not counted) have passed, then test as after the last epoch. 0: off.
  double time_limit_s = 0;
};

}  // namespace mnist_gpu
