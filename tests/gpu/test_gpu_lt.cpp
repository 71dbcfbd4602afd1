// The cuBLASLt path (--gemm cublaslt) and --precision against the CPU: each fused layer
// (forward RELU_AUX_BIAS, output BIAS, backward DRELU_BGRAD with the lower bias gradient, weight
// product with BGRADB, plain products beside the separate activation and dropout kernels) run
// through GpuNet and compared with CpuNet at the same precision, which is the composition of the
// existing CPU ops on rounded operands (precision.hpp), at the dense shapes the op tests use and
// ragged batches; the BF16 conversion against round_bf16; the captured step's kernel count.
// Skipped where no usable GPU exists. None of this has run on a GPU yet.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "gpu_net.hpp"
#include "gpu_ops.hpp"
#include "gpu_test_util.hpp"
#include "lt_gemm.hpp"
#include "step_table.hpp"
#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/precision.hpp"
#include "mnist_gpu/train.hpp"
#include "mnist_gpu/verify.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
using namespace mnist_gpu::test;

namespace {

const Precision kPrecisions[] = {Precision::fp32, Precision::tf32, Precision::bf16};

// (inputs, hidden, outputs) of a one-hidden-layer net: the dense shapes of test_gpu_ops.cpp
// (784 -> 512 -> 10 is the default model's first and last layer; 33, 36 and 10 are ragged
// widths, 36 rows of ReLU mask sit in one 128-bit column of the mask). The biases follow all the
// weights in one buffer, so the widths decide their alignment: with 36 hidden units every bias
// is 16-byte aligned and every epilogue fuses; 784-33-10's biases are 8 and 4 bytes aligned, so
// its fused products fall back to the separate kernels (lt_epilogue_aligned).
struct NetShape {
  int in, hidden, out;
};
const std::vector<NetShape> kNetShapes{{784, 512, 10}, {33, 36, 10}, {784, 256, 33}, {784, 36, 10}, {784, 33, 10}};
const std::vector<int> kBatches{1, 7, 96, 257};

// A cuBLASLt context of the test's own: the handle and a workspace for the test's stream.
class GpuLt : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    handle_ = gpu::LtHandle::make();
    workspace_ = gpu::DeviceBuffer<unsigned char>(gpu::kLtWorkspaceBytes);
  }
  gpu::LtContext lt() const { return {handle_.get(), workspace_.get(), workspace_.bytes()}; }

 private:
  gpu::DeviceBuffer<unsigned char> workspace_;
  gpu::LtHandle handle_;
};

// Parameters whose hidden pre-activations are exact floats on both sides at every precision, and
// never 0 (so no ReLU decision depends on rounding or on how the mask treats 0): inputs k/4,
// weights k/64 with |k| <= 3 (exact in BF16 and TF32), so layer 0's products lie on a grid of
// 2^-8 and layer l's on 2^-(8 + 7l) (a BF16-rounded activation stays on its grid), and layer l's
// bias is an odd multiple of half that grid, 2^-(9 + 7l). The sums stay far below 2^24 grid
// steps, so every order gives the same float; the delta and the gradients differ by rounding only.
std::vector<float> exact_params(const ParamLayout& layout, Rng& rng) {
  std::vector<float> p(layout.size);
  for (std::size_t li = 0; li < layout.layers.size(); ++li) {
    const LayerView& l = layout.layers[li];
    for (std::size_t i = 0; i < static_cast<std::size_t>(l.in) * l.out; ++i)
      p[l.w + i] = static_cast<float>(static_cast<int>(rng.below(7)) - 3) / 64.0f;
    const float grid = std::ldexp(1.0f, -(9 + 7 * static_cast<int>(li)));
    for (int i = 0; i < l.out; ++i)
      p[l.b + static_cast<std::size_t>(i)] = static_cast<float>(2 * (static_cast<int>(rng.below(17)) - 8) + 1) * grid;
  }
  return p;
}

std::vector<float> exact_inputs(std::size_t n, Rng& rng) {
  std::vector<float> x(n);
  for (float& v : x) v = static_cast<float>(rng.below(5)) / 4.0f;
  return x;
}

// One training pass (forward, loss gradient, backward) of `spec` on GpuNet (cuBLASLt) and CpuNet
// at spec.precision from the same parameters and batch; outputs and every gradient compared
// under the precision's step tolerance. `dropout` / `input_dropout` > 0: the step-1 masks on both sides.
void compare_pass(const ModelSpec& spec, int batch, const gpu::LtContext& lt, cudaStream_t s, cublasHandle_t cublas,
                  std::uint64_t seed, float dropout = 0.0f, float input_dropout = 0.0f) {
  CpuNet<float> cnet(spec, batch, dropout, seed, input_dropout);
  gpu::GpuNet gnet(spec, batch, s, cublas, dropout, seed, input_dropout, lt);
  ASSERT_TRUE(gnet.lt_path());
  Rng rng(seed);
  cnet.params() = exact_params(cnet.layout(), rng);
  upload_to(gnet.params(), cnet.params(), s);
  const std::vector<float> x = exact_inputs(static_cast<std::size_t>(batch) * spec.inputs, rng);
  std::vector<std::uint8_t> labels(static_cast<std::size_t>(batch));
  for (auto& l : labels) l = static_cast<std::uint8_t>(rng.below(static_cast<std::uint64_t>(spec.outputs)));
  auto d_x = upload(x, s);
  auto d_labels = upload(labels, s);
  gpu::DeviceBuffer<double> d_loss(1);
  gpu::DeviceBuffer<unsigned long long> d_correct(1);
  CUDA_CHECK(cudaMemsetAsync(d_loss.get(), 0, sizeof(double), s));
  CUDA_CHECK(cudaMemsetAsync(d_correct.get(), 0, sizeof(unsigned long long), s));
  OptimizerConfig opt;
  gpu::StepTable steps(1);
  steps.load({gpu::step_row(1, 0, make_optim_step(opt, opt.lr, 1))}, 0, s);

  // NaN in every output first: an epilogue that accumulated into the bias gradient (or a
  // gradient nobody wrote) shows.
  poison(gnet.grads(), cnet.layout().size, s);
  gnet.forward(d_x.get(), batch, steps.ref());
  const std::size_t n_out = static_cast<std::size_t>(batch) * spec.outputs;
  const std::vector<float> g_out = gpu::download(gnet.output(), n_out, s);
  gnet.backward(d_x.get(), d_labels.get(), batch, d_loss.get(), d_correct.get());
  double c_loss = 0;
  unsigned long long c_correct = 0;
  cnet.forward(x.data(), batch, 1);
  const Tolerance& tol = step_tolerance(spec.precision);
  EXPECT_TRUE(matches("outputs", g_out, std::vector<float>(cnet.output(), cnet.output() + n_out), tol,
                      static_cast<std::size_t>(spec.outputs)));
  cnet.backward(x.data(), labels.data(), batch, &c_loss, &c_correct);
  // For the diagnosis of a GPU run: the products that fell back to separate kernels.
  for (const std::string& plan : gnet.lt_plans())
    if (plan.find("fallback") != std::string::npos) std::cout << "[ cuBLASLt ] " << plan << "\n";
  const std::vector<float> g = gpu::download(gnet.grads(), cnet.layout().size, s);
  for (std::size_t li = 0; li < cnet.layout().layers.size(); ++li) {
    const LayerView& l = cnet.layout().layers[li];
    const std::size_t nw = static_cast<std::size_t>(l.in) * l.out;
    EXPECT_TRUE(matches("grad W" + std::to_string(li + 1), std::vector<float>(g.begin() + l.w, g.begin() + l.w + nw),
                        std::vector<float>(cnet.grads().begin() + l.w, cnet.grads().begin() + l.w + nw), tol,
                        static_cast<std::size_t>(l.in)));
    EXPECT_TRUE(matches("grad b" + std::to_string(li + 1),
                        std::vector<float>(g.begin() + l.b, g.begin() + l.b + l.out),
                        std::vector<float>(cnet.grads().begin() + l.b, cnet.grads().begin() + l.b + l.out), tol,
                        static_cast<std::size_t>(l.out)));
  }
}

}  // namespace

// Host-only (runs without a GPU): a fused epilogue is planned only where the bias (or bias
// gradient) and the ReLU mask are at least 16-byte aligned (lt_gemm.hpp); odd widths put a bias
// at 4 or 8 bytes, and such a layer takes the plain product and the separate kernels.
TEST(LtEpilogueAlignment, FusedOnlyWithSixteenByteBiasAndMask) {
  alignas(256) static float buffer[64];
  EXPECT_EQ(gpu::ptr_alignment(buffer), 256);
  EXPECT_EQ(gpu::ptr_alignment(buffer + 1), 4);
  EXPECT_EQ(gpu::ptr_alignment(buffer + 2), 8);
  EXPECT_EQ(gpu::ptr_alignment(buffer + 4), 16);
  EXPECT_EQ(gpu::ptr_alignment(nullptr), 256);
  gpu::LtShape s = gpu::packed_shape(33, 7, 33, true, false, Precision::fp32);
  EXPECT_TRUE(gpu::lt_epilogue_aligned(s)) << "a plain product has no bias";
  s.align_bias = 4;
  EXPECT_TRUE(gpu::lt_epilogue_aligned(s));
  for (gpu::LtEpilogue e : {gpu::LtEpilogue::bias, gpu::LtEpilogue::relu_aux_bias, gpu::LtEpilogue::drelu_bgrad,
                            gpu::LtEpilogue::bgradb}) {
    SCOPED_TRACE(gpu::to_string(e));
    s.epilogue = e;
    s.align_aux = 256;
    for (int a : {4, 8}) {
      s.align_bias = a;
      EXPECT_FALSE(gpu::lt_epilogue_aligned(s)) << "bias at " << a;
    }
    for (int a : {16, 256}) {
      s.align_bias = a;
      EXPECT_TRUE(gpu::lt_epilogue_aligned(s)) << "bias at " << a;
    }
    s.align_aux = 8;  // only the epilogues with a mask read it
    const bool aux = e == gpu::LtEpilogue::relu_aux_bias || e == gpu::LtEpilogue::drelu_bgrad;
    EXPECT_EQ(gpu::lt_epilogue_aligned(s), !aux);
  }
}

// ReLU: forward RELU_AUX_BIAS then BIAS; backward BGRADB (output layer), DRELU_BGRAD (the hidden
// layer's ReLU and bias gradient), and the first layer's plain weight product.
TEST_F(GpuLt, FusedReluLayersMatchTheCpuCompositionAtEveryPrecision) {
  std::uint64_t seed = 11;
  for (Precision p : kPrecisions)
    for (const NetShape& sh : kNetShapes)
      for (int batch : kBatches) {
        SCOPED_TRACE(std::string(to_string(p)) + " " + std::to_string(sh.in) + "-" + std::to_string(sh.hidden) + "-" +
                     std::to_string(sh.out) + " batch " + std::to_string(batch));
        ModelSpec spec;
        spec.inputs = sh.in;
        spec.hidden = {sh.hidden};
        spec.outputs = sh.out;
        spec.precision = p;
        compare_pass(spec, batch, lt(), stream(), cublas(), ++seed);
      }
}

// Two hidden layers: a DRELU_BGRAD whose mask and bias gradient belong to a layer that is itself
// fed by a ReLU layer (784-512-256-10, the default model), l2 loss too.
TEST_F(GpuLt, DefaultModelMatchesTheCpuAtEveryPrecision) {
  for (Precision p : kPrecisions)
    for (Loss loss : {Loss::xent, Loss::l2})
      for (int batch : {96, 257}) {
        SCOPED_TRACE(std::string(to_string(p)) + " " + to_string(loss) + " batch " + std::to_string(batch));
        ModelSpec spec;
        spec.loss = loss;
        spec.precision = p;
        compare_pass(spec, batch, lt(), stream(), cublas(), 40 + batch);
      }
}

// Sigmoid, tanh, gelu: plain products beside their bias + activation kernels, every bias
// gradient from BGRADB (bias_grad at bf16).
TEST_F(GpuLt, OtherActivationsKeepTheirKernelsAndMatchTheCpu) {
  for (Precision p : kPrecisions)
    for (Activation act : {Activation::sigmoid, Activation::tanh, Activation::gelu})
      for (int batch : {1, 96}) {
        SCOPED_TRACE(std::string(to_string(p)) + " " + to_string(act) + " batch " + std::to_string(batch));
        ModelSpec spec;
        spec.inputs = 784;
        spec.hidden = {36, 40};  // every bias 16-byte aligned: BGRADB may fuse
        spec.activation = act;
        spec.precision = p;
        compare_pass(spec, batch, lt(), stream(), cublas(), 70 + batch);
      }
}

// ReLU with dropout: the data product stays plain (dropout sits between it and ReLU's backward),
// the bias gradients come from BGRADB.
TEST_F(GpuLt, ReluWithDropoutMatchesTheCpu) {
  for (Precision p : kPrecisions) {
    SCOPED_TRACE(to_string(p));
    ModelSpec spec;
    spec.hidden = {96, 40};
    spec.precision = p;
    // p = 0.5: the kept activations are doubled exactly, so layer 1's ReLU decisions stay exact.
    compare_pass(spec, 96, lt(), stream(), cublas(), 90, 0.5f);
    // Input dropout (Srivastava's recipe) on the fused path: the masked input feeds the first
    // product and its weight gradient. p = 0.5 doubles kept pixels exactly.
    compare_pass(spec, 96, lt(), stream(), cublas(), 91, 0.5f, 0.5f);
  }
}

// An empty batch defines the gradients (zeros), as the cuBLAS path does.
TEST_F(GpuLt, EmptyBatchGivesZeroGradients) {
  ModelSpec spec;
  spec.inputs = 33;
  spec.hidden = {33};
  gpu::GpuNet net(spec, 8, stream(), cublas(), 0.0f, 0, 0.0f, lt());
  poison(net.grads(), net.layout().size, stream());
  gpu::DeviceBuffer<float> x(8 * 33);
  gpu::DeviceBuffer<std::uint8_t> labels(8);
  gpu::DeviceBuffer<double> loss(1);
  gpu::DeviceBuffer<unsigned long long> correct(1);
  net.forward(x.get(), 0);
  net.backward(x.get(), labels.get(), 0, loss.get(), correct.get());
  const std::vector<float> g = gpu::download(net.grads(), net.layout().size, stream());
  for (float v : g) ASSERT_EQ(v, 0.0f);
}

// The BF16 copies round as the CPU's round_bf16: ties to even, NaN and infinities kept.
TEST_F(GpuLt, Bf16ConversionRoundsAsTheCpu) {
  std::vector<float> v{1.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -1.0f / 3.0f, 3.14159265f,
                       std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity(), 1e-42f, 0.0f, -0.0f};
  Rng rng(3);
  for (int i = 0; i < 4099; ++i) v.push_back(static_cast<float>(rng.uniform() * 8.0 - 4.0));
  auto d_v = upload(v, stream());
  gpu::DeviceBuffer<std::uint16_t> d_b(v.size());
  gpu::to_bf16(d_v.get(), d_b.get(), v.size(), stream());
  const std::vector<std::uint16_t> b = gpu::download(d_b, stream());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const float want = round_bf16(v[i]);
    std::uint32_t wb;
    std::memcpy(&wb, &want, sizeof wb);
    ASSERT_EQ(b[i], static_cast<std::uint16_t>(wb >> 16)) << "element " << i << " = " << v[i];
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto d_nan = upload(std::vector<float>{nan}, stream());
  gpu::to_bf16(d_nan.get(), d_b.get(), 1, stream());
  const std::uint16_t nb = gpu::download(d_b, stream())[0];
  EXPECT_EQ(nb & 0x7F80u, 0x7F80u);
  EXPECT_NE(nb & 0x007Fu, 0u);
}

// The captured step of relu + xent + momentum, 784-512-256-10 at batch 256, on cuBLASLt at fp32
// and tf32: input, 3 fused forward products, the loss, 5 backward products (2 with DRELU_BGRAD,
// 1 with BGRADB), the update and the step table's cursor advance: 12 kernels when every fused
// epilogue has an algorithm and none adds a split-K reduction, which is the target (at
// most 12). Whether it is met is cuBLASLt's choice of algorithms on the GPU at hand, a result to
// measure (gpu-check's bench rows report kernels_per_step), not a premise: the test checks the
// count is not below the step's stages and records it (the kernels_per_step_fp32 and _tf32
// properties of the test's XML, and a line on stdout). --autotune off: the heuristic's choice (without split-K
// where it offers one), and no cache file written by a test.
TEST(GpuLtStep, CapturedLtStepKernelCountIsRecorded) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  const MnistFiles f = load_mnist_dir(data_dir());
  std::vector<std::uint32_t> idx(1024);
  std::iota(idx.begin(), idx.end(), 0u);
  const Dataset d = subset(f.train, idx);
  for (Precision p : {Precision::fp32, Precision::tf32}) {
    SCOPED_TRACE(to_string(p));
    ModelSpec spec;
    spec.precision = p;
    OptimizerConfig opt;
    opt.kind = OptimizerKind::momentum;
    opt.lr = 0.05f;
    CudaConfig cuda{DataPath::resident, true};
    cuda.gemm = GemmPath::cublaslt;
    cuda.autotune = false;
    auto backend = make_cuda_backend(spec, opt, 256, 1, cuda);
    run_epoch(*backend, d, epoch_order(1, 1, d.count), opt.lr);
    const int kernels = backend->kernels_per_step();
    EXPECT_GE(kernels, 12) << "fewer kernels than the step has stages: a wrong count";
    ::testing::Test::RecordProperty(std::string("kernels_per_step_") + to_string(p), kernels);
    std::printf("GpuLtStep %s: %d kernels per step (target: at most 12)\n", to_string(p), kernels);
  }
}

// A few epochs at each precision on cuBLASLt still learn (the training loop end to end).
TEST(GpuLtStep, EveryPrecisionLearnsOnCublasLt) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  const MnistFiles f = load_mnist_dir(data_dir());
  std::vector<std::uint32_t> idx(10000);
  std::iota(idx.begin(), idx.end(), 0u);
  const Dataset tr = subset(f.train, idx);
  for (Precision p : kPrecisions) {
    SCOPED_TRACE(to_string(p));
    ModelSpec spec;
    spec.precision = p;
    OptimizerConfig opt;
    CudaConfig cuda;
    cuda.gemm = GemmPath::cublaslt;
    auto backend = make_cuda_backend(spec, opt, 128, 1, cuda);
    for (int e = 1; e <= 2; ++e) run_epoch(*backend, tr, epoch_order(1, e, tr.count), opt.lr);
    EXPECT_GE(backend->evaluate(f.test).acc, 0.93);
  }
}
