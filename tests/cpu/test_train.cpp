// The training loop: seeded epoch orders, the batch plan and gather (the scheduler's CPU half),
// determinism, the learning-rate schedule, and end-to-end runs on the bundled MNIST.
#include <gtest/gtest.h>

#include "test_paths.hpp"
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/batches.hpp"
#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/train.hpp"
#include "mnist_gpu/verify.hpp"

using namespace mnist_gpu;

namespace {

const MnistFiles& real_data() {
  static const MnistFiles files = load_mnist_dir(mnist_gpu::test::data_dir());
  return files;
}

class NullObserver : public TrainObserver {};

}  // namespace

TEST(EpochOrder, PermutationSeededAndFreshEachEpoch) {
  const auto a = epoch_order(5, 1, 1000), b = epoch_order(5, 1, 1000), c = epoch_order(5, 2, 1000),
             d = epoch_order(6, 1, 1000);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (std::uint32_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
}

// The scheduler's contract: every index exactly once per epoch, in the seeded order, with the
// last batch partial (55000 = 214 * 256 + 216).
TEST(BatchPlan, DeliversEveryIndexOnceInSeededOrder) {
  const int n = 55000, batch = 256, px = 4;
  Dataset d;
  d.count = n;
  d.rows = 2;
  d.cols = 2;
  d.images.resize(static_cast<std::size_t>(n) * px);
  d.labels.resize(n);
  for (int i = 0; i < n; ++i) {  // each image encodes its own index
    for (int p = 0; p < px; ++p) d.images[static_cast<std::size_t>(i) * px + p] = static_cast<std::uint8_t>(i >> (8 * p));
    d.labels[i] = static_cast<std::uint8_t>(i % 10);
  }
  const auto order = epoch_order(42, 3, n);
  const BatchPlan plan(order, batch);
  ASSERT_EQ(plan.count(), 215);
  EXPECT_EQ(plan.rows(0), 256);
  EXPECT_EQ(plan.rows(214), 55000 - 214 * 256);
  std::vector<std::uint8_t> img(static_cast<std::size_t>(batch) * px), lab(batch);
  std::vector<int> seen(n, 0);
  std::size_t pos = 0;
  for (long long k = 0; k < plan.count(); ++k) {
    const int rows = plan.rows(k);
    gather_rows(d.images.data(), d.labels.data(), px, plan.indices(k), rows, img.data(), lab.data());
    for (int r = 0; r < rows; ++r, ++pos) {
      int idx = 0;
      for (int p = 0; p < px; ++p) idx |= img[static_cast<std::size_t>(r) * px + p] << (8 * p);
      ASSERT_EQ(static_cast<std::uint32_t>(idx), order[pos]) << "batch " << k << " row " << r;
      ASSERT_EQ(lab[r], idx % 10);
      seen[idx]++;
    }
  }
  EXPECT_EQ(pos, static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(seen[i], 1) << "index " << i;
}

TEST(Schedule, CosineDecaysFromLrTowardsZero) {
  TrainConfig cfg;
  cfg.optimizer.lr = 0.01f;
  cfg.epochs = 4;
  cfg.schedule = Schedule::constant;
  EXPECT_FLOAT_EQ(epoch_lr(cfg, 3), 0.01f);
  cfg.schedule = Schedule::cosine;
  const double pi = 3.14159265358979323846;
  for (int e = 1; e <= 4; ++e)
    EXPECT_NEAR(epoch_lr(cfg, e), 0.01 * 0.5 * (1 + std::cos(pi * (e - 0.5) / 4)), 1e-9);
  EXPECT_GT(epoch_lr(cfg, 1), epoch_lr(cfg, 2));
  EXPECT_GT(epoch_lr(cfg, 4), 0.0f);
}

// Same seed, same machine: bit-identical parameters and metrics (CPU).
TEST(Train, SameSeedIsBitIdenticalOnCpu) {
  const MnistFiles& f = real_data();
  std::vector<std::uint32_t> idx(3000);
  std::iota(idx.begin(), idx.end(), 0u);
  const Dataset small = subset(f.train, idx);
  TrainConfig cfg;
  cfg.model.hidden = {32, 16};
  cfg.epochs = 2;
  cfg.batch = 100;
  cfg.seed = 9;
  NullObserver obs;
  std::vector<float> params[2];
  double loss[2];
  for (int run = 0; run < 2; ++run) {
    auto be = make_cpu_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed);
    const TrainResult r = train(cfg, TrainData{small, small, small}, *be, obs);
    params[run] = be->get_params();
    loss[run] = r.epochs.back().train_loss;
  }
  ASSERT_EQ(params[0].size(), params[1].size());
  EXPECT_EQ(0, std::memcmp(params[0].data(), params[1].data(), params[0].size() * sizeof(float)));
  EXPECT_EQ(loss[0], loss[1]);
  // A different seed gives a different model (the seed is really used).
  cfg.seed = 10;
  auto be = make_cpu_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed);
  train(cfg, TrainData{small, small, small}, *be, obs);
  EXPECT_NE(0, std::memcmp(params[0].data(), be->get_params().data(), params[0].size() * sizeof(float)));
}

// End to end on the real data through the library: one epoch of a small net must reach an
// accuracy that a broken trainer cannot (chance is 10%, a linear model ~92%).
TEST(Train, OneEpochOnMnistReaches90Percent) {
  const MnistFiles& f = real_data();
  const SplitIndices split = split_indices(f.train.count, 5000, 1);
  const Dataset tr = subset(f.train, split.train), va = subset(f.train, split.val);
  TrainConfig cfg;
  cfg.model.hidden = {64};
  cfg.epochs = 1;
  cfg.batch = 128;
  NullObserver obs;
  auto be = make_cpu_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed);
  const TrainResult r = train(cfg, TrainData{tr, va, f.test}, *be, obs);
  ASSERT_EQ(r.epochs.size(), 1u);
  EXPECT_GE(r.test.acc, 0.90);
  EXPECT_GE(r.epochs[0].val_acc, 0.90);
  EXPECT_EQ(r.test.count, 10000);
  unsigned long long total = 0, errors = 0;
  for (auto c : r.test.confusion) total += c;
  for (auto e : r.test.per_class_errors()) errors += e;
  EXPECT_EQ(total, 10000u);
  EXPECT_NEAR(static_cast<double>(errors) / 10000.0, 1.0 - r.test.acc, 1e-12);
}

// The executable on the real data with --metrics: exit 0, JSON lines with the documented keys.
TEST(Train, ExecutableWritesMetricsLines) {
  const std::string metrics = ::testing::TempDir() + "mnist_gpu_e2e_metrics.jsonl";
  const std::string cmd = mnist_gpu::test::exe() +
                          " train --device cpu --epochs 2 --hidden 32 --batch 256 --val 1000 --metrics " + metrics +
                          " 2>/dev/null";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  std::ifstream in(metrics);
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  for (int e = 0; e < 2; ++e) {
    for (const char* key : {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s", "samples_per_s"})
      EXPECT_TRUE(lines[e].contains(key)) << key;
    EXPECT_EQ(lines[e]["epoch"], e + 1);
  }
  const auto& fin = lines[2];
  for (const char* key : {"test_acc", "test_loss", "per_class_errors", "confusion", "device", "seed", "train_s"})
    EXPECT_TRUE(fin.contains(key)) << key;
  EXPECT_GE(fin["test_acc"].get<double>(), 0.90);
  EXPECT_EQ(fin["device"], "cpu");
  EXPECT_EQ(fin["per_class_errors"].size(), 10u);
  EXPECT_EQ(fin["confusion"].size(), 10u);
  std::remove(metrics.c_str());
}

TEST(Train, ValZeroGivesNullValidationMetrics) {
  const std::string metrics = ::testing::TempDir() + "mnist_gpu_e2e_val0.jsonl";
  const std::string cmd = mnist_gpu::test::exe() + " train --device cpu --epochs 1 --hidden '' --val 0 --metrics " +
                          metrics + " 2>/dev/null";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  std::ifstream in(metrics);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const auto j = nlohmann::json::parse(line);
  EXPECT_TRUE(j["val_acc"].is_null());
  EXPECT_TRUE(j["val_loss"].is_null());
  std::remove(metrics.c_str());
}

TEST(Train, DeviceCudaWithoutGpuIsAnErrorNotAFallback) {
  if (probe_device().usable) GTEST_SKIP() << "a usable GPU is present";
  const auto [out, code] = mnist_gpu::test::run_exe("train --device cuda --epochs 1");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("--device cuda: no usable GPU"), std::string::npos) << out;
  EXPECT_EQ(out.find("epoch"), std::string::npos) << "must not train on the CPU instead:\n" << out;
}

// A GPU named by index is refused like any missing one, naming the index (on a machine with a
// GPU, an index past the visible ones: the probe says how many there are).
TEST(Train, DeviceCudaIndexWithoutThatGpuIsAnError) {
  const auto [out, code] = mnist_gpu::test::run_exe("train --device cuda:7 --epochs 1");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("--device cuda:7: no usable GPU"), std::string::npos) << out;
  if (probe_device().usable) {
    EXPECT_NE(out.find("device 7 asked for"), std::string::npos) << out;
  }
  EXPECT_EQ(out.find("epoch"), std::string::npos) << "must not train on the CPU instead:\n" << out;
}

TEST(Train, DivergenceIsCaughtInItsEpochWithAdvice) {
  const auto [out, code] =
      mnist_gpu::test::run_exe("train --device cpu --optimizer sgd --loss l2 --lr 10 --hidden 32 --epochs 3 --val 1000");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("training diverged in epoch 1: the loss became"), std::string::npos) << out;
  EXPECT_NE(out.find("try a smaller --lr"), std::string::npos) << out;
  EXPECT_EQ(out.find("test: accuracy"), std::string::npos) << out;
}

// verify's batch filter: the margin is the gap between the two largest outputs (softmax
// regression has no hidden decision), computed here by hand on a 2-input, 3-output model.
TEST(DecisionMargin, IsTheSmallestGapToAThreshold) {
  ModelSpec spec;
  spec.inputs = 2;
  spec.hidden = {};
  spec.outputs = 3;
  // W (3, 2) then b (3): outputs = (x0 + 0.1, x1, 0.5 x0 + 0.5 x1)
  const std::vector<float> params{1, 0, 0, 1, 0.5f, 0.5f, 0.1f, 0, 0};
  const float x[] = {0.5f, 0.25f, 0.0f, 1.0f};
  // row 0: (0.6, 0.25, 0.375) -> gap 0.225; row 1: (0.1, 1, 0.5) -> gap 0.5
  EXPECT_NEAR(decision_margin(spec, params, x, 2), 0.225, 1e-7);
  EXPECT_NEAR(decision_margin(spec, params, x + 2, 1), 0.5, 1e-7);
  // With a relu hidden layer the distance of a pre-activation from 0 counts too.
  spec.hidden = {1};
  spec.outputs = 2;
  // W1 (1, 2), W2 (2, 1), b1 (1), b2 (2): z1 = x0 - x1 + 0.001; outputs = (relu(z1), -relu(z1) + 1)
  const std::vector<float> p2{1, -1, 1, -1, 0.001f, 0, 1};
  const float y[] = {0.5f, 0.5f};
  EXPECT_NEAR(decision_margin(spec, p2, y, 1), 0.001, 1e-6);
}

// With dropout, the margin is that of the training pass: the step's masks, at the row's position
// in its batch. Checked against CpuNet<double> running the whole batch in that step.
TEST(DecisionMargin, AppliesTheStepsDropoutMasksAtTheRowsPosition) {
  ModelSpec spec;
  spec.inputs = 4;
  spec.hidden = {16};
  spec.outputs = 3;
  spec.activation = Activation::tanh;  // no hidden threshold: the margin is the output gap alone
  const ParamLayout layout(spec);
  std::vector<float> params(layout.size);
  init_params(spec, layout, 3, params.data());
  const float p = 0.5f;
  const std::uint64_t seed = 11;
  const long long step = 7;
  const int first_row = 5;
  const std::vector<float> x{0.9f, 0.1f, 0.4f, 0.7f};

  CpuNet<double> net(spec, first_row + 1, p, seed);
  std::copy(params.begin(), params.end(), net.params().begin());
  std::vector<double> batch(static_cast<std::size_t>(first_row + 1) * spec.inputs, 0.25);
  std::copy(x.begin(), x.end(), batch.begin() + static_cast<std::ptrdiff_t>(first_row) * spec.inputs);
  const double* out = net.forward(batch.data(), first_row + 1, step);
  std::vector<double> row(out + first_row * spec.outputs, out + (first_row + 1) * spec.outputs);
  std::sort(row.begin(), row.end(), std::greater<double>());
  const double want = row[0] - row[1];

  const double got = decision_margin(spec, params, x.data(), 1, MarginDropout{p, seed, step, first_row});
  EXPECT_NEAR(got, want, 1e-12);
  // The masks changed the decision, and they depend on the row's position.
  EXPECT_GT(std::fabs(got - decision_margin(spec, params, x.data(), 1)), 1e-6);
  EXPECT_GT(std::fabs(got - decision_margin(spec, params, x.data(), 1, MarginDropout{p, seed, step, 0})), 1e-6);
}

// The backends score MNIST's 10 classes (the loss reads output[label]); a checkpoint with another
// output count (the trainer never writes one) is refused on resume, naming the file, before any
// training; a backend asked for one refuses too.
TEST(Train, ResumeRefusesACheckpointWithoutTenOutputs) {
  Checkpoint ck;
  ck.config.model.hidden = {8};
  ck.config.model.outputs = 3;
  ck.config.optimizer.kind = OptimizerKind::sgd;
  ck.config.epochs = 2;
  ck.state.params.assign(ParamLayout(ck.config.model).size, 0.01f);
  mnist_gpu::test::TempDir dir;
  const std::string path = (dir.path() / "three.ckpt").string();
  write_checkpoint(path, ck);
  const auto [out, code] = mnist_gpu::test::run_exe("train --device cpu --resume " + path);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find(path + ": the checkpoint's model has 3 outputs; training on MNIST needs 10"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("epoch 1"), std::string::npos) << out;
  EXPECT_THROW(make_cpu_backend(ck.config.model, ck.config.optimizer, 16, 1), Error);
}
