// --precision on the CPU: the TF32/BF16 rounding helpers (exact values, ties to even, NaN and
// infinities), CpuNet's emulation (operands rounded, FP32 untouched), the settings rows
// (--precision stored since format 4, --gemm cublas refused with tf32/bf16) and a short CPU run
// at bf16 and tf32 that still learns.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/precision.hpp"
#include "mnist_gpu/settings.hpp"
#include "mnist_gpu/train.hpp"
#include "mnist_gpu/verify.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;

namespace {

float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

}  // namespace

TEST(Precision, Bf16KeepsSevenMantissaBitsRoundingToNearest) {
  EXPECT_EQ(round_bf16(1.0f), 1.0f);
  EXPECT_EQ(round_bf16(-2.5f), -2.5f);
  EXPECT_EQ(round_bf16(0.0f), 0.0f);
  EXPECT_EQ(bits(round_bf16(-0.0f)), 0x80000000u);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1, mantissa ...0).
  EXPECT_EQ(round_bf16(1.0f + 0x1p-8f), 1.0f);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up to the even one.
  EXPECT_EQ(round_bf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
  // Just above the tie rounds up, just below rounds down.
  EXPECT_EQ(round_bf16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);
  EXPECT_EQ(round_bf16(1.0f + 0x1p-8f - 0x1p-20f), 1.0f);
  // pi = 0x40490FDB -> 0x40490000 (the dropped 0x0FDB is below half, 0x8000).
  EXPECT_EQ(bits(round_bf16(3.14159265f)), 0x40490000u);
  // 1/3 = 0x3EAAAAAB -> 0x3EAB0000 (0xAAAB is above half).
  EXPECT_EQ(bits(round_bf16(1.0f / 3.0f)), 0x3EAB0000u);
  // A carry through the mantissa into the exponent: 2 - 2^-9 rounds to 2.
  EXPECT_EQ(round_bf16(2.0f - 0x1p-9f), 2.0f);
}

TEST(Precision, Tf32KeepsTenMantissaBitsRoundingToNearest) {
  EXPECT_EQ(round_tf32(1.0f), 1.0f);
  EXPECT_EQ(round_tf32(1.0f + 0x1p-10f), 1.0f + 0x1p-10f);  // representable
  EXPECT_EQ(round_tf32(1.0f + 0x1p-11f), 1.0f);             // tie, to even
  EXPECT_EQ(round_tf32(1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f);  // tie, to even (up)
  EXPECT_EQ(round_tf32(1.0f + 0x1p-11f + 0x1p-23f), 1.0f + 0x1p-10f);
  // pi = 0x40490FDB -> 0x40490000 (the dropped 13 bits, 0x0FDB, are below half, 0x1000);
  // 0x40490FDB + 0x0025 = 0x40491000 is above half: up by one TF32 ulp, 0x2000.
  EXPECT_EQ(bits(round_tf32(3.14159265f)), 0x40490000u);
  EXPECT_EQ(bits(round_tf32(from_bits(0x40491000u + 1u))), 0x40492000u);
  EXPECT_EQ(bits(round_tf32(1.0f / 3.0f)), 0x3EAAA000u);  // 0x0AAB is below half
  EXPECT_EQ(round_tf32(-1.0f - 0x1p-11f), -1.0f);            // sign kept, ties to even
}

TEST(Precision, NanStaysNanAndInfinitiesStayAndLargeValuesOverflow) {
  const float inf = std::numeric_limits<float>::infinity();
  for (float (*round)(float) : {&round_bf16, &round_tf32}) {
    EXPECT_EQ(round(inf), inf);
    EXPECT_EQ(round(-inf), -inf);
    EXPECT_TRUE(std::isnan(round(std::numeric_limits<float>::quiet_NaN())));
    // A NaN whose payload lies only in the dropped bits must not become infinity.
    EXPECT_TRUE(std::isnan(round(from_bits(0x7F800001u))));
    EXPECT_TRUE(std::isnan(round(from_bits(0xFF800001u))));
    // The largest float rounds past the largest BF16/TF32 value: infinity, as the hardware does.
    EXPECT_EQ(round(std::numeric_limits<float>::max()), inf);
    EXPECT_EQ(round(-std::numeric_limits<float>::max()), -inf);
    // The smallest subnormal rounds to zero in both (its one bit is among the dropped ones).
    EXPECT_EQ(round(from_bits(1u)), 0.0f);
  }
  // The largest finite BF16 value stays.
  EXPECT_EQ(bits(round_bf16(from_bits(0x7F7F0000u))), 0x7F7F0000u);
}

TEST(Precision, RoundOperandsCopiesExactlyAtFp32AndRoundsOtherwise) {
  const std::vector<double> v{1.0 + 1e-12, 1.0 / 3.0, -7.25};
  std::vector<double> out(v.size());
  round_operands(v.data(), out.data(), v.size(), Precision::fp32);
  EXPECT_EQ(out, v);  // doubles stay doubles (finite-difference checks run at fp32)
  round_operands(v.data(), out.data(), v.size(), Precision::bf16);
  EXPECT_EQ(out[0], 1.0);
  EXPECT_EQ(out[1], static_cast<double>(from_bits(0x3EAB0000u)));
  EXPECT_EQ(out[2], -7.25);
}

// CpuNet at bf16: the forward output is the composition of the ops on rounded operands, and
// differs from fp32 (so the emulation is on); at fp32 it is the plain composition.
TEST(Precision, CpuNetForwardIsTheCompositionOnRoundedOperands) {
  ModelSpec spec;
  spec.inputs = 13;
  spec.hidden = {7};
  spec.outputs = 5;
  const int batch = 3;
  std::vector<float> x(static_cast<std::size_t>(batch) * spec.inputs);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.1f + 0.37f * static_cast<float>(i % 11) / 3.0f;
  for (Precision p : {Precision::fp32, Precision::tf32, Precision::bf16}) {
    SCOPED_TRACE(to_string(p));
    spec.precision = p;
    CpuNet<float> net(spec, batch);
    const ParamLayout& layout = net.layout();
    init_params(spec, layout, 3, net.params().data());
    const float* got = net.forward(x.data(), batch);
    // The reference: each layer's operands rounded, then the float ops.
    std::vector<float> in = x;
    for (std::size_t li = 0; li < layout.layers.size(); ++li) {
      const LayerView& l = layout.layers[li];
      std::vector<float> w(net.params().begin() + static_cast<std::ptrdiff_t>(l.w),
                           net.params().begin() + static_cast<std::ptrdiff_t>(l.w + static_cast<std::size_t>(l.in) * l.out));
      round_operands(w.data(), w.data(), w.size(), p);
      round_operands(in.data(), in.data(), in.size(), p);
      std::vector<float> y(static_cast<std::size_t>(batch) * l.out);
      cpu::dense_forward(in.data(), w.data(), y.data(), batch, l.in, l.out);
      const bool hidden = li + 1 < layout.layers.size();
      cpu::bias_act_forward(y.data(), net.params().data() + l.b, batch, l.out,
                            hidden ? spec.activation : Activation::identity);
      in = y;
    }
    for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(got[i], in[i]) << i;
  }
  // bf16 and fp32 outputs differ (the rounding is applied).
  spec.precision = Precision::fp32;
  CpuNet<float> a(spec, batch);
  init_params(spec, a.layout(), 3, a.params().data());
  const float* fa_out = a.forward(x.data(), batch);
  const std::vector<float> fa(fa_out, fa_out + batch * spec.outputs);
  spec.precision = Precision::bf16;
  CpuNet<float> b(spec, batch);
  init_params(spec, b.layout(), 3, b.params().data());
  const float* fb = b.forward(x.data(), batch);
  bool differs = false;
  for (std::size_t i = 0; i < fa.size(); ++i) differs |= fa[i] != fb[i];
  EXPECT_TRUE(differs);
}

TEST(Precision, SettingIsStoredSinceFormat4AndOlderCheckpointsReadFp32) {
  const Setting* s = find_setting("--precision");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->role, SettingRole::result);
  EXPECT_EQ(s->stored_since, 4);
  EXPECT_GE(kCheckpointVersion, 4u);
  TrainConfig c;
  s->parse("tf32", c);
  EXPECT_EQ(c.model.precision, Precision::tf32);
  nlohmann::json j = config_to_json(c);
  EXPECT_EQ(j.at("precision"), "tf32");
  j.erase("precision");
  EXPECT_EQ(config_from_json(j, 3).model.precision, Precision::fp32);
  EXPECT_THROW(s->parse("fp16", c), UsageError);
  const Setting* g = find_setting("--gemm");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->role, SettingRole::runtime);
  EXPECT_TRUE(g->key.empty());  // not stored
  EXPECT_EQ(*g->default_text, "cublas");  // until a GPU run verifies the cuBLASLt path
}

TEST(Precision, GemmCublasWithTf32OrBf16IsRefusedAndTheyRunOnCublasLt) {
  TrainConfig c;
  c.model.precision = Precision::bf16;
  c.cuda.gemm = GemmPath::cublas;
  EXPECT_THROW(check_inert_settings(c, {"--gemm"}), UsageError);
  EXPECT_NO_THROW(check_inert_settings(c, {}));
  EXPECT_EQ(effective_gemm(c.cuda, c.model.precision), GemmPath::cublaslt);
  c.model.precision = Precision::fp32;
  EXPECT_NO_THROW(check_inert_settings(c, {"--gemm"}));
  EXPECT_EQ(effective_gemm(c.cuda, c.model.precision), GemmPath::cublas);
  c.cuda.gemm = GemmPath::cublaslt;
  EXPECT_EQ(effective_gemm(c.cuda, c.model.precision), GemmPath::cublaslt);
}

TEST(Precision, EachPrecisionHasItsNamedStepTolerance) {
  EXPECT_STREQ(step_tolerance(Precision::fp32).name, "step");
  EXPECT_STREQ(step_tolerance(Precision::tf32).name, "step-tf32");
  EXPECT_STREQ(step_tolerance(Precision::bf16).name, "step-bf16");
  EXPECT_LT(step_tolerance(Precision::fp32).rtol, step_tolerance(Precision::tf32).rtol);
  EXPECT_LT(step_tolerance(Precision::tf32).rtol, step_tolerance(Precision::bf16).rtol);
}

// A short CPU run at bf16 and at tf32 still learns: one epoch of a small net on 12000 images.
TEST(Precision, CpuTrainingAtBf16AndTf32StillLearns) {
  const MnistFiles files = load_mnist_dir(mnist_gpu::test::data_dir());
  const SplitIndices split = split_indices(files.train.count, 1000, 1);
  std::vector<std::uint32_t> first(split.train.begin(), split.train.begin() + 12000);
  const Dataset tr = subset(files.train, first), va = subset(files.train, split.val);
  for (Precision p : {Precision::bf16, Precision::tf32}) {
    SCOPED_TRACE(to_string(p));
    TrainConfig cfg;
    cfg.model.hidden = {64};
    cfg.model.precision = p;
    cfg.epochs = 1;
    cfg.batch = 64;
    cfg.val = 1000;
    struct Quiet : TrainObserver {} obs;
    auto be = make_cpu_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed);
    const TrainResult r = train(cfg, TrainData{tr, va, files.test}, *be, obs);
    EXPECT_GE(r.test.acc, 0.85);
  }
}
