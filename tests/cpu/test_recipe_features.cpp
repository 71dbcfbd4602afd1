// The recipes' training features on the CPU: rmsprop by hand over two steps, input dropout exact
// and by finite differences, max-norm, --init uniform:A, the exp schedule, their settings, and a
// resumed run bit-identical with rmsprop's state.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/dropout.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/rng.hpp"
#include "mnist_gpu/settings.hpp"
#include "mnist_gpu/train.hpp"
#include "finite_differences.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Hand-computed values: a few double operations from the same inputs, so only rounding order
// differs (~1e-16 relative); a wrong formula (eps inside the sqrt, no (1 - rho)) moves them > 1e-3.
constexpr double kTol = 1e-12;

}  // namespace

using mnist_gpu::test::usage_error;

// --- rmsprop ----------------------------------------------------------------------------------

// Two steps from zero state on an arena of two weights (decayed) and one bias, rho 0.5 and eps
// 0.0625 (dyadic: exact in float), lr 0.25, L2 0.5, written out by hand:
//   sq1 = 0.5 g1^2,               w1 = w0 - lr g1 / (sqrt(sq1) + eps)
//   sq2 = 0.5 sq1 + 0.5 g2^2,     w2 = w1 - lr g2 / (sqrt(sq2) + eps)   (g with + l2 w on weights)
TEST(Rmsprop, TwoStepsByHand) {
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::rmsprop;
  cfg.rho = 0.5f;
  cfg.rms_eps = 0.0625f;
  cfg.eps = 0.5f;  // Adam's: must not be used
  cfg.l2 = 0.5f;
  std::vector<double> w{1.0, -2.0, 0.5}, sq(3, 0.0);
  const std::vector<double> g1{0.5, 0.25, -1.0}, g2{-0.25, 1.0, 2.0};
  // Expected, step 1 (weights 0 and 1 decayed, 2 a bias).
  const double e0 = 0.5 + 0.5 * 1.0, e1 = 0.25 + 0.5 * -2.0, e2 = -1.0;
  const double s0 = 0.5 * e0 * e0, s1 = 0.5 * e1 * e1, s2 = 0.5 * e2 * e2;
  const double w0 = 1.0 - 0.25 * e0 / (std::sqrt(s0) + 0.0625), w1 = -2.0 - 0.25 * e1 / (std::sqrt(s1) + 0.0625),
               w2 = 0.5 - 0.25 * e2 / (std::sqrt(s2) + 0.0625);
  const OptimStep st1 = make_optim_step(cfg, 0.25f, 1);
  EXPECT_EQ(st1.eps, 0.0625f);
  EXPECT_EQ(st1.rho, 0.5f);
  cpu::optimizer_update<double>(st1, w.data(), g1.data(), sq.data(), nullptr, 3, 2);
  EXPECT_NEAR(sq[0], s0, kTol);
  EXPECT_NEAR(sq[1], s1, kTol);
  EXPECT_NEAR(sq[2], s2, kTol);
  EXPECT_NEAR(w[0], w0, kTol);
  EXPECT_NEAR(w[1], w1, kTol);
  EXPECT_NEAR(w[2], w2, kTol);
  // Step 2.
  const double f0 = -0.25 + 0.5 * w0, f1 = 1.0 + 0.5 * w1, f2 = 2.0;
  const double t0 = 0.5 * s0 + 0.5 * f0 * f0, t1 = 0.5 * s1 + 0.5 * f1 * f1, t2 = 0.5 * s2 + 0.5 * f2 * f2;
  cpu::optimizer_update<double>(make_optim_step(cfg, 0.25f, 2), w.data(), g2.data(), sq.data(), nullptr, 3, 2);
  EXPECT_NEAR(sq[0], t0, kTol);
  EXPECT_NEAR(sq[1], t1, kTol);
  EXPECT_NEAR(sq[2], t2, kTol);
  EXPECT_NEAR(w[0], w0 - 0.25 * f0 / (std::sqrt(t0) + 0.0625), kTol);
  EXPECT_NEAR(w[1], w1 - 0.25 * f1 / (std::sqrt(t1) + 0.0625), kTol);
  EXPECT_NEAR(w[2], w2 - 0.25 * f2 / (std::sqrt(t2) + 0.0625), kTol);
}

TEST(Rmsprop, KerasDefaultsAndStateName) {
  const OptimizerConfig cfg;
  EXPECT_EQ(cfg.rho, 0.9f);
  EXPECT_EQ(cfg.rms_eps, 1e-7f);
  EXPECT_EQ(default_lr(OptimizerKind::rmsprop), 0.001f);
  EXPECT_EQ(optimizer_state_names(OptimizerKind::rmsprop), std::vector<std::string>{"sq"});
  const TrainConfig c = parse_train_flags({"--optimizer", "rmsprop"});
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::rmsprop);
  EXPECT_EQ(c.optimizer.lr, 0.001f);
}

// --- max-norm ---------------------------------------------------------------------------------

TEST(MaxNorm, RowsAboveAreScaledToTheNormRowsBelowUntouched) {
  // Row 0: norm 5 (3, 4) -> scaled to 2; row 1: norm 1 (untouched); row 2: norm exactly 2
  // (untouched); row 3: all zero.
  std::vector<float> w{3, 4, 0, 0.6f, 0.8f, 0, 0, 2, 0, 0, 0, 0};
  const std::vector<float> before = w;
  cpu::max_norm<float>(w.data(), 4, 3, 2.0f);
  EXPECT_FLOAT_EQ(w[0], 1.2f);
  EXPECT_FLOAT_EQ(w[1], 1.6f);
  EXPECT_EQ(w[2], 0.0f);
  for (std::size_t i = 3; i < w.size(); ++i) EXPECT_EQ(w[i], before[i]) << "element " << i << " changed";
  // Ragged random rows: every norm after <= c (to float rounding), direction kept.
  Rng rng(5, RngStream::test_data);
  const int out = 37, in = 301;
  std::vector<double> v(static_cast<std::size_t>(out) * in);
  for (double& x : v) x = 0.3 * (2 * rng.uniform() - 1);
  const std::vector<double> orig = v;
  cpu::max_norm<double>(v.data(), out, in, 3.0f);  // rows' norms spread around sqrt(301 * 0.03) ~ 3
  int scaled = 0;
  for (int j = 0; j < out; ++j) {
    double n0 = 0, n1 = 0, dot = 0;
    for (int k = 0; k < in; ++k) {
      const double a = orig[static_cast<std::size_t>(j) * in + k], b = v[static_cast<std::size_t>(j) * in + k];
      n0 += a * a, n1 += b * b, dot += a * b;
    }
    n0 = std::sqrt(n0), n1 = std::sqrt(n1);
    if (n0 > 3.0) {
      ++scaled;
      EXPECT_NEAR(n1, 3.0, 1e-12);
      EXPECT_NEAR(dot / (n0 * n1), 1.0, 1e-12);
    } else {
      EXPECT_EQ(n1, n0);
    }
  }
  EXPECT_GT(scaled, 0);
  EXPECT_LT(scaled, out);  // both kinds of row were exercised
}

// --- --init uniform:A ---------------------------------------------------------------------------

TEST(InitUniform, WeightsInRangeBiasesZeroDeterministic) {
  ModelSpec spec;
  spec.hidden = {50, 20};
  const ParamLayout layout(spec);
  std::vector<float> a(layout.size), b(layout.size), c(layout.size), d(layout.size), e(layout.size);
  init_params(spec, layout, 3, a.data(), WeightInit::uniform, 0.05);
  init_params(spec, layout, 3, b.data(), WeightInit::uniform, 0.05);
  init_params(spec, layout, 4, c.data(), WeightInit::uniform, 0.05);
  init_params(spec, layout, 3, d.data());
  init_params(spec, layout, 3, e.data(), WeightInit::standard, 0.05);
  EXPECT_EQ(a, b) << "the same seed must give the same weights";
  EXPECT_NE(a, c) << "another seed must give other weights";
  EXPECT_EQ(d, e) << "the bound matters only to the uniform scheme";
  EXPECT_NE(a, d);
  float lo = 0, hi = 0;
  for (const LayerView& l : layout.layers) {
    for (std::size_t k = 0; k < static_cast<std::size_t>(l.in) * l.out; ++k) {
      lo = std::min(lo, a[l.w + k]);
      hi = std::max(hi, a[l.w + k]);
    }
    for (int k = 0; k < l.out; ++k) EXPECT_EQ(a[l.b + k], 0.0f);
  }
  EXPECT_GE(lo, -0.05f);
  EXPECT_LE(hi, 0.05f);
  EXPECT_LT(lo, -0.049f) << "the range is used to its ends";
  EXPECT_GT(hi, 0.049f);
  const TrainConfig cfg = parse_train_flags({"--init", "uniform:0.05"});
  EXPECT_EQ(cfg.optimizer.init_uniform, 0.05f);
  EXPECT_EQ(cfg.optimizer.init, WeightInit::uniform);
  EXPECT_EQ(parse_train_flags({}).optimizer.init_uniform, 0.0f);
  EXPECT_EQ(parse_train_flags({}).optimizer.init, WeightInit::standard);
  for (const char* bad : {"uniform", "uniform:", "uniform:0", "uniform:-1", "gauss:1", "uniform:x", "Glorot", "he"})
    EXPECT_NE(usage_error([&] { parse_train_flags({"--init", bad}); }).find("--init"), std::string::npos) << bad;
}

// --- --init glorot --------------------------------------------------------------------------------

// Glorot-uniform: each layer's weights uniform in +-sqrt(6 / (in + out)), whatever the activation;
// for sigmoid it is the default scheme, the same draws exactly.
TEST(InitGlorot, EachLayersOwnBoundForAnyActivation) {
  ModelSpec spec;
  spec.hidden = {300, 40};
  const ParamLayout layout(spec);
  std::vector<float> g(layout.size), he(layout.size);
  init_params(spec, layout, 5, g.data(), WeightInit::glorot);
  init_params(spec, layout, 5, he.data());
  EXPECT_NE(g, he) << "relu's default is He-normal, not Glorot";
  for (const LayerView& l : layout.layers) {
    const double bound = std::sqrt(6.0 / (l.in + l.out));
    float lo = 0, hi = 0;
    double sum_sq = 0;
    const std::size_t n = static_cast<std::size_t>(l.in) * l.out;
    for (std::size_t k = 0; k < n; ++k) {
      lo = std::min(lo, g[l.w + k]);
      hi = std::max(hi, g[l.w + k]);
      sum_sq += static_cast<double>(g[l.w + k]) * g[l.w + k];
    }
    EXPECT_GE(lo, -bound) << l.in << "x" << l.out;
    EXPECT_LE(hi, bound);
    EXPECT_LT(lo, -0.95 * bound) << "the range is used to its ends";
    EXPECT_GT(hi, 0.95 * bound);
    // Uniform in +-b has variance b^2/3; 400+ draws put the sample's within 20%.
    EXPECT_NEAR(sum_sq / static_cast<double>(n), bound * bound / 3, 0.2 * bound * bound / 3) << l.in << "x" << l.out;
    for (int k = 0; k < l.out; ++k) EXPECT_EQ(g[l.b + k], 0.0f);
  }
  ModelSpec sig = spec;
  sig.activation = Activation::sigmoid;
  std::vector<float> sg(layout.size), sd(layout.size);
  init_params(sig, layout, 5, sg.data(), WeightInit::glorot);
  init_params(sig, layout, 5, sd.data());
  EXPECT_EQ(sg, sd) << "sigmoid's default scheme is Glorot-uniform";
  EXPECT_EQ(sg, g) << "the same seed draws the same weights whatever the activation";

  const TrainConfig cfg = parse_train_flags({"--init", "glorot"});
  EXPECT_EQ(cfg.optimizer.init, WeightInit::glorot);
  EXPECT_EQ(cfg.optimizer.init_uniform, 0.0f);
  EXPECT_NE(settings_as_flags(cfg).find("--init glorot"), std::string::npos);
}

// The stored form: a number for default and uniform (as files from before glorot), the string
// "glorot" for glorot; anything else is refused naming the key.
TEST(InitGlorot, StoredAndReadBackAndOldFormsStillRead) {
  for (const char* init : {"default", "uniform:0.07", "glorot"}) {
    const TrainConfig c = parse_train_flags({"--init", init});
    const json j = config_to_json(c);
    const TrainConfig back = config_from_json(j, kCheckpointVersion);
    EXPECT_EQ(back.optimizer.init, c.optimizer.init) << init;
    EXPECT_EQ(back.optimizer.init_uniform, c.optimizer.init_uniform) << init;
    EXPECT_EQ(settings_as_flags(back), settings_as_flags(c)) << init;
  }
  EXPECT_EQ(config_to_json(parse_train_flags({"--init", "glorot"}))["init_uniform"], json("glorot"));
  EXPECT_EQ(config_to_json(parse_train_flags({"--init", "uniform:0.07"}))["init_uniform"], json(0.07f));
  EXPECT_EQ(config_to_json(TrainConfig{})["init_uniform"], json(0.0f));
  json j = config_to_json(TrainConfig{});
  for (const json& bad : {json("he"), json(-0.1), json(nullptr), json::array()}) {
    j["init_uniform"] = bad;
    try {
      config_from_json(j, kCheckpointVersion);
      ADD_FAILURE() << "accepted " << bad.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("init_uniform"), std::string::npos) << e.what();
    }
  }
}

// --- the exp schedule -------------------------------------------------------------------------

TEST(ExpSchedule, EpochRateIsLrTimesFactorToTheEpoch) {
  const TrainConfig c = parse_train_flags({"--schedule", "exp", "--lr-factor", "0.5", "--lr", "0.25", "--epochs", "5"});
  EXPECT_EQ(epoch_lr(c, 1), 0.25f);
  EXPECT_EQ(epoch_lr(c, 2), 0.125f);
  EXPECT_EQ(epoch_lr(c, 3), 0.0625f);
  EXPECT_EQ(epoch_lr(c, 5), 0.015625f);
  const TrainConfig d = parse_train_flags({"--schedule", "exp", "--lr-factor", "0.95", "--lr", "0.001"});
  EXPECT_NEAR(epoch_lr(d, 11), 0.001 * std::pow(0.95, 10), 1e-10);
  // --lr-factor acts under exp (not refused as inert); --lr-step does not.
  EXPECT_NE(usage_error([] { parse_train_flags({"--schedule", "exp", "--lr-step", "3"}); }).find("--lr-step"),
            std::string::npos);
}

// --- input dropout ------------------------------------------------------------------------------

// A training forward pass with input dropout equals a pass without it on x masked by hand with the
// input layer's mask (kept pixels scaled by 1 / (1 - p)); evaluation is unchanged; backward matches
// central differences of that step's loss on every parameter (sigmoid: no kinks).
TEST(InputDropout, ExactMaskAndFiniteDifferences) {
  ModelSpec spec;
  spec.inputs = 13;
  spec.hidden = {7};
  spec.activation = Activation::sigmoid;
  const int batch = 6;
  const float p = 0.5f;
  const long long step = 3;
  CpuNet<double> net(spec, batch, 0.0f, 9, p), plain(spec, batch);
  init_params(spec, net.layout(), 1, net.params().data());
  plain.params() = net.params();
  Rng rng(77, RngStream::test_data);
  std::vector<double> x(static_cast<std::size_t>(batch) * spec.inputs);
  for (double& v : x) v = 0.1 + rng.uniform();
  std::vector<std::uint8_t> labels(batch);
  for (auto& y : labels) y = static_cast<std::uint8_t>(rng.below(10));

  const DropoutMask m = make_dropout_mask(p, 9, step, kInputDropoutLayer);
  std::vector<double> masked = x;
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    masked[i] = dropout_keep(m, i) ? x[i] * 2.0 : 0.0;
    dropped += !dropout_keep(m, i);
  }
  ASSERT_GT(dropped, 0u);
  ASSERT_LT(dropped, x.size());
  const std::size_t n_out = static_cast<std::size_t>(batch) * spec.outputs;
  std::vector<double> want(plain.forward(masked.data(), batch), plain.forward(masked.data(), batch) + n_out);
  std::vector<double> got(net.forward(x.data(), batch, step), net.forward(x.data(), batch, step) + n_out);
  EXPECT_EQ(got, want);
  std::vector<double> eval_plain(plain.forward(x.data(), batch), plain.forward(x.data(), batch) + n_out);
  std::vector<double> eval_net(net.forward(x.data(), batch), net.forward(x.data(), batch) + n_out);
  EXPECT_EQ(eval_net, eval_plain) << "evaluation must not drop inputs";
  std::vector<double> other(net.forward(x.data(), batch, step + 1), net.forward(x.data(), batch, step + 1) + n_out);
  EXPECT_NE(other, got) << "another step draws another mask";

  const test::FdCheck fd = test::check_central_differences(net, x, labels, batch, step);
  EXPECT_EQ(fd.failures, 0) << fd.worst;
  const std::vector<double>& analytic = fd.analytic;
  // A dropped pixel's weights get no gradient: column i of layer 0 is zero where every row dropped i.
  const LayerView& l0 = net.layout().layers[0];
  for (int i = 0; i < spec.inputs; ++i) {
    bool all_dropped = true;
    for (int r = 0; r < batch; ++r) all_dropped = all_dropped && !dropout_keep(m, static_cast<std::size_t>(r) * spec.inputs + i);
    if (!all_dropped) continue;
    for (int o = 0; o < l0.out; ++o) EXPECT_EQ(analytic[l0.w + static_cast<std::size_t>(o) * l0.in + i], 0.0);
  }
}

// --- settings of the new flags ----------------------------------------------------------------

TEST(RecipeSettings, RefusalsAndInertChecks) {
  EXPECT_NE(usage_error([] { parse_train_flags({"--input-dropout", "1"}); }).find("--input-dropout"), std::string::npos);
  EXPECT_NE(usage_error([] { parse_train_flags({"--max-norm", "-1"}); }).find("--max-norm"), std::string::npos);
  EXPECT_NE(usage_error([] { parse_train_flags({"--max-norm", "2", "--hidden", ""}); }).find("--max-norm"),
            std::string::npos);
  const TrainConfig c = parse_train_flags({"--optimizer", "rmsprop", "--input-dropout", "0.2", "--max-norm", "2",
                                           "--init", "uniform:0.05", "--schedule", "exp", "--lr-factor", "0.9"});
  const std::string flags = settings_as_flags(c);
  for (const char* f : {"--optimizer rmsprop", "--input-dropout 0.2", "--max-norm 2", "--init uniform:0.05",
                        "--schedule exp", "--lr-factor 0.9"})
    EXPECT_NE(flags.find(f), std::string::npos) << f << " not in " << flags;
  // A version-3 checkpoint's config has none of the new keys: their defaults.
  json j = config_to_json(TrainConfig{});
  for (const char* k : {"input_dropout", "max_norm", "init_uniform", "rho", "rms_eps"}) j.erase(k);
  const TrainConfig old = config_from_json(j, 3);
  EXPECT_EQ(old.optimizer.input_dropout, 0.0f);
  EXPECT_EQ(old.optimizer.max_norm, 0.0f);
  EXPECT_EQ(old.optimizer.init_uniform, 0.0f);
  EXPECT_EQ(old.optimizer.rho, 0.9f);
  EXPECT_THROW(config_from_json(j, 4), Error);
}

// --- resume with rmsprop and every new feature -------------------------------------------------

namespace {

std::vector<json> lines_of(const fs::path& p) {
  std::vector<json> lines;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) lines.push_back(json::parse(line));
  return lines;
}

// The fields that must be bit-identical between a resumed run and an uninterrupted one.
std::string outcome(const std::vector<json>& lines) {
  std::string s;
  for (const json& l : lines)
    s += l.contains("final") ? l["test_loss"].dump() + " " + l["test_acc"].dump() + "\n"
                             : l["epoch"].dump() + " " + l["train_loss"].dump() + " " + l["val_loss"].dump() + "\n";
  return s;
}

}  // namespace

TEST(RecipeFeatures, ResumedRunIsBitIdenticalWithRmspropState) {
  test::TempDir dir;
  const std::string base = "train --device cpu --data " + test::data_dir() +
                           " --hidden 32,16 --optimizer rmsprop --dropout 0.3 --input-dropout 0.2 --max-norm 1.5 "
                           "--init uniform:0.1 --schedule exp --lr-factor 0.7 --limit 3000 --val 500 --batch 100 --seed 4";
  const auto full = test::run_exe(base + " --epochs 3 --metrics " + (dir / "full.jsonl").string());
  ASSERT_EQ(full.code, 0) << full.out;
  const auto first = test::run_exe(base + " --epochs 1 --checkpoint " + (dir / "ck").string() + " --metrics " +
                                   (dir / "part.jsonl").string());
  ASSERT_EQ(first.code, 0) << first.out;
  const Checkpoint ck = read_checkpoint(dir / "ck");
  ASSERT_EQ(ck.state.optimizer.size(), 1u);
  EXPECT_EQ(ck.state.optimizer[0].name, "sq");
  EXPECT_EQ(ck.config.optimizer.max_norm, 1.5f);
  EXPECT_EQ(ck.config.optimizer.input_dropout, 0.2f);
  EXPECT_EQ(ck.config.optimizer.init_uniform, 0.1f);
  EXPECT_EQ(ck.config.optimizer.init, WeightInit::uniform);
  EXPECT_EQ(ck.config.schedule, Schedule::exp);
  const auto rest = test::run_exe("train --data " + test::data_dir() + " --resume " + (dir / "ck").string() +
                                  " --epochs 3 --metrics " + (dir / "resumed.jsonl").string());
  ASSERT_EQ(rest.code, 0) << rest.out;
  const std::string a = outcome(lines_of(dir / "full.jsonl")), b = outcome(lines_of(dir / "resumed.jsonl"));
  EXPECT_EQ(std::count(a.begin(), a.end(), '\n'), 4);
  EXPECT_EQ(a, b);
}

