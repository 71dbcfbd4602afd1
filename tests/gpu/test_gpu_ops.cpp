// Every GPU op of kernels/gpu_ops.hpp against its CPU twin (cpu_ops.hpp, float) on fresh seeded
// inputs: ragged sizes (batch 1, 31, 33, 96 = MNIST's last batch at 256, 257; widths 10, 33, 784),
// extreme values, outputs poisoned with NaN before each launch, the named tolerances of
// compare.hpp, and exact GEMM checks on small integers. Skipped where no usable GPU exists.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "gpu_ops.hpp"
#include "mnist_gpu/augment.hpp"
#include "step_table.hpp"
#include "gpu_test_util.hpp"
#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/batches.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"

using namespace mnist_gpu;
using namespace mnist_gpu::test;

namespace {

class GpuOps : public GpuTest {};

const std::vector<int> kBatches{1, 31, 33, 96, 257};

struct RowShape {
  int batch, width;
};
// (batch, features) of the elementwise and row-wise ops.
const std::vector<RowShape> kRowShapes{{1, 10}, {31, 33}, {33, 784}, {96, 512}, {96, 10}, {257, 33}, {257, 256}};

struct DenseShape {
  int batch, in, out;
};
// (batch, in, out): every layer of the default and small models at ragged batches, and sizes
// that divide no tile.
const std::vector<DenseShape> kDenseShapes{{1, 784, 10},    {31, 33, 10},    {33, 784, 33}, {96, 784, 512},
                                           {257, 512, 256}, {257, 33, 784}, {96, 256, 10}, {128, 64, 32}};

std::string shape_name(const DenseShape& s) {
  return "batch " + std::to_string(s.batch) + " in " + std::to_string(s.in) + " out " + std::to_string(s.out);
}

std::size_t count(int a, int b) { return static_cast<std::size_t>(a) * static_cast<std::size_t>(b); }

// Operands of one dense product C = A . B with inner length k. Floats: A uniform in [-1, 1), B
// uniform in [-1, 1) / sqrt(k), so that partial sums stay O(1) and the reordering error (about
// sqrt(k) * 2^-24 * |partial sum|) sits well inside kTolGemm. Integers: -3..3, whose products
// and sums (|sum| <= 9 * 784 < 2^24) are exact in float in any order, so the check is exact.
struct Operands {
  std::vector<float> a, b;
  Tolerance tol;
};
Operands dense_operands(Rng& rng, std::size_t na, std::size_t nb, int k, bool integers) {
  if (integers) return {small_ints(rng, na, -3, 3), small_ints(rng, nb, -3, 3), kTolExact};
  const double s = 1.0 / std::sqrt(static_cast<double>(k));
  return {uniform(rng, na, -1, 1), uniform(rng, nb, -s, s), kTolGemm};
}

}  // namespace

TEST_F(GpuOps, U8ToUnitIsExact) {
  Rng rng = test_rng(1);
  for (std::size_t n : {std::size_t{1}, std::size_t{31}, std::size_t{33}, count(96, 784), count(257, 784)}) {
    SCOPED_TRACE("n " + std::to_string(n));
    std::vector<std::uint8_t> src = bytes(rng, n);
    src[0] = 255;  // the end points of the range
    if (n > 1) src[n - 1] = 0;
    auto d_src = upload(src, stream());
    gpu::DeviceBuffer<float> d_dst(n);
    poison(d_dst, stream());
    gpu::u8_to_unit(d_src.get(), d_dst.get(), n, stream());
    std::vector<float> want(n);
    cpu::u8_to_unit<float>(src.data(), want.data(), n);
    EXPECT_TRUE(matches("u8_to_unit", download(d_dst, stream()), want, kTolExact));
  }
}

// The resident data path's fused gather + convert against its CPU twin (gather_rows, then
// u8_to_unit): ragged row counts, repeated and extreme indices, a one-pixel image.
TEST_F(GpuOps, GatherU8ToUnitMatchesCpuGatherThenConvert) {
  Rng rng = test_rng(2);
  for (const int pixels : {1, 5, 784}) {
    for (const int rows : {1, 37, 256}) {
      SCOPED_TRACE("pixels " + std::to_string(pixels) + " rows " + std::to_string(rows));
      const int n_images = 300;
      const std::vector<std::uint8_t> images = bytes(rng, count(n_images, pixels));
      const std::vector<std::uint8_t> labels = mnist_gpu::test::labels(rng, n_images, 10);
      std::vector<std::uint32_t> idx(static_cast<std::size_t>(rows));
      for (auto& i : idx) i = static_cast<std::uint32_t>(rng.below(n_images));
      idx[0] = n_images - 1;
      if (rows > 2) idx[1] = 0, idx[2] = 0;
      auto d_images = upload(images, stream());
      auto d_labels = upload(labels, stream());
      // The batch sits at offset 3 of the epoch order, which the kernel reads from its step row.
      std::vector<std::uint32_t> order{7, 7, 7};
      order.insert(order.end(), idx.begin(), idx.end());
      auto d_order = upload(order, stream());
      gpu::StepTable steps;
      steps.load({gpu::StepScalars{1, 3}}, 0, stream());
      gpu::DeviceBuffer<float> d_x(count(rows, pixels));
      gpu::DeviceBuffer<std::uint8_t> d_y(static_cast<std::size_t>(rows));
      poison(d_x, stream());
      poison(d_y, stream());  // 0xFF: never a label
      gpu::gather_u8_to_unit(d_images.get(), d_labels.get(), d_order.get(), rows, pixels, d_x.get(), d_y.get(),
                             steps.ref(), stream());
      std::vector<std::uint8_t> px(count(rows, pixels)), want_y(static_cast<std::size_t>(rows));
      gather_rows(images.data(), labels.data(), pixels, idx.data(), rows, px.data(), want_y.data());
      std::vector<float> want_x(px.size());
      cpu::u8_to_unit<float>(px.data(), want_x.data(), px.size());
      EXPECT_TRUE(matches("gather x", download(d_x, stream()), want_x, kTolExact));
      EXPECT_EQ(download(d_y, stream()), want_y);
    }
  }
}

// The deformations (augment.hpp) of ragged batches against the CPU twin, each preset and an extreme
// elastic field, with the batch at an offset of the epoch order read from the step row together
// with the epoch; and every parameter 0 is the identity, bit for bit, on the GPU too.
TEST_F(GpuOps, AugmentMatchesCpuOnRaggedBatches) {
  Rng rng = test_rng(21);
  for (const int rows : {1, 7, 96, 257}) {
    const std::vector<float> in = uniform(rng, count(rows, kAugmentPixels), 0, 1);
    const std::vector<std::uint8_t> lab = mnist_gpu::test::labels(rng, static_cast<std::size_t>(rows), 10);
    std::vector<std::uint32_t> idx(static_cast<std::size_t>(rows));
    for (auto& i : idx) i = static_cast<std::uint32_t>(rng.below(60000));
    std::vector<std::uint32_t> order{11, 12, 13, 14, 15};  // the batch sits at offset 5
    order.insert(order.end(), idx.begin(), idx.end());
    auto d_in = upload(in, stream());
    auto d_lab = upload(lab, stream());
    auto d_order = upload(order, stream());
    gpu::DeviceBuffer<float> d_out(in.size());
    AugmentConfig zero;
    zero.kind = AugmentKind::ciresan;
    AugmentConfig wild = augment_preset(AugmentKind::ciresan);
    wild.alpha = 1000.0f;
    wild.rotate = 180.0f;
    for (const AugmentConfig& a : {augment_preset(AugmentKind::affine), augment_preset(AugmentKind::elastic),
                                   augment_preset(AugmentKind::ciresan), wild, zero}) {
      for (const long long epoch : {1LL, 7LL}) {
        SCOPED_TRACE("rows " + std::to_string(rows) + " " + to_string(a.kind) + " alpha " + std::to_string(a.alpha) +
                     " epoch " + std::to_string(epoch));
        const AugmentPlan plan = make_augment_plan(a, 99);
        gpu::StepTable steps;
        steps.load({gpu::step_row(3, 5, OptimStep{}, epoch)}, 0, stream());
        poison(d_out, stream());
        gpu::augment(d_in.get(), d_out.get(), rows, plan, d_order.get(), d_lab.get(), steps.ref(), stream());
        std::vector<float> want(in.size());
        cpu::augment(in.data(), want.data(), rows, plan, idx.data(), lab.data(), epoch);
        const std::vector<float> got = download(d_out, stream());
        const bool identity = a.rotate == 0 && a.alpha == 0;
        EXPECT_TRUE(matches("augment", got, identity ? in : want, identity ? kTolExact : kTolAugment));
        for (float v : got) ASSERT_TRUE(v >= 0.0f && v <= 1.0f) << v;
      }
    }
  }
  EXPECT_THROW(gpu::augment(nullptr, nullptr, -1, AugmentPlan{}, nullptr, nullptr, gpu::StepRef{}, stream()), Error);
}

TEST_F(GpuOps, DenseForwardMatchesCpu) {
  Rng rng = test_rng(2);
  for (const DenseShape& s : kDenseShapes) {
    for (bool integers : {false, true}) {
      SCOPED_TRACE(shape_name(s) + (integers ? " small integers" : " floats"));
      // y (batch, out) = x (batch, in) . w^T, w (out, in): inner length in.
      const Operands op = dense_operands(rng, count(s.batch, s.in), count(s.out, s.in), s.in, integers);
      auto d_x = upload(op.a, stream());
      auto d_w = upload(op.b, stream());
      gpu::DeviceBuffer<float> d_y(count(s.batch, s.out));
      poison(d_y, stream());
      gpu::dense_forward(d_x.get(), d_w.get(), d_y.get(), s.batch, s.in, s.out, cublas());
      std::vector<float> want(d_y.size());
      cpu::dense_forward<float>(op.a.data(), op.b.data(), want.data(), s.batch, s.in, s.out);
      EXPECT_TRUE(matches("dense_forward y", download(d_y, stream()), want, op.tol, static_cast<std::size_t>(s.out)));
    }
  }
}

TEST_F(GpuOps, DenseBackwardDataMatchesCpu) {
  Rng rng = test_rng(3);
  for (const DenseShape& s : kDenseShapes) {
    for (bool integers : {false, true}) {
      SCOPED_TRACE(shape_name(s) + (integers ? " small integers" : " floats"));
      // dx (batch, in) = dy (batch, out) . w (out, in): inner length out.
      const Operands op = dense_operands(rng, count(s.batch, s.out), count(s.out, s.in), s.out, integers);
      auto d_dy = upload(op.a, stream());
      auto d_w = upload(op.b, stream());
      gpu::DeviceBuffer<float> d_dx(count(s.batch, s.in));
      poison(d_dx, stream());
      gpu::dense_backward_data(d_dy.get(), d_w.get(), d_dx.get(), s.batch, s.in, s.out, cublas());
      std::vector<float> want(d_dx.size());
      cpu::dense_backward_data<float>(op.a.data(), op.b.data(), want.data(), s.batch, s.in, s.out);
      EXPECT_TRUE(
          matches("dense_backward_data dx", download(d_dx, stream()), want, op.tol, static_cast<std::size_t>(s.in)));
    }
  }
}

TEST_F(GpuOps, DenseBackwardWeightsMatchesCpu) {
  Rng rng = test_rng(4);
  for (const DenseShape& s : kDenseShapes) {
    for (bool integers : {false, true}) {
      SCOPED_TRACE(shape_name(s) + (integers ? " small integers" : " floats"));
      // dw (out, in) = dy^T (out, batch) . x (batch, in): inner length batch.
      const Operands op = dense_operands(rng, count(s.batch, s.in), count(s.batch, s.out), s.batch, integers);
      const std::vector<float>& x = op.a;
      const std::vector<float>& dy = op.b;
      auto d_x = upload(x, stream());
      auto d_dy = upload(dy, stream());
      gpu::DeviceBuffer<float> d_dw(count(s.out, s.in));
      poison(d_dw, stream());
      gpu::dense_backward_weights(d_dy.get(), d_x.get(), d_dw.get(), s.batch, s.in, s.out, cublas());
      std::vector<float> want(d_dw.size());
      cpu::dense_backward_weights<float>(dy.data(), x.data(), want.data(), s.batch, s.in, s.out);
      EXPECT_TRUE(matches("dense_backward_weights dw", download(d_dw, stream()), want, op.tol,
                          static_cast<std::size_t>(s.in)));
    }
  }
}

// An empty batch still defines dw: all zeros (cuBLAS with inner length 0 scales C by beta = 0),
// as the CPU twin writes.
TEST_F(GpuOps, DenseBackwardWeightsOfAnEmptyBatchIsZero) {
  const int in = 33, out = 10;
  gpu::DeviceBuffer<float> d_x(1), d_dy(1), d_dw(count(out, in));
  poison(d_dw, stream());
  gpu::dense_backward_weights(d_dy.get(), d_x.get(), d_dw.get(), 0, in, out, cublas());
  std::vector<float> want(d_dw.size(), 1.0f);
  cpu::dense_backward_weights<float>(nullptr, nullptr, want.data(), 0, in, out);
  EXPECT_TRUE(matches("dense_backward_weights dw, batch 0", download(d_dw, stream()), want, kTolExact,
                      static_cast<std::size_t>(in), /*nonzero_reference=*/false));
}

namespace {

// Every user-facing activation (activation.hpp's table) and the output layer's identity.
std::vector<Activation> all_activations() {
  std::vector<Activation> all = user_activations();
  all.push_back(Activation::identity);
  return all;
}
const std::vector<Activation> kActivations = all_activations();

// relu and identity are a compare and an add, identical on both sides; sigmoid, tanh and gelu go
// through expf/tanhf/erff, which differ from glibc's by a few ulp.
const Tolerance& act_tol(Activation a) {
  return a == Activation::relu || a == Activation::identity ? kTolExact : kTolElementwise;
}

}  // namespace

// In place, so the output cannot be poisoned; the bias is non-zero everywhere, so an element the
// kernel skips keeps y != y + b and fails all the same.
TEST_F(GpuOps, BiasActForwardMatchesCpu) {
  Rng rng = test_rng(5);
  for (Activation act : kActivations) {
    for (const RowShape& s : kRowShapes) {
      for (bool extreme : {false, true}) {
        SCOPED_TRACE(std::string(to_string(act)) + " batch " + std::to_string(s.batch) + " width " +
                     std::to_string(s.width) + (extreme ? " large pre-activations" : ""));
        const std::size_t n = count(s.batch, s.width);
        std::vector<float> y = uniform(rng, n, -4, 4);
        if (extreme) {
          // Saturation, expf overflow (|z| > 88.7) and values far beyond it.
          const std::vector<float> big{20, -20, 50, -50, 88, -88, 89, -89, 100, -100, 1e4f, -1e4f};
          for (auto& v : y) v = rng.below(2) ? pick(rng, big) : static_cast<float>(200 * rng.uniform() - 100);
        }
        std::vector<float> b = uniform(rng, static_cast<std::size_t>(s.width), 0.1, 1);
        for (auto& v : b) v = rng.below(2) ? v : -v;
        auto d_y = upload(y, stream());
        auto d_b = upload(b, stream());
        gpu::bias_act_forward(d_y.get(), d_b.get(), s.batch, s.width, act, stream());
        cpu::bias_act_forward<float>(y.data(), b.data(), s.batch, s.width, act);
        const std::vector<float> got = download(d_y, stream());
        EXPECT_TRUE(all_finite("bias_act_forward", got));
        EXPECT_TRUE(matches("bias_act_forward", got, y, act_tol(act), static_cast<std::size_t>(s.width)));
      }
    }
  }
}

// The gelu path's forward: y as bias_act_forward gives it, z = y + b exactly (one add on both sides).
TEST_F(GpuOps, BiasActForwardKeepMatchesCpu) {
  Rng rng = test_rng(7);
  for (Activation act : kActivations) {
    for (const RowShape& s : kRowShapes) {
      SCOPED_TRACE(std::string(to_string(act)) + " batch " + std::to_string(s.batch) + " width " +
                   std::to_string(s.width));
      const std::size_t n = count(s.batch, s.width);
      std::vector<float> y = uniform(rng, n, -6, 6);
      const std::vector<float> b = uniform(rng, static_cast<std::size_t>(s.width), -1, 1);
      auto d_y = upload(y, stream());
      auto d_b = upload(b, stream());
      gpu::DeviceBuffer<float> d_z(n);
      poison(d_z, stream());
      gpu::bias_act_forward_keep(d_y.get(), d_z.get(), d_b.get(), s.batch, s.width, act, stream());
      std::vector<float> z(n);
      cpu::bias_act_forward_keep<float>(y.data(), z.data(), b.data(), s.batch, s.width, act);
      EXPECT_TRUE(matches("bias_act_forward_keep y", download(d_y, stream()), y, act_tol(act),
                          static_cast<std::size_t>(s.width)));
      EXPECT_TRUE(matches("bias_act_forward_keep z", download(d_z, stream()), z, kTolExact,
                          static_cast<std::size_t>(s.width)));
    }
  }
}

// In place on dy; the activation outputs y include the boundary values (relu's exact zeros,
// sigmoid's 0 and 1, tanh's +-1) where the derivative vanishes.
TEST_F(GpuOps, ActBackwardMatchesCpu) {
  Rng rng = test_rng(6);
  for (Activation act : kActivations) {
    for (std::size_t n : {std::size_t{1}, std::size_t{31}, std::size_t{33}, count(96, 33), count(257, 784)}) {
      SCOPED_TRACE(std::string(to_string(act)) + " n " + std::to_string(n));
      std::vector<float> y(n);
      for (auto& v : y) {
        const double u = rng.uniform();
        switch (act) {
          case Activation::relu: v = static_cast<float>(std::max(0.0, 2 * u - 1)); break;
          case Activation::sigmoid: v = rng.below(8) == 0 ? static_cast<float>(rng.below(2)) : static_cast<float>(u); break;
          case Activation::tanh:
            v = rng.below(8) == 0 ? (rng.below(2) ? 1.0f : -1.0f) : static_cast<float>(2 * u - 1);
            break;
          case Activation::gelu:  // the pre-activation z: both tails and the region of gelu's minimum
            v = rng.below(8) == 0 ? (rng.below(2) ? 30.0f : -30.0f) : static_cast<float>(12 * u - 6);
            break;
          case Activation::identity: v = static_cast<float>(4 * u - 2); break;
        }
      }
      y[0] = act == Activation::tanh ? -0.3f : 0.5f;  // a passing derivative: the reference is non-zero
      std::vector<float> dy = uniform(rng, n, -1, 1);
      auto d_dy = upload(dy, stream());
      auto d_y = upload(y, stream());
      gpu::act_backward(d_dy.get(), d_y.get(), n, act, stream());
      cpu::act_backward<float>(dy.data(), y.data(), n, act);
      EXPECT_TRUE(matches("act_backward dy", download(d_dy, stream()), dy, act_tol(act)));
    }
  }
}

// Dropout's masks come from the same hash on both sides, so the results are bit-identical
// (one multiply per kept element); ragged sizes and an extreme p included. The GPU reads the
// step (17) from its step table's row.
TEST_F(GpuOps, DropoutMatchesCpuExactly) {
  Rng rng = test_rng(13);
  gpu::StepTable steps;
  steps.load({gpu::StepScalars{17, 0}}, 0, stream());
  for (const std::size_t n : {std::size_t{1}, std::size_t{255}, std::size_t{4097}, std::size_t{256 * 512 + 3}}) {
    for (const float p : {0.0f, 0.2f, 0.5f, 0.999f}) {
      SCOPED_TRACE("n " + std::to_string(n) + " p " + std::to_string(p));
      const DropoutMask m = make_dropout_mask(p, 1234, 17, 1);
      const DropoutLayer layer = make_dropout_layer(p, 1234, 1);
      const std::vector<float> a = uniform(rng, n, -3, 3);
      auto d_a = upload(a, stream());
      gpu::DeviceBuffer<float> d_out(n);
      poison(d_out, stream());
      gpu::dropout_forward(d_a.get(), d_out.get(), n, layer, steps.ref(), stream());
      std::vector<float> want(n);
      cpu::dropout_forward<float>(a.data(), want.data(), n, m);
      // At p 0.999 a short vector may keep nothing: an all-zero result is then the right one
      // (the poisoned output still fails if the kernel skips an element).
      const bool kept_any = std::any_of(want.begin(), want.end(), [](float v) { return v != 0.0f; });
      if (n > 100000) {
        EXPECT_TRUE(kept_any) << "the long vector must keep some elements";
      }
      EXPECT_TRUE(matches("dropout_forward out", download(d_out, stream()), want, kTolExact, 0, kept_any));
      gpu::dropout_backward(d_a.get(), n, layer, steps.ref(), stream());  // in place
      std::vector<float> back = a;
      cpu::dropout_backward<float>(back.data(), n, m);
      EXPECT_TRUE(matches("dropout_backward d", download(d_a, stream()), back, kTolExact, 0, kept_any));
    }
  }
}

TEST_F(GpuOps, BiasGradMatchesCpu) {
  Rng rng = test_rng(7);
  // Beyond the shared shapes: a batch far deeper than the kernel's 32 row lanes, one column, and
  // a width that leaves most of the last 32-column block idle.
  std::vector<RowShape> shapes = kRowShapes;
  shapes.insert(shapes.end(), {{4097, 10}, {1000, 1}, {2, 1000}});
  for (const RowShape& s : shapes) {
    SCOPED_TRACE("batch " + std::to_string(s.batch) + " width " + std::to_string(s.width));
    const std::vector<float> dy = uniform(rng, count(s.batch, s.width), -1, 1);
    auto d_dy = upload(dy, stream());
    gpu::DeviceBuffer<float> d_db(static_cast<std::size_t>(s.width));
    poison(d_db, stream());
    gpu::bias_grad(d_dy.get(), d_db.get(), s.batch, s.width, stream());
    std::vector<float> want(d_db.size());
    cpu::bias_grad<float>(dy.data(), want.data(), s.batch, s.width);
    EXPECT_TRUE(matches("bias_grad db", download(d_db, stream()), want, kTolReduction));
  }
}

namespace {

// Logits of one kind: ordinary, tied (small integers: the first maximum must win on both
// sides), and extreme (+-L, where exp underflows to 0 and the loss is of order L).
struct LogitKind {
  const char* name;
  std::function<float(Rng&)> draw;
};
const std::vector<LogitKind> kLogitKinds{
    {"uniform +-5", [](Rng& r) { return static_cast<float>(10 * r.uniform() - 5); }},
    {"ties", [](Rng& r) { return static_cast<float>(r.below(5)) - 2.0f; }},
    {"+-100", [](Rng& r) { return r.below(2) ? 100.0f : -100.0f; }},
    {"+-1e4", [](Rng& r) { return r.below(2) ? 1e4f : -1e4f; }},
    {"uniform +-1e4", [](Rng& r) { return static_cast<float>(2e4 * r.uniform() - 1e4); }},
};

std::vector<float> draw_logits(Rng& rng, const LogitKind& kind, std::size_t n) {
  std::vector<float> v(n);
  for (auto& x : v) x = kind.draw(rng);
  return v;
}

// Device accumulators that start from non-zero values, so that a kernel that overwrites instead
// of adding fails.
constexpr double kLossStart = 12.5;
constexpr unsigned long long kCorrectStart = 7;

}  // namespace

TEST_F(GpuOps, SoftmaxXentMatchesCpu) {
  Rng rng = test_rng(8);
  for (int classes : {10, 33, 784}) {
    for (int batch : kBatches) {
      for (const LogitKind& kind : kLogitKinds) {
        for (bool with_grad : {false, true}) {
          SCOPED_TRACE("classes " + std::to_string(classes) + " batch " + std::to_string(batch) + " logits " +
                       kind.name + (with_grad ? " with dlogits" : " loss only"));
          const std::size_t n = count(batch, classes);
          const std::vector<float> logits = draw_logits(rng, kind, n);
          const std::vector<std::uint8_t> lab = labels(rng, static_cast<std::size_t>(batch), classes);
          const float scale = 1.0f / static_cast<float>(batch);
          auto d_logits = upload(logits, stream());
          auto d_labels = upload(lab, stream());
          auto d_loss = upload(std::vector<double>{kLossStart}, stream());
          auto d_correct = upload(std::vector<unsigned long long>{kCorrectStart}, stream());
          gpu::DeviceBuffer<float> d_dlogits(with_grad ? n : 0);
          poison(d_dlogits, stream());
          gpu::softmax_xent(d_logits.get(), d_labels.get(), d_dlogits.get(), batch, classes, scale, d_loss.get(),
                            d_correct.get(), stream());

          std::vector<float> want(with_grad ? n : 0);
          double loss = kLossStart;
          unsigned long long correct = kCorrectStart;
          cpu::softmax_xent<float>(logits.data(), lab.data(), with_grad ? want.data() : nullptr, batch, classes,
                                   scale, &loss, &correct);
          const double g_loss = download(d_loss, stream())[0];
          EXPECT_TRUE(std::isfinite(g_loss)) << g_loss;
          EXPECT_TRUE(matches("softmax_xent loss sum", &g_loss, &loss, 1, kTolReduction));
          EXPECT_EQ(download(d_correct, stream())[0], correct);
          if (with_grad) {
            const std::vector<float> got = download(d_dlogits, stream());
            EXPECT_TRUE(all_finite("dlogits", got));
            // One row can legitimately have dlogits == 0 (a certain, correct prediction), so the
            // non-zero-reference guard applies from two rows up.
            EXPECT_TRUE(matches("softmax_xent dlogits", got, want, kTolElementwise, static_cast<std::size_t>(classes),
                                batch > 1));
          }
        }
      }
    }
  }
}

TEST_F(GpuOps, L2LossMatchesCpu) {
  Rng rng = test_rng(9);
  const std::vector<LogitKind> kinds{
      {"uniform -1..2", [](Rng& r) { return static_cast<float>(3 * r.uniform() - 1); }},
      {"ties", [](Rng& r) { return static_cast<float>(r.below(4)) - 1.0f; }},
  };
  for (int classes : {10, 33, 784}) {
    for (int batch : kBatches) {
      for (const LogitKind& kind : kinds) {
        for (bool with_grad : {false, true}) {
          SCOPED_TRACE("classes " + std::to_string(classes) + " batch " + std::to_string(batch) + " outputs " +
                       kind.name + (with_grad ? " with grad" : " loss only"));
          const std::size_t n = count(batch, classes);
          const std::vector<float> out = draw_logits(rng, kind, n);
          const std::vector<std::uint8_t> lab = labels(rng, static_cast<std::size_t>(batch), classes);
          const float scale = 1.0f / static_cast<float>(batch);
          auto d_out = upload(out, stream());
          auto d_labels = upload(lab, stream());
          auto d_loss = upload(std::vector<double>{kLossStart}, stream());
          auto d_correct = upload(std::vector<unsigned long long>{kCorrectStart}, stream());
          gpu::DeviceBuffer<float> d_grad(with_grad ? n : 0);
          poison(d_grad, stream());
          gpu::l2_loss(d_out.get(), d_labels.get(), d_grad.get(), batch, classes, scale, d_loss.get(),
                       d_correct.get(), stream());

          std::vector<float> want(with_grad ? n : 0);
          double loss = kLossStart;
          unsigned long long correct = kCorrectStart;
          cpu::l2_loss<float>(out.data(), lab.data(), with_grad ? want.data() : nullptr, batch, classes, scale,
                              &loss, &correct);
          const double g_loss = download(d_loss, stream())[0];
          EXPECT_TRUE(matches("l2_loss loss sum", &g_loss, &loss, 1, kTolReduction));
          EXPECT_EQ(download(d_correct, stream())[0], correct);
          // grad = (out - onehot) * scale: one subtraction and one product, rounded alike on both sides.
          if (with_grad) {
            EXPECT_TRUE(
                matches("l2_loss grad", download(d_grad, stream()), want, kTolExact, static_cast<std::size_t>(classes)));
          }
        }
      }
    }
  }
}

TEST_F(GpuOps, ConfusionUpdateMatchesCpu) {
  Rng rng = test_rng(10);
  const std::vector<LogitKind> kinds{
      {"uniform", [](Rng& r) { return static_cast<float>(2 * r.uniform() - 1); }},
      {"ties", [](Rng& r) { return static_cast<float>(r.below(3)); }},
  };
  for (int classes : {10, 33}) {
    for (int batch : kBatches) {
      for (const LogitKind& kind : kinds) {
        SCOPED_TRACE("classes " + std::to_string(classes) + " batch " + std::to_string(batch) + " logits " +
                     kind.name);
        const std::vector<float> logits = draw_logits(rng, kind, count(batch, classes));
        const std::vector<std::uint8_t> lab = labels(rng, static_cast<std::size_t>(batch), classes);
        // Counts that start non-zero: the kernel must add to them.
        std::vector<unsigned long long> want(count(classes, classes));
        for (auto& c : want) c = rng.below(1000);
        const unsigned long long start = std::accumulate(want.begin(), want.end(), 0ull);
        auto d_logits = upload(logits, stream());
        auto d_labels = upload(lab, stream());
        auto d_conf = upload(want, stream());
        gpu::confusion_update(d_logits.get(), d_labels.get(), batch, classes, d_conf.get(), stream());
        cpu::confusion_update<float>(logits.data(), lab.data(), batch, classes, want.data());
        const std::vector<unsigned long long> got = download(d_conf, stream());
        EXPECT_TRUE(matches("confusion", got, want, kTolExact, static_cast<std::size_t>(classes)));
        EXPECT_EQ(std::accumulate(got.begin(), got.end(), 0ull) - start, static_cast<unsigned long long>(batch));
      }
    }
  }
}

namespace {

struct OptimCase {
  const char* name;
  OptimizerKind kind;
  bool nesterov;
};
const std::vector<OptimCase> kOptimCases{{"sgd", OptimizerKind::sgd, false},
                                         {"momentum", OptimizerKind::momentum, false},
                                         {"nesterov", OptimizerKind::momentum, true},
                                         {"adam", OptimizerKind::adam, false},
                                         {"rmsprop", OptimizerKind::rmsprop, false}};

}  // namespace

// Three consecutive updates (t = 1, 2, 3 through make_optim_step) from zero optimizer state,
// each with a fresh gradient, L2 decay on the prefix [0, n_decay) only. Weights in [-0.5, 0.5)
// and gradients in [-0.1, 0.1), as in training: nvcc fuses mu * v + g into one FMA, so a velocity
// that cancels to ~0 differs from the CPU's by up to ~ulp(|g|), which for O(1) gradients would
// exceed kTolOptimizer's atol (1e-7) without any bug (measured on the CPU with the GPU's
// contractions written as std::fma: ratio 1.2 for |g| < 1, 0.17 for |g| < 0.1).
TEST_F(GpuOps, OptimizerUpdateMatchesCpu) {
  Rng rng = test_rng(11);
  ModelSpec small;
  small.hidden = {64, 32};
  const ParamLayout layout(small);
  struct Arena {
    std::size_t n, n_decay;
  };
  const std::vector<Arena> arenas{{1, 0}, {33, 20}, {100003, 99000}, {layout.size, layout.n_weights}};
  for (const OptimCase& oc : kOptimCases) {
    for (const Arena& a : arenas) {
      OptimizerConfig cfg;
      cfg.kind = oc.kind;
      cfg.nesterov = oc.nesterov;
      cfg.momentum = 0.9f;
      cfg.l2 = 0.01f;
      const float lr = default_lr(oc.kind);
      const bool uses_s1 = oc.kind != OptimizerKind::sgd, uses_s2 = oc.kind == OptimizerKind::adam;
      std::vector<float> w = uniform(rng, a.n, -0.5, 0.5);
      std::vector<float> s1(uses_s1 ? a.n : 0, 0.0f), s2(uses_s2 ? a.n : 0, 0.0f);
      auto d_w = upload(w, stream());
      auto d_s1 = upload(s1, stream());
      auto d_s2 = upload(s2, stream());
      // The rate and bias corrections of t = 1, 2, 3 as the GPU reads them: rows of a step table.
      gpu::StepTable steps(3);
      steps.load({gpu::step_row(1, 0, make_optim_step(cfg, lr, 1)), gpu::step_row(2, 0, make_optim_step(cfg, lr, 2)),
                  gpu::step_row(3, 0, make_optim_step(cfg, lr, 3))},
                 0, stream());
      for (long long t = 1; t <= 3; ++t) {
        SCOPED_TRACE(std::string(oc.name) + " n " + std::to_string(a.n) + " n_decay " + std::to_string(a.n_decay) +
                     " t " + std::to_string(t));
        const std::vector<float> g = uniform(rng, a.n, -0.1, 0.1);
        auto d_g = upload(g, stream());
        const OptimStep st = make_optim_step(cfg, lr, t);
        gpu::optimizer_update(st, steps.ref(), d_w.get(), d_g.get(), d_s1.get(), d_s2.get(), a.n, a.n_decay, stream());
        steps.advance(stream());
        cpu::optimizer_update<float>(st, w.data(), g.data(), uses_s1 ? s1.data() : nullptr,
                                     uses_s2 ? s2.data() : nullptr, a.n, a.n_decay);
        EXPECT_TRUE(matches("w", download(d_w, stream()), w, kTolOptimizer));
        if (uses_s1) {
          EXPECT_TRUE(matches(uses_s2                             ? "adam m"
                              : oc.kind == OptimizerKind::rmsprop ? "rmsprop sq"
                                                                  : "velocity",
                              download(d_s1, stream()), s1, kTolOptimizer));
        }
        if (uses_s2) {
          EXPECT_TRUE(matches("adam v", download(d_s2, stream()), s2, kTolOptimizer));
        }
      }
    }
  }
}

// Max-norm on ragged shapes (1 x 1, a row length past one block's 256 threads, MNIST's 784 and
// 1024-wide layers), rows on both sides of c: some scaled, the rest untouched (bit-identical).
TEST_F(GpuOps, MaxNormMatchesCpu) {
  Rng rng = test_rng(17);
  struct Shape {
    int out, in;
  };
  for (const Shape sh : {Shape{1, 1}, Shape{7, 257}, Shape{100, 784}, Shape{1024, 1024}}) {
    for (const float c : {0.5f, 2.0f}) {
      SCOPED_TRACE(std::to_string(sh.out) + " x " + std::to_string(sh.in) + " c " + std::to_string(c));
      const std::size_t n = static_cast<std::size_t>(sh.out) * static_cast<std::size_t>(sh.in);
      // Each row's scale drawn so that its norm is spread around c (about half the rows above).
      std::vector<float> w = uniform(rng, n, -1, 1);
      const std::vector<float> row_scale = uniform(rng, static_cast<std::size_t>(sh.out), 0.0, 4.0 * c);
      for (int j = 0; j < sh.out; ++j) {
        double sum = 0;
        for (int k = 0; k < sh.in; ++k) sum += double{w[static_cast<std::size_t>(j) * sh.in + k]} * w[static_cast<std::size_t>(j) * sh.in + k];
        const double f = row_scale[static_cast<std::size_t>(j)] / std::sqrt(std::max(sum, 1e-30));
        for (int k = 0; k < sh.in; ++k) w[static_cast<std::size_t>(j) * sh.in + k] = static_cast<float>(w[static_cast<std::size_t>(j) * sh.in + k] * f);
      }
      auto d_w = upload(w, stream());
      gpu::max_norm(d_w.get(), sh.out, sh.in, c, stream());
      cpu::max_norm<float>(w.data(), sh.out, sh.in, c);
      EXPECT_TRUE(matches("max_norm w", download(d_w, stream()), w, kTolMaxNorm, static_cast<std::size_t>(sh.in)));
    }
  }
  gpu::DeviceBuffer<float> w(4);
  EXPECT_THROW(gpu::max_norm(w.get(), 2, 2, 0.0f, stream()), Error);
}

TEST_F(GpuOps, OptimizerUpdateRefusesMissingStateAndBadDecayRange) {
  gpu::DeviceBuffer<float> w(8), g(8), s(8);
  gpu::StepTable steps;
  steps.load({gpu::StepScalars{1, 0, 0.1f}}, 0, stream());
  const gpu::StepRef at = steps.ref();
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::momentum;
  EXPECT_THROW(gpu::optimizer_update(make_optim_step(cfg, 0.1f, 1), at, w.get(), g.get(), nullptr, nullptr, 8, 4, stream()),
               Error);
  cfg.kind = OptimizerKind::adam;
  EXPECT_THROW(gpu::optimizer_update(make_optim_step(cfg, 0.1f, 1), at, w.get(), g.get(), s.get(), nullptr, 8, 4, stream()),
               Error);
  cfg.kind = OptimizerKind::sgd;
  EXPECT_THROW(gpu::optimizer_update(make_optim_step(cfg, 0.1f, 1), at, w.get(), g.get(), nullptr, nullptr, 8, 9, stream()),
               Error);
  // No step table: refused before any launch.
  EXPECT_THROW(gpu::optimizer_update(make_optim_step(cfg, 0.1f, 1), gpu::StepRef{}, w.get(), g.get(), nullptr, nullptr,
                                     8, 4, stream()),
               Error);
}
