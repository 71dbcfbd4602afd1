// The CUDA backend: GpuNet trained from a pinned-memory batch stream (or, as a choice, from a
// device-resident copy of the training set). Streamed: the host gathers batch k+1 into a pinned
// staging slot while the GPU trains batch k; a copy stream moves it to a device slot and events
// order copy and compute, so no step waits on the host. Resident: one kernel gathers the batch on
// the device from the epoch's order, uploaded once per epoch. A step runs the step program
// (step_program.hpp); each full-batch step is one launch of a CUDA graph captured once, never
// edited: what changes per step (the rate, Adam's bias corrections, dropout's step, the resident
// gather's offset, the deformations' epoch) is read from the epoch's step table on the device (step_scalars.hpp). Loss and
// accuracy accumulate on the GPU and are read once per epoch.
#include <algorithm>
#include <array>
#include <utility>
#include <cstring>

#include <string>

#include "cuda_resources.hpp"
#include "gpu_device.hpp"
#include "gpu_net.hpp"
#include "gpu_ops.hpp"
#include "step_table.hpp"
#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/batches.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/step_program.hpp"

namespace mnist_gpu {
namespace {

using gpu::DeviceBuffer;
using gpu::Event;
using gpu::PinnedBuffer;

// Staging slots in flight: the host runs at most this many batches ahead of the copy engine.
constexpr int kSlots = 4;

// The cuBLASLt context of the backend's GpuNet: none on the cuBLAS path; with the Device's tune
// cache when --autotune is on.
gpu::LtContext lt_context(const CudaConfig& cuda, Precision precision, gpu::Device& dev) {
  if (effective_gemm(cuda, precision) != GemmPath::cublaslt) return {};
  gpu::LtContext ctx = dev.lt();
  if (cuda.autotune) ctx.tuning = &dev.tuning();
  return ctx;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ModelSpec& spec, const OptimizerConfig& opt, int batch, std::uint64_t seed,
              const CudaConfig& cuda, const AugmentConfig& augment, std::shared_ptr<gpu::Device> device)
      : opt_(opt), cuda_(cuda), batch_(batch), pixels_(spec.inputs), dev_(std::move(device)),
        compute_(dev_->compute_stream()), copy_(dev_->copy_stream()),
        net_(spec, batch, compute_.get(), dev_->cublas(), opt.dropout, seed, opt.input_dropout,
             lt_context(cuda, spec.precision, *dev_)),
        x_(static_cast<std::size_t>(batch) * spec.inputs), y_(static_cast<std::size_t>(batch)), loss_sum_(1),
        correct_(1), confusion_(kClasses * kClasses), program_(make_step_program(spec, augment.on())),
        optim_(make_optim_step(opt, opt.lr, 1)) {
    if (augment.on()) {
      if (spec.inputs != kAugmentPixels)
        throw Error("--augment deforms 28 x 28 images; the model has " + std::to_string(spec.inputs) + " inputs");
      plan_ = make_augment_plan(augment, seed);
      xa_ = DeviceBuffer<float>(static_cast<std::size_t>(batch) * spec.inputs);
    }
    const std::size_t n = net_.layout().size;
    if (opt.kind != OptimizerKind::sgd) {
      s1_ = DeviceBuffer<float>(n);
      CUDA_CHECK(cudaMemsetAsync(s1_.get(), 0, s1_.bytes(), compute_.get()));
    }
    if (opt.kind == OptimizerKind::adam) {  // rmsprop keeps s1 only
      s2_ = DeviceBuffer<float>(n);
      CUDA_CHECK(cudaMemsetAsync(s2_.get(), 0, s2_.bytes(), compute_.get()));
    }
    for (int s = 0; s < kSlots; ++s) {
      stage_images_[s] = PinnedBuffer<std::uint8_t>(static_cast<std::size_t>(batch) * pixels_);
      stage_labels_[s] = PinnedBuffer<std::uint8_t>(static_cast<std::size_t>(batch));
      dev_images_[s] = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(batch) * pixels_);
      dev_labels_[s] = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(batch));
    }
    std::vector<float> init(n);
    init_params(spec, net_.layout(), seed, init.data(), opt.init, opt.init_uniform);
    set_params(init);
  }

  // Best effort, errors ignored (a destructor must not throw): nothing queued is still using the
  // buffers, staging slots and graphs that the members free next (after an epoch that threw).
  ~CudaBackend() override {
    cudaSetDevice(dev_->id());
    cudaStreamSynchronize(copy_.get());
    cudaStreamSynchronize(compute_.get());
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string describe() const override {
    return "cuda (" + dev_->name() + (dev_->id() > 0 ? ", device " + std::to_string(dev_->id()) : "") + ")";
  }
  std::string device() const override { return "cuda"; }
  std::uint64_t peak_device_bytes() const override { return dev_->peak_bytes(); }
  int kernels_per_step() const override { return kernels_per_step_; }
  std::vector<std::string> take_warnings() override {
    if (!cuda_.autotune || effective_gemm(cuda_, net_.spec().precision) != GemmPath::cublaslt) return {};
    return std::exchange(dev_->tuning().warnings, {});
  }

  void set_params(const std::vector<float>& p) override {
    if (p.size() != net_.layout().size) throw Error("set_params: parameter count mismatch");
    dev_->activate();
    CUDA_CHECK(cudaMemcpyAsync(net_.params(), p.data(), p.size() * sizeof(float), cudaMemcpyHostToDevice,
                               compute_.get()));
    compute_.sync();
  }

  std::vector<float> get_params() override {
    std::vector<float> p(net_.layout().size);
    dev_->activate();
    CUDA_CHECK(cudaMemcpyAsync(p.data(), net_.params(), p.size() * sizeof(float), cudaMemcpyDeviceToHost,
                               compute_.get()));
    compute_.sync();
    return p;
  }

  TrainState get_state() override {
    TrainState st;
    st.params = get_params();
    const std::vector<std::string> names = optimizer_state_names(opt_.kind);
    for (std::size_t i = 0; i < names.size(); ++i) st.optimizer.push_back({names[i], download(i == 0 ? s1_ : s2_)});
    st.step = step_;
    return st;
  }

  void set_state(const TrainState& st) override {
    check_state(st, opt_.kind, net_.layout().size);
    set_params(st.params);
    if (!st.optimizer.empty()) upload(st.optimizer[0].values, s1_);
    if (st.optimizer.size() > 1) upload(st.optimizer[1].values, s2_);
    step_ = st.step;
  }

  int batch() const override { return batch_; }

  void begin_epoch(const Dataset& data, const std::vector<std::uint32_t>& order, float lr, long long first_batch,
                   const EpochSums& start, int epoch) override {
    const bool resident = cuda_.data == DataPath::resident;
    if (data.pixels() != pixels_) throw Error("begin_epoch: image size does not match the model input");
    for (std::uint32_t i : order)
      if (i >= static_cast<std::uint32_t>(data.count)) throw Error("begin_epoch: an order index is past the data");
    dev_->activate();
    // Once per epoch: nothing of an earlier epoch (one that threw midway included) is still
    // reading the staging slots, the step table or the buffers that reside() rewrites.
    compute_.sync();
    copy_.sync();
    if (resident) reside(data, order);
    else if (xa_.size() != 0) upload_order(order);  // the deformations read each row's sample index
    cudaStream_t cs = compute_.get();
    // The epoch's step table: row k holds batch k's step number, offset, rate, bias corrections
    // and the epoch.
    const BatchPlan plan(order, batch_);
    rows_.assign(static_cast<std::size_t>(plan.count()), gpu::StepScalars{});
    for (long long k = first_batch; k < plan.count(); ++k) {
      const long long t = step_ + 1 + (k - first_batch);
      rows_[static_cast<std::size_t>(k)] = gpu::step_row(t, plan.offset(k), make_optim_step(opt_, lr, t), epoch);
    }
    if (steps_.load(rows_, first_batch, cs))
      for (gpu::Graph& g : step_graphs_) g = gpu::Graph{};  // captured with the old table's address
    // The sums so far (non-zero when resuming mid-epoch) seed the device accumulators.
    start_sums_ = start;
    CUDA_CHECK(cudaMemcpyAsync(loss_sum_.get(), &start_sums_.loss_sum, sizeof(double), cudaMemcpyHostToDevice, cs));
    CUDA_CHECK(cudaMemcpyAsync(correct_.get(), &start_sums_.correct, sizeof(unsigned long long),
                               cudaMemcpyHostToDevice, cs));
    epoch_data_ = &data;
    epoch_order_ = &order;
    next_ = first_batch;
    issued_ = 0;
    samples_ = start.samples;
    snap_pending_ = snap_known_ = false;  // end_epoch waited for any earlier snapshot
  }

  void step(long long k) override {
    if (!epoch_data_ || k != next_) throw Error("step: batch " + std::to_string(k) + " out of turn");
    const bool resident = cuda_.data == DataPath::resident;
    const BatchPlan plan(*epoch_order_, batch_);
    const int s = static_cast<int>(issued_ % kSlots);
    const int rows = plan.rows(k);
    if (!resident) stream_batch(*epoch_data_, plan, k, s, issued_ >= kSlots);
    if (cuda_.graph && rows == batch_ && warmed_up_) {
      gpu::Graph& g = step_graphs_[resident ? 0 : s];
      if (!g) {
        // Every slot's graph at once (capturing only records), so that no later step pays for one.
        if (resident) capture_step(g, 0);
        else
          for (int t = 0; t < kSlots; ++t) capture_step(step_graphs_[t], t);
      }
      g.launch(compute_.get());
    } else {
      Step st{*this, s, rows};
      run_step(program_, st);
      warmed_up_ = warmed_up_ || rows == batch_;
    }
    if (!resident) consumed_[s].record(compute_.get());
    ++step_;
    ++issued_;
    ++next_;
    samples_ += rows;
  }

  bool running_sums(EpochSums& out) override {
    if (!epoch_data_) return false;
    if (snap_pending_ && snap_done_.done()) {
      snap_pending_ = false;
      snap_known_ = true;
      known_ = EpochSums{};
      known_.loss_sum = snap_loss_.get()[0];
      known_.correct = snap_correct_.get()[0];
      known_.samples = snap_samples_;
      known_.batches = snap_batches_;
    }
    if (!snap_pending_) {  // the next answer: the accumulators behind the steps queued so far
      cudaStream_t cs = compute_.get();
      CUDA_CHECK(cudaMemcpyAsync(snap_loss_.get(), loss_sum_.get(), sizeof(double), cudaMemcpyDeviceToHost, cs));
      CUDA_CHECK(cudaMemcpyAsync(snap_correct_.get(), correct_.get(), sizeof(unsigned long long),
                                 cudaMemcpyDeviceToHost, cs));
      snap_done_.record(cs);
      snap_pending_ = true;
      snap_samples_ = samples_;
      snap_batches_ = next_;
    }
    if (snap_known_) out = known_;
    return snap_known_;
  }

  EpochSums end_epoch() override {
    cudaStream_t cs = compute_.get();
    EpochSums sums;
    CUDA_CHECK(cudaMemcpyAsync(&sums.loss_sum, loss_sum_.get(), sizeof(double), cudaMemcpyDeviceToHost, cs));
    CUDA_CHECK(cudaMemcpyAsync(&sums.correct, correct_.get(), sizeof(unsigned long long), cudaMemcpyDeviceToHost, cs));
    compute_.sync();  // once per epoch
    epoch_data_ = nullptr;
    epoch_order_ = nullptr;
    return sums;
  }

  using Backend::evaluate;
  EvalResult evaluate(const Dataset& data, const ProgressFn& progress) override {
    dev_->activate();
    const gpu::DeviceData& d = *upload(data);
    cudaStream_t cs = compute_.get();
    CUDA_CHECK(cudaMemsetAsync(loss_sum_.get(), 0, sizeof(double), cs));
    CUDA_CHECK(cudaMemsetAsync(correct_.get(), 0, sizeof(unsigned long long), cs));
    CUDA_CHECK(cudaMemsetAsync(confusion_.get(), 0, confusion_.bytes(), cs));
    const std::size_t px = static_cast<std::size_t>(pixels_);
    for (int first = 0; first < data.count; first += batch_) {
      const int rows = std::min(batch_, data.count - first);
      gpu::u8_to_unit(d.images.get() + first * px, x_.get(), rows * px, cs);
      net_.forward(x_.get(), rows);
      net_.loss(d.labels.get() + first, rows, loss_sum_.get(), correct_.get());
      gpu::confusion_update(net_.output(), d.labels.get() + first, rows, net_.spec().outputs, confusion_.get(), cs);
    }
    EvalResult r;
    double loss_sum = 0;
    unsigned long long correct = 0;
    CUDA_CHECK(cudaMemcpyAsync(&loss_sum, loss_sum_.get(), sizeof(double), cudaMemcpyDeviceToHost, cs));
    CUDA_CHECK(cudaMemcpyAsync(&correct, correct_.get(), sizeof(correct), cudaMemcpyDeviceToHost, cs));
    CUDA_CHECK(cudaMemcpyAsync(r.confusion.data(), confusion_.get(), confusion_.bytes(), cudaMemcpyDeviceToHost, cs));
    compute_.sync();
    r.count = data.count;
    r.loss = data.count ? loss_sum / data.count : 0.0;
    r.acc = data.count ? static_cast<double>(correct) / data.count : 0.0;
    if (progress && data.count > 0) progress(data.count, data.count);  // as the CPU: no call for an empty set
    return r;
  }

 private:
  // Streamed: gather batch k on the host into staging slot s and enqueue its copy into device
  // slot s; the compute stream waits for the copy.
  void stream_batch(const Dataset& data, const BatchPlan& plan, long long k, int s, bool reusing) {
    cudaStream_t cs = compute_.get(), xs = copy_.get();
    const int rows = plan.rows(k);
    // Flow control, not a step sync: the staging slot is reused once its previous copy (batch
    // k - kSlots) has left it, which only waits when the host is kSlots batches ahead.
    if (reusing) copied_[s].sync();
    gather_rows(data.images.data(), data.labels.data(), pixels_, plan.indices(k), rows, stage_images_[s].get(),
                stage_labels_[s].get());
    // The device slot is free once the compute stream has finished with batch k - kSlots.
    if (reusing) CUDA_CHECK(cudaStreamWaitEvent(xs, consumed_[s].get(), 0));
    CUDA_CHECK(cudaMemcpyAsync(dev_images_[s].get(), stage_images_[s].get(), static_cast<std::size_t>(rows) * pixels_,
                               cudaMemcpyHostToDevice, xs));
    CUDA_CHECK(cudaMemcpyAsync(dev_labels_[s].get(), stage_labels_[s].get(), static_cast<std::size_t>(rows),
                               cudaMemcpyHostToDevice, xs));
    copied_[s].record(xs);
    CUDA_CHECK(cudaStreamWaitEvent(cs, copied_[s].get(), 0));
  }

  // The step's input op: the batch into x_ (and, resident, its labels into y_); returns the
  // device labels.
  const std::uint8_t* input(int s, int rows) {
    cudaStream_t cs = compute_.get();
    if (cuda_.data == DataPath::resident) {
      gpu::gather_u8_to_unit(train_set_->images.get(), train_set_->labels.get(), order_dev_.get(), rows, pixels_,
                             x_.get(), y_.get(), steps_.ref(), cs);
      return y_.get();
    }
    gpu::u8_to_unit(dev_images_[s].get(), x_.get(), static_cast<std::size_t>(rows) * pixels_, cs);
    return dev_labels_[s].get();
  }

  // Layer 0's input in training: the deformed batch when deforming.
  const float* train_input() const { return xa_.size() != 0 ? xa_.get() : x_.get(); }

  // The step program's stages on the GPU for one batch of `rows` from staging slot `slot`
  // (streamed) or the resident set: run kernel by kernel, or captured into a graph.
  struct Step {
    CudaBackend& b;
    int slot;
    int rows;
    const std::uint8_t* labels = nullptr;
    void input() {
      labels = b.input(slot, rows);
      b.net_.begin(b.steps_.ref());
    }
    void augment() {
      gpu::augment(b.x_.get(), b.xa_.get(), rows, b.plan_, b.order_dev_.get(), labels, b.steps_.ref(),
                   b.compute_.get());
    }
    void forward(int layer) { b.net_.forward_layer(b.train_input(), rows, static_cast<std::size_t>(layer)); }
    void loss() { b.net_.loss_gradient(labels, rows, b.loss_sum_.get(), b.correct_.get()); }
    void backward(int layer) { b.net_.backward_layer(b.train_input(), rows, static_cast<std::size_t>(layer)); }
    void grad_hook() {}
    void update() {
      const ParamLayout& layout = b.net_.layout();
      gpu::optimizer_update(b.optim_, b.steps_.ref(), b.net_.params(), b.net_.grads(), b.s1_.get(), b.s2_.get(),
                            layout.size, layout.n_weights, b.compute_.get());
      // Max-norm on each hidden layer's rows (its units' incoming weights), after the update.
      if (b.opt_.max_norm > 0)
        for (std::size_t li = 0; li + 1 < layout.layers.size(); ++li) {
          const LayerView& l = layout.layers[li];
          gpu::max_norm(b.net_.params() + l.w, l.out, l.in, b.opt_.max_norm, b.compute_.get());
        }
      b.steps_.advance(b.compute_.get());  // the step's last launch: the next step's row
    }
  };

  // Captures the full-batch step of slot s (streamed) or of the resident set. Runs after an eager
  // full step, so that every kernel is loaded and cuBLAS is initialised outside the capture. The
  // graph is never edited: each replay reads its step's row of the step table.
  void capture_step(gpu::Graph& g, int s) {
    gpu::Capture capture(compute_.get());
    Step st{*this, s, batch_};
    run_step(program_, st);
    g = capture.finish();
    kernels_per_step_ = static_cast<int>(g.kernel_nodes());
  }

  std::vector<float> download(const DeviceBuffer<float>& d) {
    std::vector<float> h(d.size());
    if (!h.empty()) {
      CUDA_CHECK(cudaMemcpyAsync(h.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost, compute_.get()));
      compute_.sync();
    }
    return h;
  }

  void upload(const std::vector<float>& h, DeviceBuffer<float>& d) {
    if (h.empty()) return;
    CUDA_CHECK(cudaMemcpyAsync(d.get(), h.data(), d.bytes(), cudaMemcpyHostToDevice, compute_.get()));
    compute_.sync();
  }

  // Resident: the training set on the device, once per dataset (its replacement drops the step
  // graphs, which hold its address), and this epoch's order beside it (through pinned memory, so
  // the copy is asynchronous; the previous epoch's copy finished at its closing sync).
  void reside(const Dataset& data, const std::vector<std::uint32_t>& order) {
    const std::uint64_t key = gpu::Device::fingerprint(data);
    if (!train_set_ || train_set_->key != key) {
      for (gpu::Graph& g : step_graphs_) g = gpu::Graph{};
      train_set_.reset();  // this model's hold on the old copy goes before the new one is made
      train_set_ = dev_->data(data, pixels_, "begin_epoch");
    }
    upload_order(order);
  }

  // This epoch's order on the device (the resident gather's and the deformations' sample indices),
  // through pinned memory, so the copy is asynchronous; the previous epoch's copy finished at its
  // closing sync.
  void upload_order(const std::vector<std::uint32_t>& order) {
    if (order.size() > order_dev_.size()) {
      for (gpu::Graph& g : step_graphs_) g = gpu::Graph{};  // captured with the old order buffer
      // Both made before either is replaced: a failed allocation leaves two of the same size.
      DeviceBuffer<std::uint32_t> dev(order.size());
      PinnedBuffer<std::uint32_t> pinned(order.size());
      order_dev_ = std::move(dev);
      order_pinned_ = std::move(pinned);
    }
    if (order.empty()) return;
    std::memcpy(order_pinned_.get(), order.data(), order.size() * sizeof(std::uint32_t));
    CUDA_CHECK(cudaMemcpyAsync(order_dev_.get(), order_pinned_.get(), order.size() * sizeof(std::uint32_t),
                               cudaMemcpyHostToDevice, compute_.get()));
  }

  // Evaluation sets live on the device (validation and test are small), shared through the
  // Device with every model on it; this model holds the ones it evaluated.
  std::shared_ptr<const gpu::DeviceData> upload(const Dataset& data) {
    const std::uint64_t key = gpu::Device::fingerprint(data);
    for (const auto& d : eval_sets_)
      if (d->key == key) return d;
    eval_sets_.push_back(dev_->data(data, pixels_, "evaluate"));
    return eval_sets_.back();
  }

  OptimizerConfig opt_;
  CudaConfig cuda_;
  int batch_;
  int pixels_;
  std::shared_ptr<gpu::Device> dev_;      // the GPU: streams, cuBLAS, accounting, dataset copies
  const gpu::Stream& compute_;            // dev_'s
  const gpu::Stream& copy_;
  gpu::GpuNet net_;
  DeviceBuffer<float> x_;                 // (batch, inputs) in [0, 1]
  DeviceBuffer<float> xa_;                // (batch, inputs): x_ deformed (--augment), else empty
  AugmentPlan plan_;                      // the deformations (when xa_ is allocated)
  DeviceBuffer<std::uint8_t> y_;          // (batch): resident, the gathered labels
  DeviceBuffer<float> s1_, s2_;           // optimizer state (layout.size each, when used)
  DeviceBuffer<double> loss_sum_;         // (1)
  DeviceBuffer<unsigned long long> correct_;    // (1)
  DeviceBuffer<unsigned long long> confusion_;  // (10, 10)
  std::array<PinnedBuffer<std::uint8_t>, kSlots> stage_images_, stage_labels_;  // (batch, inputs), (batch)
  std::array<DeviceBuffer<std::uint8_t>, kSlots> dev_images_, dev_labels_;
  std::array<Event, kSlots> copied_, consumed_;
  std::vector<std::shared_ptr<const gpu::DeviceData>> eval_sets_;
  std::shared_ptr<const gpu::DeviceData> train_set_;  // resident: the training set
  DeviceBuffer<std::uint32_t> order_dev_;      // resident: the epoch's order
  PinnedBuffer<std::uint32_t> order_pinned_;
  std::array<gpu::Graph, kSlots> step_graphs_;  // streamed: one per slot; resident: [0]
  std::vector<Stage> program_;                 // the training step (step_program.hpp)
  OptimStep optim_;                            // the update's settings (its rate: the step table's)
  gpu::StepTable steps_;                       // the epoch's per-step scalars
  std::vector<gpu::StepScalars> rows_;         // their host copy (built in begin_epoch)
  const Dataset* epoch_data_ = nullptr;        // the epoch begun
  const std::vector<std::uint32_t>* epoch_order_ = nullptr;
  long long next_ = 0;                         // the batch the next step trains
  long long issued_ = 0;                       // steps enqueued this epoch (slot reuse after kSlots)
  bool warmed_up_ = false;  // a full batch has run kernel by kernel: capturing is safe
  int kernels_per_step_ = 0;
  long long step_ = 0;
  // running_sums: the accumulators' latest copy (pinned, written by the copy queued behind the
  // steps; read only once snap_done_ says it has landed) and what it covers.
  gpu::PinnedBuffer<double> snap_loss_{1};
  gpu::PinnedBuffer<unsigned long long> snap_correct_{1};
  gpu::Event snap_done_;
  bool snap_pending_ = false, snap_known_ = false;
  long long samples_ = 0, snap_samples_ = 0, snap_batches_ = 0;
  EpochSums known_;
  EpochSums start_sums_;  // host source of the accumulators' starting values (outlives the async copy)
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const ModelSpec& spec, const OptimizerConfig& opt, int batch,
                                           std::uint64_t seed, const CudaConfig& cuda, const AugmentConfig& augment) {
  check_backend_model(spec);
  return std::make_unique<CudaBackend>(spec, opt, batch, seed, cuda, augment, gpu::Device::shared(cuda.device));
}

}  // namespace mnist_gpu
