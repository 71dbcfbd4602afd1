// The CPU backend: runs the step program eagerly on a CpuNet<float> (each batch's uint8 rows
// gathered and converted, forward and backward layer by layer, the update).
#include <algorithm>
#include <memory>
#include <string>

#include "mnist_gpu/augment.hpp"
#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/batches.hpp"
#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/row_workers.hpp"
#include "mnist_gpu/step_program.hpp"

#ifdef MNIST_GPU_HAVE_OPENBLAS
#include <cblas.h>
#endif

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace mnist_gpu {

std::array<unsigned long long, 10> EvalResult::per_class_errors() const {
  std::array<unsigned long long, 10> e{};
  for (int t = 0; t < 10; ++t)
    for (int p = 0; p < 10; ++p)
      if (p != t) e[t] += confusion[t * 10 + p];
  return e;
}

namespace {

// Flushes denormal results and inputs to zero while training (restored after): late in training
// Adam's second moments and tiny gradients fall into the denormal range, where x86 arithmetic
// is many times slower. Values below 1.2e-38 do not matter to the model.
class FlushDenormals {
 public:
  FlushDenormals() {
#if defined(__SSE2__)
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
#endif
  }
  ~FlushDenormals() {
#if defined(__SSE2__)
    _mm_setcsr(saved_);
#endif
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_ = 0;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ModelSpec& spec, const OptimizerConfig& opt, int batch, std::uint64_t seed,
             const AugmentConfig& augment, int augment_threads)
      : opt_(opt), batch_(batch), net_(spec, batch, opt.dropout, seed, opt.input_dropout),
        staging_(static_cast<std::size_t>(batch) * spec.inputs),
        labels_(static_cast<std::size_t>(batch)),
        x_(static_cast<std::size_t>(batch) * spec.inputs), program_(make_step_program(spec, augment.on())) {
    if (augment.on()) {
      if (spec.inputs != kAugmentPixels)
        throw Error("--augment deforms 28 x 28 images; the model has " + std::to_string(spec.inputs) + " inputs");
      plan_ = make_augment_plan(augment, seed);
      xa_.resize(x_.size());
      workers_ = std::make_unique<RowWorkers>(augment_threads);
    }
    const std::size_t n = net_.layout().size;
    if (opt.kind != OptimizerKind::sgd) s1_.assign(n, 0.0f);
    if (opt.kind == OptimizerKind::adam) s2_.assign(n, 0.0f);
    init_params(spec, net_.layout(), seed, net_.params().data(), opt.init, opt.init_uniform);
  }

  std::string describe() const override {
#ifdef MNIST_GPU_HAVE_OPENBLAS
    return "cpu (OpenBLAS, " + std::to_string(openblas_get_num_threads()) + " threads)";
#else
    return "cpu (plain-loop GEMM)";
#endif
  }
  std::string device() const override { return "cpu"; }

  void set_params(const std::vector<float>& p) override {
    std::copy(p.begin(), p.end(), net_.params().begin());
  }
  std::vector<float> get_params() override { return net_.params(); }

  TrainState get_state() override {
    TrainState st{net_.params(), {}, step_};
    const std::vector<std::string> names = optimizer_state_names(opt_.kind);
    for (std::size_t i = 0; i < names.size(); ++i) st.optimizer.push_back({names[i], i == 0 ? s1_ : s2_});
    return st;
  }

  void set_state(const TrainState& st) override {
    check_state(st, opt_.kind, net_.layout().size);
    net_.params() = st.params;
    if (!st.optimizer.empty()) s1_ = st.optimizer[0].values;
    if (st.optimizer.size() > 1) s2_ = st.optimizer[1].values;
    step_ = st.step;
  }

  int batch() const override { return batch_; }

  void begin_epoch(const Dataset& data, const std::vector<std::uint32_t>& order, float lr, long long first_batch,
                   const EpochSums& start, int epoch) override {
    if (data.pixels() != net_.spec().inputs) throw Error("begin_epoch: image size does not match the model input");
    epoch_ = Epoch{&data, &order, lr, first_batch, start.loss_sum, start.correct, start.samples, epoch};
  }

  void step(long long k) override {
    if (!epoch_.data || k != epoch_.next) throw Error("step: batch " + std::to_string(k) + " out of turn");
    const FlushDenormals ftz;
    const BatchPlan plan(*epoch_.order, batch_);
    Step s{*this, plan.indices(k), plan.rows(k)};
    run_step(program_, s);
    ++epoch_.next;
    epoch_.samples += plan.rows(k);
  }

  bool running_sums(EpochSums& out) override {
    if (!epoch_.data) return false;
    out = EpochSums{};
    out.loss_sum = epoch_.loss_sum;
    out.correct = epoch_.correct;
    out.samples = epoch_.samples;
    out.batches = epoch_.next;
    return true;
  }

  EpochSums end_epoch() override {
    EpochSums sums;
    sums.loss_sum = epoch_.loss_sum;
    sums.correct = epoch_.correct;
    epoch_ = Epoch{};
    return sums;
  }

  using Backend::evaluate;
  EvalResult evaluate(const Dataset& data, const ProgressFn& progress) override {
    EvalResult r;
    double loss_sum = 0;
    unsigned long long correct = 0;
    const std::size_t px = static_cast<std::size_t>(data.pixels());
    for (int first = 0; first < data.count; first += batch_) {
      const int rows = std::min(batch_, data.count - first);
      cpu::u8_to_unit(data.image(first), x_.data(), rows * px);
      net_.forward(x_.data(), rows);
      const std::uint8_t* labels = data.labels.data() + first;
      net_.loss(labels, rows, &loss_sum, &correct);
      cpu::confusion_update(net_.output(), labels, rows, net_.spec().outputs, r.confusion.data());
      if (progress) progress(first + rows, data.count);
    }
    r.count = data.count;
    r.loss = data.count ? loss_sum / data.count : 0.0;
    r.acc = data.count ? static_cast<double>(correct) / data.count : 0.0;
    return r;
  }

 private:
  OptimizerConfig opt_;
  int batch_;
  CpuNet<float> net_;
  std::vector<std::uint8_t> staging_;  // (batch, inputs) gathered rows
  std::vector<std::uint8_t> labels_;   // (batch)
  std::vector<float> x_;               // (batch, inputs) in [0, 1]
  std::vector<float> xa_;              // (batch, inputs): x_ deformed (--augment), else empty
  AugmentPlan plan_;                   // the deformations (when xa_ is not empty)
  std::vector<float> s1_, s2_;         // optimizer state (layout.size each, when used)
  long long step_ = 0;
  std::vector<Stage> program_;         // the training step (step_program.hpp)

  // The epoch begun (begin_epoch .. end_epoch).
  struct Epoch {
    const Dataset* data = nullptr;
    const std::vector<std::uint32_t>* order = nullptr;
    float lr = 0.0f;
    long long next = 0;  // the batch the next step trains
    double loss_sum = 0;
    unsigned long long correct = 0;
    long long samples = 0;  // trained in this epoch so far (start's included)
    int number = 0;      // the epoch (1-based): picks its deformations
  } epoch_;
  // --augment: the deformations' threads (as many as OpenBLAS's). Last, so they are stopped
  // before anything their parts read is destroyed.
  std::unique_ptr<RowWorkers> workers_;

  // Layer 0's input in training: the deformed batch when deforming.
  const float* train_input() const { return xa_.empty() ? x_.data() : xa_.data(); }

  // The step program's stages on the CPU, eagerly, for one batch.
  struct Step {
    CpuBackend& b;
    const std::uint32_t* idx;
    int rows;
    void input() {
      const Dataset& d = *b.epoch_.data;
      gather_rows(d.images.data(), d.labels.data(), d.pixels(), idx, rows, b.staging_.data(), b.labels_.data());
      cpu::u8_to_unit(b.staging_.data(), b.x_.data(), static_cast<std::size_t>(rows) * d.pixels());
      b.net_.begin(b.step_ + 1);
    }
    void augment() {
      cpu::augment(b.x_.data(), b.xa_.data(), rows, b.plan_, idx, b.labels_.data(), b.epoch_.number, *b.workers_);
    }
    void forward(int layer) { b.net_.forward_layer(b.train_input(), rows, static_cast<std::size_t>(layer)); }
    void loss() { b.net_.loss_gradient(b.labels_.data(), rows, &b.epoch_.loss_sum, &b.epoch_.correct); }
    void backward(int layer) { b.net_.backward_layer(b.train_input(), rows, static_cast<std::size_t>(layer)); }
    void grad_hook() {}
    void update() {
      const ParamLayout& layout = b.net_.layout();
      ++b.step_;
      const OptimStep s = make_optim_step(b.opt_, b.epoch_.lr, b.step_);
      cpu::optimizer_update(s, b.net_.params().data(), b.net_.grads().data(), b.s1_.empty() ? nullptr : b.s1_.data(),
                            b.s2_.empty() ? nullptr : b.s2_.data(), layout.size, layout.n_weights);
      // Max-norm on each hidden layer's rows (its units' incoming weights), after the update.
      if (b.opt_.max_norm > 0)
        for (std::size_t li = 0; li + 1 < layout.layers.size(); ++li) {
          const LayerView& l = layout.layers[li];
          cpu::max_norm(b.net_.params().data() + l.w, l.out, l.in, b.opt_.max_norm);
        }
    }
  };
};

}  // namespace

void check_state(const TrainState& st, OptimizerKind kind, std::size_t n) {
  const std::vector<std::string> names = optimizer_state_names(kind);
  bool ok = st.params.size() == n && st.optimizer.size() == names.size();
  for (std::size_t i = 0; ok && i < names.size(); ++i)
    ok = st.optimizer[i].name == names[i] && st.optimizer[i].values.size() == n;
  if (!ok) throw Error("set_state: the state does not match this model and optimizer");
}

void check_backend_model(const ModelSpec& spec) {
  if (spec.outputs != kClasses)
    throw Error("the model has " + std::to_string(spec.outputs) + " outputs; training and scoring MNIST need " +
                std::to_string(kClasses) + " (one per digit)");
}

std::unique_ptr<Backend> make_cpu_backend(const ModelSpec& spec, const OptimizerConfig& opt,
                                          int batch, std::uint64_t seed, const AugmentConfig& augment,
                                          int augment_threads) {
  check_backend_model(spec);
  return std::make_unique<CpuBackend>(spec, opt, batch, seed, augment,
                                      augment_threads > 0 ? augment_threads : cpu_worker_threads());
}

}  // namespace mnist_gpu
