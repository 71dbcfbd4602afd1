// The CUDA backend's step graph and data paths: replaying a step captured once (its per-step
// values read from the step table) must train exactly as launching it kernel by kernel, and the
// resident data path exactly as the streamed one; a captured graph reads a new row of the step
// table on each replay; the kernel count of a captured step is that of the ops it holds. Skipped
// where no usable GPU exists.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "cuda_resources.hpp"
#include "gpu_ops.hpp"
#include "gpu_test_util.hpp"
#include "step_table.hpp"
#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/bench.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/train.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
using namespace mnist_gpu::test;

namespace {

// 1,000 and 1,300 training images: at batch 128 an epoch is 7 full batches and a partial one of
// 104 (1,000) or 10 full and one of 20 (1,300): both paths (graph and kernel by kernel) in one epoch.
struct SmallSets {
  Dataset a, b;
};

const SmallSets& small_sets() {
  static const SmallSets sets = [] {
    const MnistFiles f = load_mnist_dir(data_dir());
    std::vector<std::uint32_t> ia(1000), ib(1300);
    std::iota(ia.begin(), ia.end(), 0u);
    std::iota(ib.begin(), ib.end(), 20000u);
    return SmallSets{subset(f.train, ia), subset(f.train, ib)};
  }();
  return sets;
}

struct Variant {
  OptimizerKind optimizer;
  float dropout;
  AugmentKind augment = AugmentKind::none;
};

std::string name_of(const Variant& v) {
  return std::string(to_string(v.optimizer)) + (v.dropout > 0 ? "_dropout" : "") +
         (v.augment != AugmentKind::none ? std::string("_augment_") + to_string(v.augment) : "");
}

class GpuStepGraph : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override { MNIST_GPU_SKIP_WITHOUT_GPU(); }
};

struct TrainedRun {
  TrainState state;
  std::vector<EpochSums> sums;
  int kernels = 0;
};

// Three epochs: set a at rate 0.5 lr, set a reshuffled at lr, then set b (a different dataset:
// the resident copy and its graph are replaced) at 0.25 lr.
TrainedRun train_three_epochs(const Variant& v, const CudaConfig& cuda) {
  ModelSpec spec;
  spec.hidden = {96, 40};
  OptimizerConfig opt;
  opt.kind = v.optimizer;
  opt.lr = default_lr(v.optimizer);
  opt.dropout = v.dropout;
  opt.l2 = 1e-4f;
  auto backend = make_cuda_backend(spec, opt, 128, 5, cuda, augment_preset(v.augment));
  const SmallSets& s = small_sets();
  TrainedRun r;
  const std::vector<std::uint32_t> o1 = epoch_order(5, 1, s.a.count), o2 = epoch_order(5, 2, s.a.count),
                                   o3 = epoch_order(5, 3, s.b.count);
  EpochControl ctl;  // the epoch number picks the deformations
  ctl.epoch = 1;
  r.sums.push_back(run_epoch(*backend, s.a, o1, 0.5f * opt.lr, ctl));
  ctl.epoch = 2;
  r.sums.push_back(run_epoch(*backend, s.a, o2, opt.lr, ctl));
  ctl.epoch = 3;
  r.sums.push_back(run_epoch(*backend, s.b, o3, 0.25f * opt.lr, ctl));
  r.state = backend->get_state();
  r.kernels = backend->kernels_per_step();
  return r;
}

}  // namespace

// The same kernels with the same arguments in the same order: the parameters and optimizer state
// must agree bit for bit, whichever way the step is launched and the batch arrives. (The loss sums
// are accumulated with atomics, whose order varies: those agree to rounding.)
TEST_P(GpuStepGraph, ReplayTrainsExactlyAsKernelByKernelOnBothDataPaths) {
  const Variant v = GetParam();
  const TrainedRun ref = train_three_epochs(v, CudaConfig{DataPath::streamed, false});
  EXPECT_EQ(ref.kernels, 0) << "no graph was asked for";
  for (const CudaConfig cuda : {CudaConfig{DataPath::streamed, true}, CudaConfig{DataPath::resident, false},
                                CudaConfig{DataPath::resident, true}}) {
    SCOPED_TRACE(std::string(to_string(cuda.data)) + (cuda.graph ? " graph" : " kernel by kernel"));
    const TrainedRun got = train_three_epochs(v, cuda);
    if (cuda.graph) EXPECT_GT(got.kernels, 0);
    else EXPECT_EQ(got.kernels, 0);
    EXPECT_EQ(got.state.step, ref.state.step);
    EXPECT_EQ(got.state.params, ref.state.params);
    EXPECT_EQ(got.state.optimizer, ref.state.optimizer);
    ASSERT_EQ(got.sums.size(), ref.sums.size());
    for (std::size_t e = 0; e < ref.sums.size(); ++e) {
      EXPECT_EQ(got.sums[e].samples, ref.sums[e].samples);
      EXPECT_EQ(got.sums[e].batches, ref.sums[e].batches);
      EXPECT_EQ(got.sums[e].correct, ref.sums[e].correct);
      EXPECT_NEAR(got.sums[e].loss_sum, ref.sums[e].loss_sum, 1e-9 * ref.sums[e].loss_sum);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Optimizers, GpuStepGraph,
                         ::testing::Values(Variant{OptimizerKind::sgd, 0.0f}, Variant{OptimizerKind::momentum, 0.0f},
                                           Variant{OptimizerKind::adam, 0.0f}, Variant{OptimizerKind::adam, 0.3f},
                                           Variant{OptimizerKind::momentum, 0.5f},
                                           Variant{OptimizerKind::adam, 0.0f, AugmentKind::ciresan}),
                         [](const ::testing::TestParamInfo<Variant>& i) { return name_of(i.param); });

// Deforming training images on the GPU (graph and kernel by kernel, both data paths) trains as the
// CPU backend does from the same start: one epoch of 7 full batches and a partial one, SGD, the
// parameters within the step tolerance.
TEST(GpuAugment, DeformedEpochTrainsAsOnTheCpu) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  ModelSpec spec;
  spec.hidden = {32};
  // tanh, not relu: no threshold where a rounding difference in a pre-activation flips a unit
  // (one flip moves a row of the first layer's gradient far past kTolStep).
  spec.activation = Activation::tanh;
  OptimizerConfig opt;
  opt.kind = OptimizerKind::sgd;
  opt.lr = 0.1f;
  const AugmentConfig aug = augment_preset(AugmentKind::ciresan);
  const SmallSets& s = small_sets();
  const std::vector<std::uint32_t> order = epoch_order(5, 4, s.a.count);
  EpochControl ctl;
  ctl.epoch = 4;
  auto cpu = make_cpu_backend(spec, opt, 128, 5, aug);
  const EpochSums want = run_epoch(*cpu, s.a, order, opt.lr, ctl);
  const std::vector<float> want_params = cpu->get_params();
  auto plain = make_cpu_backend(spec, opt, 128, 5);
  run_epoch(*plain, s.a, order, opt.lr, ctl);
  ASSERT_FALSE(matches("params after a plain epoch", plain->get_params(), want_params, kTolStep))
      << "the deformations must change the parameters by more than the GPU-vs-CPU tolerance";
  for (const CudaConfig cuda : {CudaConfig{DataPath::streamed, true}, CudaConfig{DataPath::resident, true},
                                CudaConfig{DataPath::streamed, false}}) {
    SCOPED_TRACE(std::string(to_string(cuda.data)) + (cuda.graph ? " graph" : " kernel by kernel"));
    auto gpu = make_cuda_backend(spec, opt, 128, 5, cuda, aug);
    const EpochSums got = run_epoch(*gpu, s.a, order, opt.lr, ctl);
    EXPECT_TRUE(matches("params after a deformed epoch", gpu->get_params(), want_params, kTolStep));
    EXPECT_NEAR(got.loss_sum, want.loss_sum, 1e-4 * want.loss_sum);
  }
}

// A graph captured once and never edited reads its step's row of the step table on every replay:
// a captured dropout (and the cursor's advance), launched three times over rows for steps 2, 3 and
// 1000000, equals the CPU's mask of each step in turn.
TEST(GpuStepTable, CapturedGraphReadsTheNextRowOnEachReplay) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  CUDA_CHECK(cudaSetDevice(0));
  gpu::Stream stream;
  Rng rng = test_rng(40);
  const std::size_t n = 4097;
  const std::vector<float> a = uniform(rng, n, -2, 2);
  auto d_a = upload(a, stream.get());
  gpu::DeviceBuffer<float> d_out(n);
  const DropoutLayer layer = make_dropout_layer(0.5f, 9, 0);
  const std::vector<long long> steps_run{2, 3, 1000000};
  gpu::StepTable steps(steps_run.size());
  std::vector<gpu::StepScalars> rows;
  for (long long t : steps_run) rows.push_back(gpu::StepScalars{t, 0});
  steps.load(rows, 0, stream.get());
  // Launch each kernel once outside the capture (so that lazy module loading never happens
  // inside it, as the backend's eager first step does), at row 0; then back to row 0.
  gpu::dropout_forward(d_a.get(), d_out.get(), n, layer, steps.ref(), stream.get());
  steps.advance(stream.get());
  steps.load(rows, 0, stream.get());
  gpu::Capture capture(stream.get());
  gpu::dropout_forward(d_a.get(), d_out.get(), n, layer, steps.ref(), stream.get());
  steps.advance(stream.get());
  const gpu::Graph graph = capture.finish();
  EXPECT_EQ(graph.kernel_nodes(), 2u);
  for (long long t : steps_run) {
    poison(d_out, stream.get());
    graph.launch(stream.get());
    std::vector<float> want(n);
    cpu::dropout_forward<float>(a.data(), want.data(), n, make_dropout_mask(0.5f, 9, t, 0));
    EXPECT_TRUE(matches("dropout of step " + std::to_string(t) + " from the graph", download(d_out, stream.get()),
                        want, kTolExact));
  }
}

// The captured step of 784-512-256-10 holds our 12 kernels (input conversion, 3 bias+activation,
// softmax cross-entropy, 3 bias gradients, 2 activation gradients, the update, the step table's
// cursor advance) and cuBLAS's for
// the 8 GEMMs (3 forward, 3 weight, 2 data gradients), at least one each. How many cuBLAS uses
// per GEMM is its own choice, but the same for the same shapes: so dropout on the two hidden
// layers adds exactly 4 (2 forward, 2 backward), and the resident path's gather replaces the
// conversion one for one.
TEST(GpuGraphNode, CapturedStepCountsItsKernels) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  const MnistFiles f = load_mnist_dir(data_dir());
  std::vector<std::uint32_t> idx(1024);
  std::iota(idx.begin(), idx.end(), 0u);
  const Dataset d = subset(f.train, idx);
  int count[2][2] = {};  // [dropout][resident]
  for (const int dropping : {0, 1})
    for (const int resident : {0, 1}) {
      SCOPED_TRACE(std::string(resident ? "resident" : "streamed") + (dropping ? " dropout" : ""));
      OptimizerConfig opt;
      opt.kind = OptimizerKind::sgd;
      opt.lr = 0.1f;
      opt.dropout = dropping ? 0.2f : 0.0f;
      auto backend = make_cuda_backend(ModelSpec{}, opt, 256, 1,
                                       CudaConfig{resident ? DataPath::resident : DataPath::streamed, true});
      EXPECT_EQ(backend->kernels_per_step(), 0) << "nothing captured before training";
      const std::vector<std::uint32_t> order = epoch_order(1, 1, d.count);
      run_epoch(*backend, d, order, opt.lr);
      count[dropping][resident] = backend->kernels_per_step();
      EXPECT_GE(count[dropping][resident], 12 + 4 * dropping + 8);
    }
  EXPECT_EQ(count[1][0], count[0][0] + 4);
  EXPECT_EQ(count[1][1], count[0][1] + 4);
  EXPECT_EQ(count[0][1], count[0][0]);
}

// `bench` on the GPU: a row per (data path, graph) variant and batch, graph rows with their count.
TEST(GpuGraphNode, BenchMeasuresEveryVariant) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  const SmallSets& s = small_sets();
  BenchConfig cfg;
  cfg.model.hidden = {32};
  cfg.batches = {64, 100};
  cfg.samples_per_point = 1000;
  cfg.devices = {DeviceChoice::cuda};
  cfg.cuda_variants = {CudaConfig{DataPath::streamed, true}, CudaConfig{DataPath::streamed, false},
                       CudaConfig{DataPath::resident, true}, CudaConfig{DataPath::resident, false}};
  const BenchResult r = run_bench(cfg, s.a, s.b, nullptr);
  ASSERT_EQ(r.rows.size(), 8u);
  EXPECT_GT(r.gpu_sgemm_gflops, 0.0);
  EXPECT_EQ(r.gpu_ceiling_gflops, r.gpu_sgemm_gflops) << "fp32 rows are set against the SGEMM ceiling";
  // The tensor-core ceilings the tf32 and bf16 rows are set against: measured, finite.
  for (Precision p : {Precision::tf32, Precision::bf16}) {
    const double g = measure_gpu_gemm_gflops(1024, p);
    EXPECT_TRUE(std::isfinite(g) && g > 0) << to_string(p) << ": " << g;
  }
  for (const BenchRow& row : r.rows) {
    SCOPED_TRACE(row.data + (row.graph ? " graph" : "") + " batch " + std::to_string(row.batch));
    EXPECT_EQ(row.device, "cuda");
    EXPECT_GT(row.train_samples_per_s, 0.0);
    if (row.graph) EXPECT_GT(row.kernels_per_step, 0);
    else EXPECT_EQ(row.kernels_per_step, 0);
  }
  EXPECT_EQ(r.rows[0].data, "streamed");
  EXPECT_EQ(r.rows[7].data, "resident");
}
