// Training control: the step schedule, plateau cuts and early stopping decided from a scripted
// validation curve (a stand-in backend whose evaluation returns the script), the best weights
// restored, a resumed run deciding as the uninterrupted one, and dropout (masks, their
// statistics, finite differences through them, the executable's flags).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/dropout.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/rng.hpp"
#include "mnist_gpu/train.hpp"
#include "finite_differences.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;

namespace {

class NullObserver : public TrainObserver {};

std::vector<EpochMetrics> curve(const std::vector<double>& val_losses) {
  std::vector<EpochMetrics> done;
  for (std::size_t i = 0; i < val_losses.size(); ++i) {
    EpochMetrics m;
    m.epoch = static_cast<int>(i) + 1;
    m.val_loss = val_losses[i];
    m.val_acc = 0.5;
    done.push_back(m);
  }
  return done;
}

// A backend that trains nothing: its parameter is the number of epochs trained (so the restored
// weights name their epoch), and its validation loss follows a script, one value per evaluation
// of the validation set. The test set (a different count) reports accuracy = params[0] / 100.
class ScriptedBackend final : public Backend {
 public:
  ScriptedBackend(std::vector<double> script, int val_count) : script_(std::move(script)), val_count_(val_count) {}
  std::string describe() const override { return "scripted"; }
  std::string device() const override { return "cpu"; }
  void set_params(const std::vector<float>& p) override {
    params_ = p;
    ++set_params_calls;
  }
  std::vector<float> get_params() override { return params_; }
  TrainState get_state() override { return TrainState{params_, {}, 0}; }
  void set_state(const TrainState& s) override { params_ = s.params; }
  int batch() const override { return 1 << 30; }  // one batch per epoch
  void begin_epoch(const Dataset&, const std::vector<std::uint32_t>&, float lr, long long,
                   const EpochSums&, int) override {
    lrs.push_back(lr);
  }
  void step(long long) override { params_[0] += 1.0f; }
  EpochSums end_epoch() override { return EpochSums{}; }
  using Backend::evaluate;
  EvalResult evaluate(const Dataset& data, const ProgressFn&) override {
    EvalResult r;
    r.count = data.count;
    if (data.count == val_count_) {
      r.loss = script_.at(evals_++);
      r.acc = 1.0 - r.loss;
    } else {
      r.acc = params_[0] / 100.0;
    }
    return r;
  }
  std::vector<float> lrs;
  int set_params_calls = 0;

 private:
  std::vector<double> script_;
  int val_count_;
  std::size_t evals_ = 0;
  std::vector<float> params_{0.0f};
};

Dataset rows(int n) {
  Dataset d;
  d.count = n;
  d.rows = 1;
  d.cols = 1;
  d.images.assign(static_cast<std::size_t>(n), 0);
  d.labels.assign(static_cast<std::size_t>(n), 0);
  return d;
}

}  // namespace

TEST(Schedule, StepCutsByTheFactorEveryLrStepEpochs) {
  TrainConfig cfg;
  cfg.optimizer.lr = 0.08f;
  cfg.schedule = Schedule::step;
  cfg.lr_step = 2;
  cfg.lr_factor = 0.5f;
  const float expect[] = {0.08f, 0.08f, 0.04f, 0.04f, 0.02f};
  for (int e = 1; e <= 5; ++e) EXPECT_FLOAT_EQ(epoch_lr(cfg, e), expect[e - 1]) << "epoch " << e;
}

TEST(Plateau, CutsAfterLrPatienceEpochsWithoutARelativeImprovement) {
  TrainConfig cfg;
  cfg.schedule = Schedule::constant;
  cfg.optimizer.lr = 0.1f;
  cfg.lr_patience = 2;
  cfg.lr_factor = 0.5f;
  cfg.min_delta = 0.01f;  // better means below best * 0.99
  // 1.0 best; 0.995 is not 1% better (no improvement); 0.98 is; then flat.
  const std::vector<double> losses{1.0, 0.995, 0.98, 0.98, 0.99, 0.985, 0.981, 0.975};
  const float expect_next[] = {0.1f, 0.1f, 0.1f, 0.1f, 0.05f, 0.05f, 0.025f, 0.025f};
  for (std::size_t n = 1; n <= losses.size(); ++n) {
    const std::vector<double> head(losses.begin(), losses.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FLOAT_EQ(next_epoch_lr(cfg, static_cast<int>(n) + 1, curve(head)), expect_next[n - 1])
        << "after " << n << " epochs";
  }
  const ValidationState st = replay_validation(cfg, curve(losses));
  EXPECT_EQ(st.best_epoch, 3);
  EXPECT_EQ(st.cuts, 2);
  EXPECT_EQ(st.since_best, 5);  // 0.975 < 0.98 but not by 1%
  EXPECT_FALSE(st.stop);        // early stopping is off
}

TEST(Plateau, NeverCutsBelowMinLrAndComposesWithTheSchedule) {
  TrainConfig cfg;
  cfg.schedule = Schedule::step;
  cfg.lr_step = 100;
  cfg.optimizer.lr = 0.1f;
  cfg.lr_patience = 1;
  cfg.lr_factor = 0.1f;
  cfg.min_lr = 0.002f;
  EXPECT_FLOAT_EQ(next_epoch_lr(cfg, 2, curve({1.0})), 0.1f);
  EXPECT_FLOAT_EQ(next_epoch_lr(cfg, 3, curve({1.0, 1.0})), 0.01f);
  EXPECT_FLOAT_EQ(next_epoch_lr(cfg, 4, curve({1.0, 1.0, 1.0})), 0.002f);  // 0.001 floored
  EXPECT_FLOAT_EQ(next_epoch_lr(cfg, 5, curve({1.0, 1.0, 1.0, 1.0})), 0.002f);
  // Without a validation set (NaN losses) nothing is decided.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FLOAT_EQ(next_epoch_lr(cfg, 4, curve({nan, nan, nan})), 0.1f);
  EXPECT_EQ(replay_validation(cfg, curve({nan, nan})).best_epoch, 0);
}

TEST(EarlyStopping, StopsAfterPatienceEpochsAndTestsTheBestWeights) {
  TrainConfig cfg;
  cfg.epochs = 20;
  cfg.patience = 3;
  cfg.schedule = Schedule::constant;
  const Dataset train_set = rows(40), val = rows(7), test = rows(11);
  // Best at epoch 4 (0.5); 5..7 are worse: stop after epoch 7.
  ScriptedBackend be({0.9, 0.7, 0.6, 0.5, 0.55, 0.51, 0.6, 0.1, 0.1}, val.count);
  NullObserver obs;
  const TrainResult r = train(cfg, TrainData{train_set, val, test}, be, obs);
  EXPECT_EQ(r.epochs.size(), 7u);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.best_epoch, 4);
  EXPECT_TRUE(r.restored_best);
  EXPECT_FLOAT_EQ(be.get_params()[0], 4.0f) << "the test must run on the weights after epoch 4";
  EXPECT_NEAR(r.test.acc, 0.04, 1e-12);
  ASSERT_EQ(r.progress.best_params.size(), 1u);
  EXPECT_FLOAT_EQ(r.progress.best_params[0], 4.0f);
}

TEST(EarlyStopping, RunningOutOfEpochsStillRestoresTheBestAndOffChangesNothing) {
  TrainConfig cfg;
  cfg.epochs = 4;
  cfg.patience = 10;
  const Dataset train_set = rows(40), val = rows(7), test = rows(11);
  NullObserver obs;
  {
    ScriptedBackend be({0.9, 0.3, 0.4, 0.5}, val.count);
    const TrainResult r = train(cfg, TrainData{train_set, val, test}, be, obs);
    EXPECT_EQ(r.epochs.size(), 4u);
    EXPECT_FALSE(r.stopped_early);
    EXPECT_EQ(r.best_epoch, 2);
    EXPECT_FLOAT_EQ(be.get_params()[0], 2.0f);
  }
  cfg.patience = 0;
  ScriptedBackend be({0.9, 0.3, 0.4, 0.5}, val.count);
  const TrainResult r = train(cfg, TrainData{train_set, val, test}, be, obs);
  EXPECT_FALSE(r.restored_best);
  EXPECT_EQ(be.set_params_calls, 0);
  EXPECT_FLOAT_EQ(be.get_params()[0], 4.0f);  // the last epoch's weights
}

TEST(EarlyStopping, PlateauRatesReachTheBackendAndAResumeDecidesAsTheFirstRun) {
  TrainConfig cfg;
  cfg.epochs = 9;
  cfg.schedule = Schedule::constant;
  cfg.optimizer.lr = 0.2f;
  cfg.lr_patience = 1;
  cfg.lr_factor = 0.5f;
  cfg.patience = 3;
  const Dataset train_set = rows(40), val = rows(7), test = rows(11);
  const std::vector<double> script{1.0, 0.8, 0.9, 0.85, 0.7, 0.75, 0.72, 0.71, 0.6};
  NullObserver obs;
  ScriptedBackend whole(script, val.count);
  const TrainResult a = train(cfg, TrainData{train_set, val, test}, whole, obs);
  const std::vector<float> expect{0.2f, 0.2f, 0.2f, 0.1f, 0.05f, 0.05f, 0.025f, 0.0125f};
  EXPECT_EQ(whole.lrs, expect);
  EXPECT_EQ(a.epochs.size(), 8u);  // best 5, then 6, 7, 8 without improvement
  EXPECT_EQ(a.best_epoch, 5);
  EXPECT_FLOAT_EQ(whole.get_params()[0], 5.0f);

  // Stop after 3 epochs (as a checkpoint would hold them), then resume from that progress on a
  // fresh backend: the same rates, the same stop, the same restored weights.
  TrainConfig first = cfg;
  first.epochs = 3;
  ScriptedBackend part(script, val.count);
  TrainResult p = train(first, TrainData{train_set, val, test}, part, obs);
  ScriptedBackend rest(std::vector<double>(script.begin() + 3, script.end()), val.count);
  rest.set_params({3.0f});  // the state a checkpoint after epoch 3 holds (taken before any restore)
  TrainOptions opt;
  opt.resume = p.progress;
  const TrainResult b = train(cfg, TrainData{train_set, val, test}, rest, obs, opt);
  EXPECT_EQ(rest.lrs, std::vector<float>(expect.begin() + 3, expect.end()));
  EXPECT_EQ(b.epochs.size(), 8u);
  EXPECT_EQ(b.best_epoch, 5);
  EXPECT_FLOAT_EQ(rest.get_params()[0], 5.0f);
}

TEST(EarlyStopping, BestWeightsSurviveACheckpointAndVersionOneStillReads) {
  Checkpoint ck;
  ck.config.model.inputs = 3;
  ck.config.model.hidden = {2};
  ck.config.model.outputs = 2;
  ck.config.optimizer.kind = OptimizerKind::sgd;
  ck.config.patience = 2;
  ck.config.lr_patience = 1;
  ck.config.optimizer.dropout = 0.25f;
  ck.config.schedule = Schedule::step;
  const std::size_t n = ParamLayout(ck.config.model).size;
  ck.state.params.assign(n, 0.5f);
  ck.progress.best_params.assign(n, 0.25f);
  test::TempDir dir;
  const std::string path = (dir.path() / "c.ckpt").string();
  write_checkpoint(path, ck);
  const Checkpoint back = read_checkpoint(path);
  EXPECT_EQ(back.progress.best_params, ck.progress.best_params);
  EXPECT_EQ(back.config.patience, 2);
  EXPECT_EQ(back.config.lr_patience, 1);
  EXPECT_FLOAT_EQ(back.config.optimizer.dropout, 0.25f);
  EXPECT_EQ(back.config.schedule, Schedule::step);

  // A best array of the wrong length is refused.
  Checkpoint bad = ck;
  bad.progress.best_params.assign(n - 1, 0.0f);
  write_checkpoint(path, bad);
  try {
    read_checkpoint(path);
    ADD_FAILURE() << "a short best array was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not match the model's"), std::string::npos) << e.what();
  }
}

// --- dropout -------------------------------------------------------------------------------------

TEST(Dropout, KeepsOneMinusPOfTheUnitsScaledAndIsAPureFunctionOfItsKey) {
  const std::size_t n = 1 << 20;
  std::vector<float> a(n, 1.0f), out(n);
  for (const float p : {0.1f, 0.5f, 0.9f}) {
    const DropoutMask m = make_dropout_mask(p, 42, 7, 1);
    cpu::dropout_forward(a.data(), out.data(), n, m);
    std::size_t kept = 0;
    double sum = 0;
    for (float v : out) {
      kept += v != 0.0f;
      sum += v;
      ASSERT_TRUE(v == 0.0f || v == m.scale);
    }
    const double frac = static_cast<double>(kept) / n;
    const double sigma = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(frac, 1 - p, 6 * sigma) << "p " << p;
    EXPECT_NEAR(sum / n, 1.0, 6 * sigma / (1 - p)) << "inverted dropout keeps the mean, p " << p;
  }
  // p = 0 keeps everything unscaled.
  cpu::dropout_forward(a.data(), out.data(), n, make_dropout_mask(0.0f, 42, 7, 1));
  EXPECT_EQ(out, a);
  // Same key, same mask; another step, layer or seed, another mask (and uncorrelated: ~half agree).
  auto mask_bits = [&](const DropoutMask& m) {
    std::vector<bool> bits(4096);
    for (std::size_t i = 0; i < bits.size(); ++i) bits[i] = dropout_keep(m, i);
    return bits;
  };
  const auto base = mask_bits(make_dropout_mask(0.5f, 42, 7, 1));
  EXPECT_EQ(base, mask_bits(make_dropout_mask(0.5f, 42, 7, 1)));
  for (const DropoutMask& other : {make_dropout_mask(0.5f, 42, 8, 1), make_dropout_mask(0.5f, 42, 7, 0),
                                   make_dropout_mask(0.5f, 43, 7, 1)}) {
    const auto bits = mask_bits(other);
    std::size_t same = 0;
    for (std::size_t i = 0; i < bits.size(); ++i) same += bits[i] == base[i];
    EXPECT_NEAR(static_cast<double>(same) / static_cast<double>(bits.size()), 0.5, 0.05);
  }
  // Extreme p: 0.999 keeps ~0.1%, scaled by 1000, all finite.
  const DropoutMask hi = make_dropout_mask(0.999f, 1, 1, 0);
  cpu::dropout_forward(a.data(), out.data(), n, hi);
  for (float v : out) ASSERT_TRUE(std::isfinite(v));
  // Backward applies the same mask in place.
  std::vector<float> d(n, 2.0f);
  const DropoutMask m = make_dropout_mask(0.3f, 5, 2, 0);
  cpu::dropout_forward(a.data(), out.data(), n, m);
  cpu::dropout_backward(d.data(), n, m);
  for (std::size_t i = 0; i < n; i += 997) ASSERT_EQ(d[i], 2.0f * out[i]);
}

// Finite differences through the dropped units: with the step fixed the masks are fixed, so the
// loss is a smooth function of the parameters (tanh and sigmoid: no kinks) and backward must be
// its gradient (finite_differences.hpp: float64, central differences, h = 1e-6).
TEST(Dropout, BackwardMatchesCentralDifferencesThroughTheMasks) {
  for (const Activation act : {Activation::tanh, Activation::sigmoid}) {
    for (const Loss loss : {Loss::xent, Loss::l2}) {
      SCOPED_TRACE(std::string(to_string(act)) + "/" + to_string(loss));
      ModelSpec spec;
      spec.inputs = 13;
      spec.hidden = {9, 7};
      spec.activation = act;
      spec.loss = loss;
      const int batch = 6;
      const long long step = 3;
      CpuNet<double> net(spec, batch, 0.4f, 11);
      init_params(spec, net.layout(), 1, net.params().data());
      Rng rng(77, RngStream::test_data);
      std::vector<double> x(static_cast<std::size_t>(batch) * spec.inputs);
      for (auto& v : x) v = rng.uniform();
      std::vector<std::uint8_t> labels(batch);
      for (auto& y : labels) y = static_cast<std::uint8_t>(rng.below(10));
      const test::FdCheck fd = test::check_central_differences(net, x, labels, batch, step);
      // Dropout really acts: evaluation (step 0) gives another loss.
      EXPECT_GT(std::abs(test::mean_loss(net, x, labels, batch) - fd.backward_loss), 1e-6 / batch);
      EXPECT_EQ(fd.failures, 0) << fd.worst;
      int zero_rows = 0;
      for (double g : fd.analytic) zero_rows += g == 0.0;
      EXPECT_GT(zero_rows, 0) << "dropped units must get no gradient into their outgoing weights";
    }
  }
}

TEST(Dropout, TrainsOnTheCpuAndItsFlagsAreCheckedAndDocumented) {
  const auto [out, code] = test::run_exe(
      "train --device cpu --hidden 64 --epochs 1 --val 1000 --dropout 0.2 --patience 2 --lr-patience 1 --schedule step");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("test: accuracy 9"), std::string::npos) << "one epoch with dropout 0.2 reaches 90%+:\n" << out;
  EXPECT_NE(out.find("testing the best epoch's weights: epoch 1"), std::string::npos) << out;
  const std::pair<const char*, const char*> refusals[] = {
      {"--dropout 1", "--dropout: expected a probability in [0, 1), got '1'"},
      {"--dropout -0.1", "--dropout: expected a probability in [0, 1)"},
      {"--hidden '' --dropout 0.5", "--dropout: drops hidden units, and --hidden is empty"},
      {"--patience 3 --val 0", "--patience: early stopping watches the validation loss; it needs --val > 0"},
      {"--lr-patience 2 --val 0", "--lr-patience: plateau cuts watch the validation loss"},
      {"--lr-factor 1", "--lr-factor: expected a factor in (0, 1), got '1'"},
      {"--lr-step 0", "--lr-step: expected a whole number of epochs in 1..100000"},
      {"--min-delta 2", "--min-delta: expected a relative threshold in [0, 1)"},
      {"--patience x", "--patience: expected a whole number of epochs"},
      {"--schedule linear", "--schedule: expected one of constant | cosine | step | exp, got 'linear'"}};
  for (const auto& [flags, message] : refusals) {
    const auto [o, c] = test::run_exe(std::string("train --device cpu --epochs 1 ") + flags);
    EXPECT_EQ(c, 2) << flags << "\n" << o;
    EXPECT_NE(o.find(message), std::string::npos) << flags << "\n" << o;
  }
}

// --target: the test set after every epoch, and the training time until it first reached the
// target (the sum of the epochs' training times up to that epoch); --limit cuts the training set.
TEST(TimeToAccuracy, TargetTestsEveryEpochAndReportsTheTimeToReachIt) {
  test::TempDir dir;
  const std::string metrics = (dir / "m.jsonl").string();
  const auto [out, code] = test::run_exe("train --device cpu --hidden 64 --epochs 3 --val 1000 --limit 8000 --target 0.9 "
                                         "--metrics '" + metrics + "'");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("data: MNIST"), std::string::npos);
  EXPECT_NE(out.find("(8000 train, 1000 validation"), std::string::npos) << out;
  EXPECT_NE(out.find("time to 90.00% test accuracy: "), std::string::npos) << out;
  EXPECT_NE(out.find("memory: peak host "), std::string::npos) << out;
  std::ifstream in(metrics);
  std::vector<nlohmann::json> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 4u);
  double elapsed = 0, expect = -1;
  for (int e = 0; e < 3; ++e) {
    ASSERT_TRUE(lines[e]["test_acc"].is_number()) << lines[e].dump();
    elapsed += lines[e]["epoch_s"].get<double>();
    if (expect < 0 && lines[e]["test_acc"].get<double>() >= 0.9) expect = elapsed;
  }
  ASSERT_GT(expect, 0) << "a 784-64-10 net reaches 90% within 3 epochs of 8000 images";
  EXPECT_NEAR(lines[3]["train_s_to_target"].get<double>(), expect, 1e-9);
  EXPECT_GT(lines[3]["peak_host_bytes"].get<double>(), 50e6);  // MNIST alone is 55 MB
  // The GPU's settings on the CPU: none apply, and the metrics say so.
  EXPECT_TRUE(lines[3]["data_path"].is_null()) << lines[3].dump();
  EXPECT_TRUE(lines[3]["cuda_graph"].is_null()) << lines[3].dump();
  EXPECT_EQ(lines[3]["kernels_per_step"].get<int>(), 0);
  EXPECT_EQ(out.find("gpu step:"), std::string::npos) << out;
  // Without --target, no per-epoch test.
  // (--data-path and --cuda-graph are accepted and change nothing on the CPU.)
  const auto [out2, code2] = test::run_exe("train --device cpu --hidden 16 --epochs 1 --val 500 --limit 2000 "
                                           "--data-path resident --cuda-graph off --metrics '" + metrics + "'");
  ASSERT_EQ(code2, 0) << out2;
  std::ifstream in2(metrics);
  std::string first;
  std::getline(in2, first);
  EXPECT_TRUE(nlohmann::json::parse(first)["test_acc"].is_null()) << first;
  EXPECT_EQ(out2.find("time to"), std::string::npos);
}

TEST(TimeLimit, EndsAfterTheEpochThatPassesItAndStillTests) {
  TrainConfig cfg;
  cfg.epochs = 5;
  cfg.schedule = Schedule::constant;
  const Dataset train_set = rows(40), val = rows(7), test = rows(11);
  NullObserver obs;
  cfg.time_limit_s = 1e-12;  // any epoch takes longer: the run ends after the first
  ScriptedBackend be({0.9, 0.8, 0.7, 0.6, 0.5}, val.count);
  const TrainResult r = train(cfg, TrainData{train_set, val, test}, be, obs);
  EXPECT_TRUE(r.time_limited);
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.epochs.size(), 1u);
  EXPECT_EQ(r.test.count, 11) << "a time-limited run is tested like a finished one";
  EXPECT_NEAR(r.test.acc, 0.01, 1e-12);
  // Resumed (as from its checkpoint) with the same limit: one more epoch, the earlier one not
  // counted against this process's limit.
  TrainOptions opt;
  opt.resume = r.progress;
  ScriptedBackend be2({0.8, 0.7, 0.6, 0.5}, val.count);
  be2.set_params(be.get_params());
  const TrainResult r2 = train(cfg, TrainData{train_set, val, test}, be2, obs, opt);
  EXPECT_TRUE(r2.time_limited);
  EXPECT_EQ(r2.epochs.size(), 2u);
  // A limit reached in the last epoch is no limit: the run simply finished.
  cfg.epochs = 1;
  ScriptedBackend be3({0.9}, val.count);
  const TrainResult r3 = train(cfg, TrainData{train_set, val, test}, be3, obs);
  EXPECT_FALSE(r3.time_limited);
  // Off (0) or far away: every epoch.
  cfg.epochs = 3;
  for (double limit : {0.0, 1e6}) {
    cfg.time_limit_s = limit;
    ScriptedBackend be4({0.9, 0.8, 0.7}, val.count);
    const TrainResult r4 = train(cfg, TrainData{train_set, val, test}, be4, obs);
    EXPECT_FALSE(r4.time_limited) << limit;
    EXPECT_EQ(r4.epochs.size(), 3u) << limit;
  }
}

TEST(TimeLimit, TheExecutableTestsSavesAndItsCheckpointFinishesTheRunAsIfNeverLimited) {
  test::TempDir dir;
  auto path = [&](const char* f) { return "'" + (dir / f).string() + "'"; };
  const std::string run = "train --device cpu --hidden 32 --epochs 3 --val 500 --limit 3000 --seed 4 ";
  const auto [out, code] = test::run_exe(run + "--time-limit 0.000001 --checkpoint " + path("ck") + " --save " +
                                         path("m.model") + " --metrics " + path("m.jsonl"));
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("time limit: 1e-6 s of training reached after epoch 1 of 3; testing now; "
                     "`mnist_gpu train --resume "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("trains the other 2"), std::string::npos) << out;
  EXPECT_NE(out.find("test: accuracy"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(dir / "m.model"));
  std::ifstream in(dir / "m.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines[1]["time_limited"].get<bool>());
  EXPECT_EQ(lines[1]["epochs_run"].get<int>(), 1);
  EXPECT_DOUBLE_EQ(lines[1]["time_limit_s"].get<double>(), static_cast<double>(1e-6f));
  // The checkpoint continues it (no limit now): the same test result as a run never limited.
  const auto [out2, code2] = test::run_exe("train --device cpu --resume " + path("ck") + " --metrics " + path("r.jsonl"));
  ASSERT_EQ(code2, 0) << out2;
  const auto [out3, code3] = test::run_exe(run + "--metrics " + path("clean.jsonl"));
  ASSERT_EQ(code3, 0) << out3;
  auto final_line = [&](const char* f) {
    std::ifstream s(dir / f);
    std::string l, last;
    while (std::getline(s, l)) last = l;
    return nlohmann::json::parse(last);
  };
  const nlohmann::json resumed = final_line("r.jsonl"), clean = final_line("clean.jsonl");
  EXPECT_EQ(resumed["epochs_run"].get<int>(), 3);
  EXPECT_FALSE(resumed["time_limited"].get<bool>());
  EXPECT_EQ(resumed["test_acc"], clean["test_acc"]);
  EXPECT_EQ(resumed["confusion"], clean["confusion"]);
  // Without a checkpoint the log says how to keep one; a negative limit is refused by name.
  const auto [out4, code4] = test::run_exe(run + "--time-limit 1e-6");
  ASSERT_EQ(code4, 0) << out4;
  EXPECT_NE(out4.find("to continue such a run later, give it --checkpoint FILE"), std::string::npos) << out4;
  const auto [out5, code5] = test::run_exe(run + "--time-limit -1");
  EXPECT_EQ(code5, 2) << out5;
  EXPECT_NE(out5.find("--time-limit"), std::string::npos) << out5;
}
