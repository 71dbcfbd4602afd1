// The CPU reference is the specification, so it is checked from first principles: CpuNet<double>'s
// backward against central finite differences on every parameter (each activation x loss, a full
// and a last partial batch), the default model's initial loss against ln 10, and each cpu:: op on
// tiny hand-computed cases (exact on small integers where the maths allows).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/rng.hpp"
#include "finite_differences.hpp"

using mnist_gpu::Activation;
using mnist_gpu::CpuNet;
using mnist_gpu::LayerView;
using mnist_gpu::Loss;
using mnist_gpu::ModelSpec;
using mnist_gpu::Rng;
using mnist_gpu::RngStream;
namespace cpu = mnist_gpu::cpu;

namespace {

// --- finite differences (finite_differences.hpp) ---------------------------------------------

using mnist_gpu::test::check_central_differences;
using mnist_gpu::test::mean_loss;

// Pre-activations closer than this to relu's kink could be pushed across it by a +-h step
// (|dz| <= h * sum|x| << 1e-4) and make the finite difference meaningless.
constexpr double kKinkMargin = 1e-4;

// A small net (13-7-5-10) with two hidden layers: every parameter can be differenced.
ModelSpec small_spec(Activation act, Loss loss) {
  ModelSpec s;
  s.inputs = 13;
  s.hidden = {7, 5};
  s.outputs = 10;
  s.activation = act;
  s.loss = loss;
  return s;
}

// The hidden pre-activations' smallest magnitude, computed with plain loops from the parameters
// (independent of the code under test): a relu check is only meaningful away from the kink.
double min_abs_hidden_preactivation(CpuNet<double>& net, const std::vector<double>& x, int batch) {
  const auto& layers = net.layout().layers;
  const std::vector<double>& p = net.params();
  std::vector<double> in = x;
  double min_abs = std::numeric_limits<double>::infinity();
  for (std::size_t li = 0; li + 1 < layers.size(); ++li) {
    const LayerView& l = layers[li];
    std::vector<double> out(static_cast<std::size_t>(batch) * l.out);
    for (int r = 0; r < batch; ++r)
      for (int o = 0; o < l.out; ++o) {
        double z = p[l.b + o];
        for (int i = 0; i < l.in; ++i)
          z += in[static_cast<std::size_t>(r) * l.in + i] * p[l.w + static_cast<std::size_t>(o) * l.in + i];
        min_abs = std::min(min_abs, std::abs(z));
        out[static_cast<std::size_t>(r) * l.out + o] = z > 0 ? z : 0;  // only relu is kink-checked
      }
    in = std::move(out);
  }
  return min_abs;
}

class Gradients : public ::testing::TestWithParam<std::tuple<Activation, Loss>> {};

TEST_P(Gradients, BackwardMatchesCentralDifferencesOnEveryParameter) {
  const auto [act, loss] = GetParam();
  const ModelSpec spec = small_spec(act, loss);
  const int max_batch = 8;
  CpuNet<double> net(spec, max_batch);
  mnist_gpu::init_params(spec, net.layout(), 1, net.params().data());
  Rng rng(2024, RngStream::test_data);

  // The full batch first, then the last partial batch on the same net: stale rows left in the
  // workspace by the bigger batch must not leak into the smaller one.
  for (const int batch : {max_batch, 5}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    std::vector<double> x(static_cast<std::size_t>(batch) * spec.inputs);
    for (auto& v : x) v = rng.uniform();
    std::vector<std::uint8_t> labels(static_cast<std::size_t>(batch));
    for (auto& y : labels) y = static_cast<std::uint8_t>(rng.below(10));

    if (act == Activation::relu) {
      ASSERT_GT(min_abs_hidden_preactivation(net, x, batch), kKinkMargin)
          << "this seed puts a relu pre-activation next to the kink; pick another";
    }

    const mnist_gpu::test::FdCheck fd = check_central_differences(net, x, labels, batch);
    const std::vector<double>& analytic = fd.analytic;
    ASSERT_EQ(analytic.size(), net.layout().size);
    // backward's loss is the same quantity as loss()'s.
    EXPECT_NEAR(fd.backward_loss, mean_loss(net, x, labels, batch), 1e-12);

    // Guards: a gradient of zeros would "match" a broken difference of zeros. Every layer's
    // weights must receive some gradient.
    double norm2 = 0;
    for (double g : analytic) norm2 += g * g;
    ASSERT_GT(std::sqrt(norm2), 1e-3);
    for (const LayerView& l : net.layout().layers) {
      double layer2 = 0;
      for (std::size_t k = 0; k < static_cast<std::size_t>(l.in) * l.out; ++k)
        layer2 += analytic[l.w + k] * analytic[l.w + k];
      EXPECT_GT(layer2, 0.0) << "layer " << l.in << "->" << l.out << " gets no weight gradient";
    }
    EXPECT_EQ(fd.failures, 0) << fd.worst;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllActivationsAndLosses, Gradients,
    ::testing::Combine(::testing::ValuesIn(mnist_gpu::user_activations()),
                       ::testing::Values(Loss::xent, Loss::l2)),
    [](const ::testing::TestParamInfo<Gradients::ParamType>& p) {
      return std::string(mnist_gpu::to_string(std::get<0>(p.param))) + "_" +
             mnist_gpu::to_string(std::get<1>(p.param));
    });

TEST(InitialLoss, DefaultModelStartsNearLn10) {
  // The real default model (784-512-256-10 relu, xent), seed 1, on MNIST-like inputs: ~80% of
  // pixels 0, the rest uniform in 1..255.
  const ModelSpec spec;
  const int batch = 128;
  CpuNet<float> net(spec, batch);
  mnist_gpu::init_params(spec, net.layout(), 1, net.params().data());
  Rng rng(1, RngStream::test_data);
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(batch) * spec.inputs);
  for (auto& px : pixels) px = rng.uniform() < 0.8 ? 0 : static_cast<std::uint8_t>(1 + rng.below(255));
  std::vector<float> x(pixels.size());
  cpu::u8_to_unit(pixels.data(), x.data(), x.size());
  std::vector<std::uint8_t> labels(static_cast<std::size_t>(batch));
  for (auto& y : labels) y = static_cast<std::uint8_t>(rng.below(10));

  const float* out = net.forward(x.data(), batch);
  double loss_sum = 0;
  unsigned long long correct = 0;
  net.loss(labels.data(), batch, &loss_sum, &correct);
  const double mean = loss_sum / batch;

  // He init keeps the second moment through relu layers, so the logits have variance
  // s^2 ~ 2 E[x^2] ~ 0.13 here: not zero (guard below: all-zero logits give exactly ln 10 and
  // would hide a broken init), yet small.
  double sum = 0, sum2 = 0;
  const int n = batch * spec.outputs;
  for (int i = 0; i < n; ++i) {
    sum += out[i];
    sum2 += static_cast<double>(out[i]) * out[i];
  }
  const double logit_std = std::sqrt(sum2 / n - (sum / n) * (sum / n));
  EXPECT_GT(logit_std, 0.05);
  // For iid logits of variance s^2 the expected loss is ~ ln 10 + 0.45 s^2 (~ +0.06 here); 0.25
  // allows s^2 up to ~0.5, while a mis-scaled init (e.g. unit-variance weights: logits of std
  // ~10) puts the loss far above.
  EXPECT_NEAR(mean, std::log(10.0), 0.25) << "logit std " << logit_std;
}

// --- the ops on hand-computed cases ---------------------------------------------------------------

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Plain-loop reference of y (batch, out) = x (batch, in) . w^T (w (out, in)).
std::vector<float> naive_forward(const std::vector<float>& x, const std::vector<float>& w, int batch,
                                 int in, int out) {
  std::vector<float> y(static_cast<std::size_t>(batch) * out, 0.0f);
  for (int b = 0; b < batch; ++b)
    for (int o = 0; o < out; ++o)
      for (int i = 0; i < in; ++i)
        y[static_cast<std::size_t>(b) * out + o] +=
            x[static_cast<std::size_t>(b) * in + i] * w[static_cast<std::size_t>(o) * in + i];
  return y;
}

TEST(CpuOps, U8ToUnit) {
  std::vector<std::uint8_t> src(256);
  for (int i = 0; i < 256; ++i) src[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i);
  std::vector<float> dst(256, kNaN);
  cpu::u8_to_unit(src.data(), dst.data(), dst.size());
  EXPECT_EQ(dst[0], 0.0f);
  EXPECT_EQ(dst[255], 1.0f);  // the brightest pixel is exactly 1
  for (int i = 0; i < 256; ++i)
    EXPECT_NEAR(dst[static_cast<std::size_t>(i)], i / 255.0, 1e-7) << "pixel " << i;  // float ulp near 1: 6e-8
  std::vector<double> d(3, 0.0);
  cpu::u8_to_unit(src.data() + 51, d.data(), 3);
  EXPECT_NEAR(d[0], 0.2, 1e-15);
  EXPECT_NEAR(d[1], 52.0 / 255.0, 1e-15);
}

TEST(CpuOps, DenseOpsExactOnHandCase) {
  // x (2, 3), w (2, 3): y = x w^T = [[1-3, 2+2], [4-6, 8+5]].
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  const std::vector<float> w = {1, 0, -1, 2, 1, 0};
  std::vector<float> y(4, kNaN);
  cpu::dense_forward(x.data(), w.data(), y.data(), 2, 3, 2);
  EXPECT_EQ(y, (std::vector<float>{-2, 4, -2, 13}));

  // dx = dy w: row 0 = 1*[1,0,-1] + 2*[2,1,0]; row 1 = 3*[1,0,-1] - 1*[2,1,0].
  const std::vector<float> dy = {1, 2, 3, -1};
  std::vector<float> dx(6, kNaN);
  cpu::dense_backward_data(dy.data(), w.data(), dx.data(), 2, 3, 2);
  EXPECT_EQ(dx, (std::vector<float>{5, 2, -1, 1, -1, -3}));

  // dw = dy^T x: row 0 = 1*[1,2,3] + 3*[4,5,6]; row 1 = 2*[1,2,3] - 1*[4,5,6]. Poisoned: overwritten.
  std::vector<float> dw(6, kNaN);
  cpu::dense_backward_weights(dy.data(), x.data(), dw.data(), 2, 3, 2);
  EXPECT_EQ(dw, (std::vector<float>{13, 17, 21, -2, -1, 0}));
  // An empty batch: dw is defined, all zeros (the GPU twin's test expects the same).
  std::vector<float> dw0(6, kNaN);
  cpu::dense_backward_weights(dy.data(), x.data(), dw0.data(), 0, 3, 2);
  EXPECT_EQ(dw0, std::vector<float>(6, 0.0f));
}

TEST(CpuOps, DenseOpsExactOnRaggedIntegers) {
  // Sizes off every power of two; integers in [-4, 4] keep each sum (|.| <= 67*16) exact in float.
  const int batch = 33, in = 67, out = 17;
  Rng rng(5, RngStream::test_data);
  auto ints = [&](std::size_t n) {
    std::vector<float> v(n);
    for (auto& e : v) e = static_cast<float>(static_cast<int>(rng.below(9)) - 4);
    return v;
  };
  const std::vector<float> x = ints(static_cast<std::size_t>(batch) * in);
  const std::vector<float> w = ints(static_cast<std::size_t>(out) * in);
  const std::vector<float> dy = ints(static_cast<std::size_t>(batch) * out);

  std::vector<float> y(static_cast<std::size_t>(batch) * out, kNaN);
  cpu::dense_forward(x.data(), w.data(), y.data(), batch, in, out);
  EXPECT_EQ(y, naive_forward(x, w, batch, in, out));

  // dx (batch, in) = dy . w is the forward product with w^T (in, out) as the weights.
  std::vector<float> wt(w.size());
  for (int o = 0; o < out; ++o)
    for (int i = 0; i < in; ++i) wt[static_cast<std::size_t>(i) * out + o] = w[static_cast<std::size_t>(o) * in + i];
  std::vector<float> dx(static_cast<std::size_t>(batch) * in, kNaN);
  cpu::dense_backward_data(dy.data(), w.data(), dx.data(), batch, in, out);
  EXPECT_EQ(dx, naive_forward(dy, wt, batch, out, in));

  // dw (out, in) = dy^T . x: the forward product of dy^T (out, batch) with x^T (in, batch).
  std::vector<float> dyt(dy.size()), xt(x.size());
  for (int b = 0; b < batch; ++b) {
    for (int o = 0; o < out; ++o) dyt[static_cast<std::size_t>(o) * batch + b] = dy[static_cast<std::size_t>(b) * out + o];
    for (int i = 0; i < in; ++i) xt[static_cast<std::size_t>(i) * batch + b] = x[static_cast<std::size_t>(b) * in + i];
  }
  std::vector<float> dw(static_cast<std::size_t>(out) * in, kNaN);
  cpu::dense_backward_weights(dy.data(), x.data(), dw.data(), batch, in, out);
  EXPECT_EQ(dw, naive_forward(dyt, xt, out, batch, in));

  double norm = 0;
  for (float v : y) norm += std::abs(v);
  EXPECT_GT(norm, 0.0);
}

TEST(CpuOps, BiasActForwardEachActivation) {
  // y (2, 3) + b (3): z = [[-1, 0, 2], [0.5, -3, 1]].
  const std::vector<double> y0 = {-2, 0, 1, -0.5, -3, 0};
  const std::vector<double> b = {1, 0, 1};
  const std::vector<double> z = {-1, 0, 2, 0.5, -3, 1};
  struct Case {
    Activation act;
    double (*f)(double);
  };
  const Case cases[] = {
      {Activation::relu, [](double v) { return v > 0 ? v : 0.0; }},
      {Activation::sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }},
      {Activation::tanh, [](double v) { return std::tanh(v); }},
      {Activation::gelu, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {Activation::identity, [](double v) { return v; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(mnist_gpu::to_string(c.act));
    std::vector<double> y = y0;
    cpu::bias_act_forward(y.data(), b.data(), 2, 3, c.act);
    for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], c.f(z[i]), 1e-15) << "element " << i;
  }
  // Anchors that need no formula: sigmoid(0) = 1/2, tanh(0) = 0, relu(-1) = 0.
  std::vector<float> s = {0.0f}, t = {0.0f}, r = {-1.0f};
  const std::vector<float> zero = {0.0f};
  cpu::bias_act_forward(s.data(), zero.data(), 1, 1, Activation::sigmoid);
  cpu::bias_act_forward(t.data(), zero.data(), 1, 1, Activation::tanh);
  cpu::bias_act_forward(r.data(), zero.data(), 1, 1, Activation::relu);
  EXPECT_EQ(s[0], 0.5f);
  EXPECT_EQ(t[0], 0.0f);
  EXPECT_EQ(r[0], 0.0f);
}

TEST(CpuOps, ActBackwardEachActivation) {
  // Derivatives through the activation's output y.
  const std::vector<double> y = {0.0, 0.25, 0.5, 0.75};
  const std::vector<double> dy0 = {2.0, -4.0, 8.0, 1.0};
  auto run = [&](Activation act) {
    std::vector<double> dy = dy0;
    cpu::act_backward(dy.data(), y.data(), dy.size(), act);
    return dy;
  };
  // relu: y > 0 passes, y == 0 blocks.
  EXPECT_EQ(run(Activation::relu), (std::vector<double>{0.0, -4.0, 8.0, 1.0}));
  // sigmoid: y (1 - y) = 0, 3/16, 1/4, 3/16.
  EXPECT_EQ(run(Activation::sigmoid), (std::vector<double>{0.0, -4.0 * 3 / 16, 8.0 / 4, 3.0 / 16}));
  // tanh: 1 - y^2 = 1, 15/16, 3/4, 7/16.
  EXPECT_EQ(run(Activation::tanh), (std::vector<double>{2.0, -4.0 * 15 / 16, 8.0 * 3 / 4, 7.0 / 16}));
  EXPECT_EQ(run(Activation::identity), dy0);
}

// gelu at points whose values are known: Phi(1) = 0.841344746068543, phi(1) = 0.241970724519143.
// Saturation: gelu(30) = 30 and gelu(-30) = 0 exactly (erf is +-1 in double there), gelu' is 1 and
// 0; nothing overflows at +-1e4. NaN passes through, as sigmoid and tanh pass it (relu maps it to 0).
TEST(CpuOps, GeluAtKnownPointsExtremesAndNaN) {
  const double phi1 = 0.841344746068543, pdf1 = 0.241970724519143;
  const std::vector<double> z = {0.0, 1.0, -1.0, 30.0, -30.0, 1e4, -1e4};
  const std::vector<double> want_y = {0.0, phi1, -(1 - phi1), 30.0, 0.0, 1e4, 0.0};
  const std::vector<double> want_d = {0.5, phi1 + pdf1, (1 - phi1) - pdf1, 1.0, 0.0, 1.0, 0.0};
  const std::vector<double> zero(z.size(), 0.0);
  std::vector<double> y = z;
  cpu::bias_act_forward(y.data(), zero.data(), 1, static_cast<int>(z.size()), Activation::gelu);
  std::vector<double> d(z.size(), 1.0);
  cpu::act_backward(d.data(), z.data(), d.size(), Activation::gelu);  // gelu's backward reads z
  for (std::size_t i = 0; i < z.size(); ++i) {
    EXPECT_NEAR(y[i], want_y[i], 1e-14) << "gelu(" << z[i] << ")";
    EXPECT_NEAR(d[i], want_d[i], 1e-14) << "gelu'(" << z[i] << ")";
  }
  // float: the same points to a few ulp.
  std::vector<float> yf(z.begin(), z.end()), df(z.size(), 1.0f);
  const std::vector<float> zf = yf, zero_f(z.size(), 0.0f);
  cpu::bias_act_forward(yf.data(), zero_f.data(), 1, static_cast<int>(z.size()), Activation::gelu);
  cpu::act_backward(df.data(), zf.data(), df.size(), Activation::gelu);
  for (std::size_t i = 0; i < z.size(); ++i) {
    EXPECT_NEAR(yf[i], want_y[i], 1e-6 * (1 + std::abs(want_y[i]))) << "float gelu(" << z[i] << ")";
    EXPECT_NEAR(df[i], want_d[i], 1e-6) << "float gelu'(" << z[i] << ")";
  }
  std::vector<float> n = {kNaN}, dn = {1.0f};
  const std::vector<float> zero1 = {0.0f};
  cpu::bias_act_forward(n.data(), zero1.data(), 1, 1, Activation::gelu);
  cpu::act_backward(dn.data(), n.data(), 1, Activation::gelu);
  EXPECT_TRUE(std::isnan(n[0]));
  EXPECT_TRUE(std::isnan(dn[0]));
  for (Activation smooth : {Activation::sigmoid, Activation::tanh}) {  // the policy gelu follows
    std::vector<float> s = {kNaN};
    cpu::bias_act_forward(s.data(), zero1.data(), 1, 1, smooth);
    EXPECT_TRUE(std::isnan(s[0])) << mnist_gpu::to_string(smooth);
  }
}

// bias_act_forward_keep gives bias_act_forward's outputs bit for bit, and z = y + b.
TEST(CpuOps, BiasActForwardKeepMatchesAndKeepsZ) {
  const int batch = 3, out = 5;
  Rng rng(8, RngStream::test_data);
  std::vector<float> y0(static_cast<std::size_t>(batch) * out), b(out);
  for (auto& v : y0) v = static_cast<float>(8 * rng.uniform() - 4);
  for (auto& v : b) v = static_cast<float>(rng.uniform() - 0.5);
  for (Activation act : {Activation::relu, Activation::sigmoid, Activation::tanh, Activation::gelu, Activation::identity}) {
    SCOPED_TRACE(mnist_gpu::to_string(act));
    std::vector<float> want = y0, got = y0, z(y0.size(), kNaN);
    cpu::bias_act_forward(want.data(), b.data(), batch, out, act);
    cpu::bias_act_forward_keep(got.data(), z.data(), b.data(), batch, out, act);
    EXPECT_EQ(got, want);
    for (std::size_t i = 0; i < z.size(); ++i) EXPECT_EQ(z[i], y0[i] + b[i % out]) << i;
  }
}

TEST(CpuOps, BiasGradColumnSums) {
  const std::vector<float> dy = {1, 2, 3, 4, 5, 6, -7, 8, 0.5f};  // (3, 3)
  std::vector<float> db(3, kNaN);                                 // poisoned: overwritten
  cpu::bias_grad(dy.data(), db.data(), 3, 3);
  EXPECT_EQ(db, (std::vector<float>{1 + 4 - 7, 2 + 5 + 8, 3 + 6 + 0.5f}));
}

TEST(CpuOps, SoftmaxXentExtremeLogitsStayFinite) {
  // Row 0: label at the +100 logit, loss ~ 9 e^-200 ~ 0. Row 1: label at a -100 logit, loss
  // 200 + log(1 + 8 e^-200) ~ 200. A naive exp(100) overflows float and gives inf/NaN.
  const int classes = 10;
  std::vector<float> logits(2 * classes, -100.0f);
  logits[0] = 100.0f;
  logits[classes + 0] = 100.0f;
  const std::vector<std::uint8_t> labels = {0, 1};
  std::vector<float> d(logits.size(), kNaN);
  double loss = 0;
  unsigned long long correct = 0;
  cpu::softmax_xent(logits.data(), labels.data(), d.data(), 2, classes, 0.5f, &loss, &correct);
  ASSERT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(loss, 200.0, 1e-9);
  EXPECT_EQ(correct, 1u);
  for (std::size_t i = 0; i < d.size(); ++i) ASSERT_TRUE(std::isfinite(d[i])) << "element " << i;
  // (softmax - onehot) * 0.5: row 0 all ~0; row 1 +0.5 at the max, -0.5 at the label.
  for (int j = 0; j < classes; ++j) EXPECT_NEAR(d[static_cast<std::size_t>(j)], 0.0f, 1e-30f) << j;
  EXPECT_NEAR(d[classes + 0], 0.5f, 1e-7f);
  EXPECT_NEAR(d[classes + 1], -0.5f, 1e-7f);
  for (int j = 2; j < classes; ++j) EXPECT_NEAR(d[static_cast<std::size_t>(classes + j)], 0.0f, 1e-30f) << j;

  // Accumulates into the running sums (does not overwrite them).
  double loss_row0 = 5.0;
  cpu::softmax_xent(logits.data(), labels.data(), static_cast<float*>(nullptr), 1, classes, 1.0f,
                    &loss_row0, &correct);
  EXPECT_NEAR(loss_row0, 5.0, 1e-12);
  EXPECT_EQ(correct, 2u);
}

TEST(CpuOps, SoftmaxXentHandCaseAndTies) {
  // Logits [1, 3, 3, 0]: ties at 3. p = e^(z-3) / S with S = e^-2 + 1 + 1 + e^-3.
  const std::vector<double> z = {1, 3, 3, 0};
  const double s = std::exp(-2.0) + 2.0 + std::exp(-3.0);
  for (std::uint8_t label : {std::uint8_t{1}, std::uint8_t{2}, std::uint8_t{0}}) {
    SCOPED_TRACE("label " + std::to_string(label));
    std::vector<double> d(4, std::nan(""));
    double loss = 0;
    unsigned long long correct = 0;
    cpu::softmax_xent(z.data(), &label, d.data(), 1, 4, 1.0, &loss, &correct);
    EXPECT_NEAR(loss, std::log(s) - (z[label] - 3), 1e-14);
    // The first maximum (index 1) is the prediction: label 2 ties it but does not count.
    EXPECT_EQ(correct, label == 1 ? 1u : 0u);
    double sum = 0;
    for (int j = 0; j < 4; ++j) {
      const double p = std::exp(z[static_cast<std::size_t>(j)] - 3) / s;
      EXPECT_NEAR(d[static_cast<std::size_t>(j)], p - (j == label ? 1.0 : 0.0), 1e-15) << j;
      sum += d[static_cast<std::size_t>(j)];
    }
    EXPECT_NEAR(sum, 0.0, 1e-15);  // softmax sums to 1, the one-hot too
  }
}

TEST(CpuOps, L2LossHandCase) {
  // Row 0 (label 2): diffs [0.5, 0.25, -0.25] -> 0.5 (1/4 + 1/16 + 1/16) = 3/16, argmax 2: right.
  // Row 1 (label 0): diffs [-1, 1, 0] -> 0.5 * 2 = 1, argmax 1: wrong.
  const std::vector<double> out = {0.5, 0.25, 0.75, 0.0, 1.0, 0.0};
  const std::vector<std::uint8_t> labels = {2, 0};
  std::vector<double> g(6, std::nan(""));
  double loss = 1.0;  // accumulates
  unsigned long long correct = 0;
  cpu::l2_loss(out.data(), labels.data(), g.data(), 2, 3, 0.5, &loss, &correct);
  EXPECT_DOUBLE_EQ(loss, 1.0 + 3.0 / 16 + 1.0);
  EXPECT_EQ(correct, 1u);
  EXPECT_EQ(g, (std::vector<double>{0.25, 0.125, -0.125, -0.5, 0.5, 0.0}));
}

TEST(CpuOps, ConfusionUpdateCountsLabelByFirstArgmax) {
  const int classes = 3;
  // Rows: argmax 0, 2, 1 (tie 1/2: first wins), 2.
  const std::vector<float> logits = {5, 1, 1, 0, 1, 2, 0, 4, 4, -1, -2, 3};
  const std::vector<std::uint8_t> labels = {0, 2, 2, 1};
  std::vector<unsigned long long> m(9, 0);
  m[0] = 10;  // counts accumulate
  cpu::confusion_update(logits.data(), labels.data(), 4, classes, m.data());
  // m[label * 3 + pred]: (0,0) +1, (2,2) +1, (2,1) +1, (1,2) +1.
  EXPECT_EQ(m, (std::vector<unsigned long long>{11, 0, 0, 0, 0, 1, 0, 1, 1}));
}

}  // namespace
