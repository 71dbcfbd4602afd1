// The backend interface the trainer drives: the CPU backend and the CUDA backend. A backend owns
// the parameters, gradients, optimizer state and all workspace of one model, and offers a training
// step (the step program of step_program.hpp) and evaluation; train() owns the epoch (run_epoch).
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/optimizer.hpp"

namespace mnist_gpu {

/// Sums over one training epoch (loss and accuracy of each batch as it was trained).
struct EpochSums {
  double loss_sum = 0;
  unsigned long long correct = 0;
  long long samples = 0;
  long long batches = 0;  ///< batches of the epoch trained so far (the next one's index)
  bool stopped = false;   ///< the stop flag ended the epoch early, after a whole step
};

/// Loss, accuracy and confusion matrix of the model on a dataset.
struct EvalResult {
  long long count = 0;
  double loss = 0;  ///< mean per-sample loss
  double acc = 0;   ///< fraction correct
  std::array<unsigned long long, kClasses * kClasses> confusion{};  ///< [label * 10 + predicted]
  /// Misclassified samples of each true digit.
  std::array<unsigned long long, 10> per_class_errors() const;
};

/// Called with (batches done, batches total) during an epoch; may be empty.
using ProgressFn = std::function<void(long long, long long)>;

/// How run_epoch (train.hpp) runs (part of) an epoch: from which batch, with which sums so far (a resumed epoch),
/// and a flag checked between steps that ends the epoch early (SIGINT, SIGTERM).
struct EpochControl {
  int epoch = 1;  ///< the epoch's number (1-based): with the seed, it picks the deformations (--augment)
  long long first_batch = 0;
  EpochSums start;
  ProgressFn progress;
  const std::atomic<bool>* stop = nullptr;
};

/// Everything a backend holds that training changes: with the seed, enough to continue a run
/// exactly where it stopped.
struct TrainState {
  std::vector<float> params;  ///< (layout.size)
  std::vector<NamedTensor> optimizer;  ///< in optimizer_state_names(kind) order (sgd: none)
  long long step = 0;         ///< optimizer updates so far (Adam's bias correction)
};

class Backend {
 public:
  virtual ~Backend() = default;
  /// e.g. "cpu (OpenBLAS, 2 threads)" or "cuda (NVIDIA H200)".
  virtual std::string describe() const = 0;
  /// "cpu" or "cuda".
  virtual std::string device() const = 0;
  virtual void set_params(const std::vector<float>& params) = 0;
  virtual std::vector<float> get_params() = 0;
  virtual TrainState get_state() = 0;
  virtual void set_state(const TrainState& state) = 0;
  /// The mini-batch size: an epoch's batches are BatchPlan(order, batch()) (batches.hpp).
  virtual int batch() const = 0;
  /// Starts an epoch of training over `data` rows in `order` (both outlive the epoch) at rate
  /// `lr`, from batch `first_batch` on, its loss sum and correct count starting from `start`'s
  /// (a resumed epoch). `epoch` (1-based) picks the epoch's deformations when the backend deforms
  /// its training images (AugmentConfig); otherwise it is not used.
  virtual void begin_epoch(const Dataset& data, const std::vector<std::uint32_t>& order, float lr,
                           long long first_batch, const EpochSums& start, int epoch) = 0;
  /// One optimizer step on batch k of the epoch begun (k = first_batch, first_batch + 1, ... in
  /// turn). On the GPU it is enqueued: no wait for the device.
  virtual void step(long long k) = 0;
  /// Ends the epoch begun: its loss sum and correct count so far (start's included), the other
  /// fields zero. Waits for the device.
  virtual EpochSums end_epoch() = 0;
  /// Loss, accuracy and confusion matrix of the model on `data`. `progress`, when given, is called
  /// with (rows done, rows total) as the evaluation goes: after each batch on the CPU; once, at
  /// the end, on the GPU (its batches are queued at once and waited for together).
  virtual EvalResult evaluate(const Dataset& data, const ProgressFn& progress) = 0;
  EvalResult evaluate(const Dataset& data) { return evaluate(data, ProgressFn{}); }
  /// The epoch's loss sum, correct count and samples (start's included) as of the latest step
  /// whose results are known without waiting for the device, with `batches` the batches they
  /// cover; false when none is known yet. Meant for a progress line, a few times a second: the
  /// CPU knows them after every step; CUDA answers from a copy of its accumulators taken behind
  /// the steps queued at an earlier call (an asynchronous copy to pinned memory and an event
  /// query: no wait, and no work when nobody asks).
  virtual bool running_sums(EpochSums& /*out*/) { return false; }
  /// Warnings met since the last call that the user should see (a refused or unwritable GEMM
  /// tune cache), each once; the CLI logs them.
  virtual std::vector<std::string> take_warnings() { return {}; }
  /// The most device memory this process's buffers have held at once (model, optimizer state,
  /// workspace, staging slots, cached datasets); 0 on the CPU.
  virtual std::uint64_t peak_device_bytes() const { return 0; }
  /// Kernel launches one full training step makes, counted from the nodes of its captured CUDA
  /// graph (cuBLAS's own kernels included); 0 when no step has been captured (the CPU, or the
  /// graph turned off).
  virtual int kernels_per_step() const { return 0; }
};

/// Throws Error unless spec has one output per class: the backends score labels 0..9 (their loss
/// reads output[label], their confusion matrix is 10 x 10).
void check_backend_model(const ModelSpec& spec);

/// Throws Error unless `st` holds n parameters and exactly the state tensors of `kind`
/// (optimizer_state_names order), n floats each.
void check_state(const TrainState& st, OptimizerKind kind, std::size_t n);

/// The CPU backend: float32, OpenBLAS GEMMs. Parameters start from init_params(seed). Training
/// images are deformed as `augment` says (augment.hpp), validation and test images never, each
/// batch's images split between `augment_threads` threads (0: cpu_worker_threads(), OpenBLAS's
/// count); the images are the same bit for bit with any count.
std::unique_ptr<Backend> make_cpu_backend(const ModelSpec& spec, const OptimizerConfig& opt,
                                          int batch, std::uint64_t seed, const AugmentConfig& augment = {},
                                          int augment_threads = 0);

/// The CUDA backend on device 0: GpuNet (handwritten kernels + cuBLAS) fed by a pinned-memory
/// batch stream or from a device-resident copy of the training set (cuda.data), its full-batch
/// steps replayed from a CUDA graph (cuda.graph). Throws Error when no usable GPU exists or the
/// build has no CUDA backend. Training images are deformed as `augment` says, as on the CPU.
std::unique_ptr<Backend> make_cuda_backend(const ModelSpec& spec, const OptimizerConfig& opt,
                                           int batch, std::uint64_t seed, const CudaConfig& cuda = {},
                                           const AugmentConfig& augment = {});

}  // namespace mnist_gpu
