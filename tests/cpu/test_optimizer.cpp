// One step of each optimizer (sgd, momentum, Nesterov momentum, adam at t = 1 and t = 2), with and
// without L2, through make_optim_step + cpu::optimizer_update, against values written out by hand.
// The constants are dyadic (0.5, 0.25, ...): OptimStep stores them as float, and dyadic numbers
// survive that conversion exactly, so the expected values below are plain double arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_ops.hpp"

using mnist_gpu::OptimizerConfig;
using mnist_gpu::OptimizerKind;
using mnist_gpu::OptimStep;
using Vec = std::vector<double>;

namespace {

// Each expected value is a handful of double operations from the same inputs, so the code under
// test may differ from it only by rounding order (~1e-16 relative on values of order 1); a wrong
// formula (missing bias correction, decay on a bias, classic vs Nesterov) moves them by > 1e-3.
constexpr double kTol = 1e-12;

// Arena of 4: two "weights" (decayed) then two "biases" (not decayed).
constexpr std::size_t kN = 4, kNDecay = 2;
const Vec kW = {1.0, -2.0, 0.5, 4.0};
const Vec kG = {0.5, 0.25, -1.0, 2.0};
constexpr double kLr = 0.25;
constexpr double kL2 = 0.5;

void expect_near(const Vec& got, const Vec& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], kTol) << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
}

OptimizerConfig config(OptimizerKind kind, double l2) {
  OptimizerConfig c;
  c.kind = kind;
  c.lr = 123.0f;  // ignored: make_optim_step takes the epoch's lr as an argument
  c.l2 = static_cast<float>(l2);
  c.momentum = 0.5f;
  c.beta1 = 0.5f;
  c.beta2 = 0.75f;
  c.eps = 0.0625f;
  return c;
}

// The gradient the update sees: g + l2 w on the weights [0, kNDecay), g alone on the biases.
Vec effective_grad(const Vec& w, const Vec& g, double l2) {
  Vec e = g;
  for (std::size_t i = 0; i < kNDecay; ++i) e[i] += l2 * w[i];
  return e;
}

class Optimizer : public ::testing::TestWithParam<bool> {  // param: with L2
 protected:
  double l2() const { return GetParam() ? kL2 : 0.0; }
};

TEST_P(Optimizer, SgdOneStep) {
  Vec w = kW;
  const OptimStep s = mnist_gpu::make_optim_step(config(OptimizerKind::sgd, l2()), static_cast<float>(kLr), 1);
  EXPECT_EQ(s.lr, 0.25f);
  mnist_gpu::cpu::optimizer_update<double>(s, w.data(), kG.data(), nullptr, nullptr, kN, kNDecay);
  const double d = l2();
  expect_near(w,
              {1.0 - 0.25 * (0.5 + d * 1.0), -2.0 - 0.25 * (0.25 + d * -2.0),  // decayed
               0.5 - 0.25 * -1.0, 4.0 - 0.25 * 2.0},                            // biases: no decay
              "w");
}

TEST_P(Optimizer, MomentumOneStepFromNonZeroVelocity) {
  Vec w = kW;
  Vec v = {0.5, -1.0, 0.0, 2.0};
  const OptimStep s =
      mnist_gpu::make_optim_step(config(OptimizerKind::momentum, l2()), static_cast<float>(kLr), 7);
  mnist_gpu::cpu::optimizer_update<double>(s, w.data(), kG.data(), v.data(), nullptr, kN, kNDecay);
  const double d = l2();
  // v' = 0.5 v + g_eff; w' = w - 0.25 v'.
  const Vec v_want = {0.5 * 0.5 + (0.5 + d * 1.0), 0.5 * -1.0 + (0.25 + d * -2.0), 0.5 * 0.0 + -1.0,
                      0.5 * 2.0 + 2.0};
  expect_near(v, v_want, "v");
  expect_near(w,
              {1.0 - 0.25 * v_want[0], -2.0 - 0.25 * v_want[1], 0.5 - 0.25 * v_want[2],
               4.0 - 0.25 * v_want[3]},
              "w");
}

TEST_P(Optimizer, NesterovOneStepFromNonZeroVelocity) {
  Vec w = kW;
  Vec v = {0.5, -1.0, 0.0, 2.0};
  OptimizerConfig c = config(OptimizerKind::momentum, l2());
  c.nesterov = true;
  const OptimStep s = mnist_gpu::make_optim_step(c, static_cast<float>(kLr), 3);
  EXPECT_TRUE(s.nesterov);
  mnist_gpu::cpu::optimizer_update<double>(s, w.data(), kG.data(), v.data(), nullptr, kN, kNDecay);
  const double d = l2();
  const Vec g = {0.5 + d * 1.0, 0.25 + d * -2.0, -1.0, 2.0};  // g_eff, decay on the weights only
  // v' = 0.5 v + g; w' = w - 0.25 (g + 0.5 v')   (PyTorch's Nesterov form)
  const Vec v_want = {0.25 + g[0], -0.5 + g[1], 0.0 + g[2], 1.0 + g[3]};
  expect_near(v, v_want, "v");
  expect_near(w,
              {1.0 - 0.25 * (g[0] + 0.5 * v_want[0]), -2.0 - 0.25 * (g[1] + 0.5 * v_want[1]),
               0.5 - 0.25 * (g[2] + 0.5 * v_want[2]), 4.0 - 0.25 * (g[3] + 0.5 * v_want[3])},
              "w");
  // And it differs from the classic step: w would be w - 0.25 v'.
  EXPECT_GT(std::abs(w[3] - (4.0 - 0.25 * v_want[3])), 0.1);
}

TEST_P(Optimizer, AdamStepsOneAndTwo) {
  const OptimizerConfig c = config(OptimizerKind::adam, l2());
  const double d = l2();
  Vec w = kW, m(kN, 0.0), v(kN, 0.0);

  // t = 1: beta1 0.5, beta2 0.75 -> corrections c1 = 1 - 0.5 = 0.5, c2 = 1 - 0.75 = 0.25.
  const OptimStep s1 = mnist_gpu::make_optim_step(c, static_cast<float>(kLr), 1);
  EXPECT_EQ(s1.bias_correction1, 0.5f);
  EXPECT_EQ(s1.bias_correction2, 0.25f);
  mnist_gpu::cpu::optimizer_update<double>(s1, w.data(), kG.data(), m.data(), v.data(), kN, kNDecay);
  const Vec g1 = effective_grad(kW, kG, d);
  Vec m1(kN), v1(kN), w1(kN);
  for (std::size_t i = 0; i < kN; ++i) {
    m1[i] = 0.5 * 0.0 + 0.5 * g1[i];
    v1[i] = 0.75 * 0.0 + 0.25 * g1[i] * g1[i];
    // m1 / 0.5 = g and sqrt(v1 / 0.25) = |g|: the first step is lr g / (|g| + eps).
    w1[i] = kW[i] - 0.25 * (m1[i] / 0.5) / (std::sqrt(v1[i] / 0.25) + 0.0625);
  }
  expect_near(m, m1, "m after t=1");
  expect_near(v, v1, "v after t=1");
  expect_near(w, w1, "w after t=1");
  // Spelled out for the first bias: g = -1 -> w = 0.5 + 0.25 * 1 / 1.0625.
  EXPECT_NEAR(w[2], 0.5 + 0.25 / 1.0625, kTol);

  // t = 2 with a new gradient: c1 = 1 - 0.25 = 0.75, c2 = 1 - 0.5625 = 0.4375.
  const Vec g2_raw = {-1.0, 0.5, 0.25, -2.0};
  const OptimStep s2 = mnist_gpu::make_optim_step(c, static_cast<float>(kLr), 2);
  EXPECT_EQ(s2.bias_correction1, 0.75f);
  EXPECT_EQ(s2.bias_correction2, 0.4375f);
  mnist_gpu::cpu::optimizer_update<double>(s2, w.data(), g2_raw.data(), m.data(), v.data(), kN, kNDecay);
  const Vec g2 = effective_grad(w1, g2_raw, d);  // decay uses the weights as they are now
  Vec m2(kN), v2(kN), w2(kN);
  for (std::size_t i = 0; i < kN; ++i) {
    m2[i] = 0.5 * m1[i] + 0.5 * g2[i];
    v2[i] = 0.75 * v1[i] + 0.25 * g2[i] * g2[i];
    w2[i] = w1[i] - 0.25 * (m2[i] / 0.75) / (std::sqrt(v2[i] / 0.4375) + 0.0625);
  }
  expect_near(m, m2, "m after t=2");
  expect_near(v, v2, "v after t=2");
  expect_near(w, w2, "w after t=2");
}

INSTANTIATE_TEST_SUITE_P(WithAndWithoutL2, Optimizer, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return std::string(p.param ? "l2" : "no_l2");
                         });

TEST(OptimizerL2, DecayReachesOnlyTheFirstNDecayEntries) {
  // Zero gradient: any movement is decay. Entries [0, 2) shrink by lr * l2 * w; [2, 4) stay put.
  Vec w = kW;
  const Vec zero(kN, 0.0);
  const OptimStep s = mnist_gpu::make_optim_step(config(OptimizerKind::sgd, kL2), static_cast<float>(kLr), 1);
  mnist_gpu::cpu::optimizer_update<double>(s, w.data(), zero.data(), nullptr, nullptr, kN, kNDecay);
  expect_near(w, {1.0 - 0.25 * 0.5 * 1.0, -2.0 - 0.25 * 0.5 * -2.0, 0.5, 4.0}, "w");
  EXPECT_EQ(w[2], 0.5);
  EXPECT_EQ(w[3], 4.0);
  // n_decay = 0: nothing decays; n_decay = n: everything does.
  Vec a = kW, b = kW;
  mnist_gpu::cpu::optimizer_update<double>(s, a.data(), zero.data(), nullptr, nullptr, kN, 0);
  expect_near(a, kW, "n_decay 0");
  mnist_gpu::cpu::optimizer_update<double>(s, b.data(), zero.data(), nullptr, nullptr, kN, kN);
  expect_near(b, {1.0 * 0.875, -2.0 * 0.875, 0.5 * 0.875, 4.0 * 0.875}, "n_decay n");
}

TEST(OptimizerStep, DefaultAdamFirstStepIsLrTimesSign) {
  // With the defaults (beta1 0.9, beta2 0.999, eps 1e-8) and zero state, the bias-corrected first
  // step is lr g / (|g| + eps) = lr sign(g) up to eps / |g| <= 1e-7 relative.
  OptimizerConfig c;
  c.kind = OptimizerKind::adam;
  const OptimStep s = mnist_gpu::make_optim_step(c, 0.001f, 1);
  const OptimStep s2 = mnist_gpu::make_optim_step(c, 0.001f, 2);
  // Corrections 1 - beta^t of the float betas, rounded to float (half an ulp: 4e-9 near 0.1 and
  // 0.19, 6e-11 near 0.001 and 0.002).
  const double b1 = static_cast<double>(0.9f), b2 = static_cast<double>(0.999f);
  EXPECT_NEAR(s.bias_correction1, 1.0 - b1, 1e-8);
  EXPECT_NEAR(s.bias_correction2, 1.0 - b2, 1e-10);
  EXPECT_NEAR(s2.bias_correction1, 1.0 - b1 * b1, 1e-8);
  EXPECT_NEAR(s2.bias_correction2, 1.0 - b2 * b2, 1e-10);
  Vec w = {1.0, 1.0, 1.0}, m(3, 0.0), v(3, 0.0);
  const Vec g = {3.0, -0.5, 0.1};
  mnist_gpu::cpu::optimizer_update<double>(s, w.data(), g.data(), m.data(), v.data(), 3, 3);
  const double lr = static_cast<double>(0.001f);
  // The float bias corrections carry ~1e-7 relative error into the step.
  EXPECT_NEAR(w[0], 1.0 - lr, lr * 1e-6);
  EXPECT_NEAR(w[1], 1.0 + lr, lr * 1e-6);
  EXPECT_NEAR(w[2], 1.0 - lr, lr * 1e-6);
}

}  // namespace
