// The `train` command line: defaults, every flag parsed, every refusal naming its flag; then the
// real executable's exit codes (2 for usage errors, 0 for --help) and messages on stderr.
#include <gtest/gtest.h>

#include "test_paths.hpp"
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/error.hpp"

using mnist_gpu::Activation;
using mnist_gpu::DataPath;
using mnist_gpu::DeviceChoice;
using mnist_gpu::Loss;
using mnist_gpu::OptimizerKind;
using mnist_gpu::parse_train_flags;
using mnist_gpu::Schedule;
using mnist_gpu::TrainConfig;
using mnist_gpu::UsageError;
using Flags = std::vector<std::string>;

namespace {

std::string join(const Flags& flags) {
  std::string s;
  for (const auto& f : flags) s += (s.empty() ? "'" : " '") + f + "'";
  return s;
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// The UsageError message for `flags`, or a test failure (and "") when they are accepted.
std::string refusal(const Flags& flags) {
  try {
    parse_train_flags(flags);
  } catch (const UsageError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << join(flags) << " threw a non-usage error: " << e.what();
    return "";
  }
  ADD_FAILURE() << join(flags) << " was accepted";
  return "";
}

TEST(CliParse, Defaults) {
  const TrainConfig c = parse_train_flags({});
  // The optimizer, its rate and the schedule are tuning choices that move: the command line must
  // agree with the typed defaults (TrainConfig{}) and with default_lr, whatever they are.
  const TrainConfig typed;
  EXPECT_EQ(c.optimizer.kind, typed.optimizer.kind);
  EXPECT_EQ(c.optimizer.lr, typed.optimizer.lr);
  EXPECT_EQ(c.optimizer.lr, mnist_gpu::default_lr(c.optimizer.kind));
  EXPECT_EQ(c.schedule, typed.schedule);
  EXPECT_EQ(c.cuda.data, DataPath::streamed);  // the scheduler: pinned host memory, streamed
  EXPECT_TRUE(c.cuda.graph);
  EXPECT_EQ(c.optimizer.momentum, typed.optimizer.momentum);
  EXPECT_EQ(c.optimizer.beta1, typed.optimizer.beta1);
  EXPECT_EQ(c.optimizer.beta2, typed.optimizer.beta2);
  EXPECT_EQ(c.optimizer.eps, typed.optimizer.eps);
  EXPECT_EQ(c.model.hidden, typed.model.hidden);
  EXPECT_EQ(c.batch, typed.batch);

  EXPECT_EQ(c.batch, 128);
  EXPECT_EQ(c.model.inputs, 784);
  EXPECT_EQ(c.model.hidden, (std::vector<int>{512, 256}));
  EXPECT_EQ(c.model.outputs, 10);
  EXPECT_EQ(c.model.activation, Activation::relu);
  EXPECT_EQ(c.model.loss, Loss::xent);
  EXPECT_EQ(c.optimizer.momentum, 0.9f);
  EXPECT_FALSE(c.optimizer.nesterov);
  EXPECT_EQ(c.optimizer.l2, 0.0f);
  EXPECT_EQ(c.epochs, 10);
  EXPECT_EQ(c.val, 5000);
  EXPECT_EQ(c.seed, 1u);
  EXPECT_EQ(c.device, DeviceChoice::automatic);
  EXPECT_EQ(c.data_dir, "");
  EXPECT_EQ(c.metrics_path, "");
}

TEST(CliParse, EveryFlag) {
  const TrainConfig c = parse_train_flags(
      {"--data", "/tmp/mnist", "--device", "cpu", "--batch", "256", "--hidden", "300,100,50", "--activation",
       "tanh", "--loss", "l2", "--optimizer", "momentum", "--lr", "0.02", "--momentum", "0.5", "--nesterov",
       "--l2", "1e-4", "--schedule", "constant", "--epochs", "3", "--val", "0", "--seed", "18446744073709551615", "--metrics",
       "/tmp/m.jsonl"});
  EXPECT_EQ(c.data_dir, "/tmp/mnist");
  EXPECT_EQ(c.device, DeviceChoice::cpu);
  EXPECT_EQ(c.batch, 256);
  EXPECT_EQ(c.model.hidden, (std::vector<int>{300, 100, 50}));
  EXPECT_EQ(c.model.activation, Activation::tanh);
  EXPECT_EQ(c.model.loss, Loss::l2);
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::momentum);
  EXPECT_EQ(c.optimizer.lr, 0.02f);
  EXPECT_EQ(c.optimizer.momentum, 0.5f);
  EXPECT_TRUE(c.optimizer.nesterov);
  EXPECT_EQ(c.optimizer.l2, 1e-4f);
  EXPECT_EQ(c.schedule, Schedule::constant);
  EXPECT_EQ(c.epochs, 3);
  EXPECT_EQ(c.val, 0);
  EXPECT_EQ(c.seed, 18446744073709551615ull);
  EXPECT_EQ(c.metrics_path, "/tmp/m.jsonl");

  // The other choices of each enum, the range ends, and the --flag=value spelling.
  EXPECT_EQ(parse_train_flags({"--device", "cuda"}).device, DeviceChoice::cuda);
  EXPECT_EQ(parse_train_flags({"--device", "auto"}).device, DeviceChoice::automatic);
  EXPECT_EQ(parse_train_flags({"--data-path", "resident"}).cuda.data, DataPath::resident);
  EXPECT_EQ(parse_train_flags({"--data-path", "streamed"}).cuda.data, DataPath::streamed);
  EXPECT_FALSE(parse_train_flags({"--cuda-graph", "off"}).cuda.graph);
  EXPECT_TRUE(parse_train_flags({"--cuda-graph", "on"}).cuda.graph);
  EXPECT_FALSE(parse_train_flags({"--autotune", "off"}).cuda.autotune);
  EXPECT_TRUE(parse_train_flags({"--autotune", "on"}).cuda.autotune);
  EXPECT_TRUE(parse_train_flags({}).cuda.autotune);
  EXPECT_TRUE(parse_train_flags({"--timings"}).timings);
  EXPECT_FALSE(parse_train_flags({}).timings);
  EXPECT_EQ(parse_train_flags({"--activation", "sigmoid"}).model.activation, Activation::sigmoid);
  EXPECT_EQ(parse_train_flags({"--activation", "relu"}).model.activation, Activation::relu);
  EXPECT_EQ(parse_train_flags({"--activation", "gelu"}).model.activation, Activation::gelu);
  EXPECT_EQ(parse_train_flags({"--loss", "xent"}).model.loss, Loss::xent);
  EXPECT_EQ(parse_train_flags({"--schedule", "cosine"}).schedule, Schedule::cosine);
  EXPECT_EQ(parse_train_flags({"--batch", "1"}).batch, 1);
  EXPECT_EQ(parse_train_flags({"--batch=65536"}).batch, 65536);
  EXPECT_EQ(parse_train_flags({"--hidden", "1"}).model.hidden, (std::vector<int>{1}));
  EXPECT_EQ(parse_train_flags({"--optimizer", "momentum", "--momentum", "0"}).optimizer.momentum, 0.0f);
  EXPECT_EQ(parse_train_flags({"--val", "59999"}).val, 59999);
  EXPECT_EQ(parse_train_flags({"--seed", "0"}).seed, 0u);
  EXPECT_EQ(parse_train_flags({"--epochs", "1"}).epochs, 1);
}

TEST(CliParse, EmptyHiddenIsSoftmaxRegression) {
  EXPECT_TRUE(parse_train_flags({"--hidden", ""}).model.hidden.empty());
  EXPECT_TRUE(parse_train_flags({"--hidden", "", "--epochs", "2"}).model.hidden.empty());
  // (CLI11 reads "--hidden=" as "--hidden" without a value, not as an empty one.)
}

TEST(CliParse, DefaultLrFollowsTheOptimizer) {
  EXPECT_EQ(parse_train_flags({"--optimizer", "sgd"}).optimizer.lr, 0.1f);
  EXPECT_EQ(parse_train_flags({"--optimizer", "momentum"}).optimizer.lr, 0.05f);
  EXPECT_EQ(parse_train_flags({"--optimizer", "adam"}).optimizer.lr,
            mnist_gpu::default_lr(OptimizerKind::adam));
  EXPECT_GT(mnist_gpu::default_lr(OptimizerKind::adam), 0.0f);
  EXPECT_LT(mnist_gpu::default_lr(OptimizerKind::adam), 0.01f);  // adam's rates are ~1e-3
  EXPECT_EQ(parse_train_flags({"--optimizer", "sgd"}).optimizer.kind, OptimizerKind::sgd);
  EXPECT_EQ(parse_train_flags({"--optimizer", "adam"}).optimizer.kind, OptimizerKind::adam);
  // An explicit --lr wins, whichever order the flags come in.
  EXPECT_EQ(parse_train_flags({"--lr", "0.3", "--optimizer", "adam"}).optimizer.lr, 0.3f);
  EXPECT_EQ(parse_train_flags({"--optimizer", "sgd", "--lr", "2e-3"}).optimizer.lr, 2e-3f);
}

struct Refusal {
  Flags flags;
  std::string names;  // the flag the message must name
};

// quotes_value: the message must also quote the refused value (the parse_* refusals do; CLI11's
// own errors, such as an unknown flag, do not).
void expect_refusals(const std::vector<Refusal>& cases, bool quotes_value = true) {
  for (const Refusal& r : cases) {
    SCOPED_TRACE(join(r.flags));
    const std::string msg = refusal(r.flags);
    EXPECT_TRUE(contains(msg, r.names));
    // A refused value is quoted back to the user (when there is one).
    if (quotes_value && r.flags.size() == 2 && r.flags[0] == r.names) {
      EXPECT_TRUE(contains(msg, "'" + r.flags[1] + "'"));
    }
  }
}

TEST(CliParse, RefusesBadBatch) {
  expect_refusals({{{"--batch", "0"}, "--batch"},
                   {{"--batch", "-1"}, "--batch"},
                   {{"--batch", "abc"}, "--batch"},
                   {{"--batch", "1.5"}, "--batch"},
                   {{"--batch", "100000"}, "--batch"},
                   {{"--batch", ""}, "--batch"},
                   {{"--batch", "12 "}, "--batch"},
                   {{"--batch", "99999999999999999999999"}, "--batch"}});
}

TEST(CliParse, RefusesBadHidden) {
  expect_refusals({{{"--hidden", "512,,256"}, "--hidden"},
                   {{"--hidden", ",512"}, "--hidden"},
                   {{"--hidden", "512,"}, "--hidden"},
                   {{"--hidden", "0"}, "--hidden"},
                   {{"--hidden", "-5"}, "--hidden"},
                   {{"--hidden", "abc"}, "--hidden"},
                   {{"--hidden", "512,x"}, "--hidden"},
                   {{"--hidden", "512, 256"}, "--hidden"},
                   {{"--hidden", "100000"}, "--hidden"}});
}

TEST(CliParse, HiddenLayersAtMostWhatAModelFileHolds) {
  std::string ones = "1";
  for (int i = 1; i < mnist_gpu::kMaxHiddenLayers; ++i) ones += ",1";
  EXPECT_EQ(parse_train_flags({"--hidden", ones}).model.hidden.size(), 63u);
  const std::string msg = refusal({"--hidden", ones + ",1"});  // 64 hidden layers: a model file holds 63
  EXPECT_TRUE(contains(msg, "--hidden"));
  EXPECT_TRUE(contains(msg, "at most 63 layer widths"));
  EXPECT_TRUE(contains(msg, "this list has 64 (a model file holds at most 63 hidden layers)"));
}

TEST(CliParse, RefusesBadLr) {
  expect_refusals({{{"--lr", "nan"}, "--lr"},
                   {{"--lr", "inf"}, "--lr"},
                   {{"--lr", "-0.1"}, "--lr"},
                   {{"--lr", "0"}, "--lr"},
                   {{"--lr", "1e"}, "--lr"},
                   {{"--lr", ""}, "--lr"},
                   {{"--lr", "0.1x"}, "--lr"},
                   {{"--lr", "1e999"}, "--lr"}});
}

TEST(CliParse, RateRefusalsStateTheLimitAndFloatRounding) {
  EXPECT_TRUE(contains(refusal({"--lr", "1e10"}), "--lr: expected a number > 0 and at most 1e6, got '1e10'"));
  EXPECT_EQ(parse_train_flags({"--lr", "1e6"}).optimizer.lr, 1e6f);
  // Positive, but 0 (or a denormal whose products are 0) once stored as the float the trainer uses.
  EXPECT_TRUE(contains(refusal({"--lr", "1e-50"}), "got '1e-50', which rounds to 0 in single precision (float32)"));
  EXPECT_TRUE(contains(refusal({"--lr", "1e-45"}),
                       "got '1e-45', which is below the smallest normal single-precision (float32) number"));
  EXPECT_GT(parse_train_flags({"--lr", "1e-30"}).optimizer.lr, 0.0f);
  EXPECT_TRUE(contains(refusal({"--momentum", "0.999999999"}), "which rounds to 1 in single precision"));
  EXPECT_TRUE(contains(refusal({"--lr-factor", "1e-50"}), "which rounds to 0"));
  EXPECT_TRUE(contains(refusal({"--l2", "2e6"}), "--l2: expected a number in [0, 1e6]"));
}

TEST(CliParse, RefusesBadMomentumL2EpochsValSeed) {
  expect_refusals({{{"--momentum", "1"}, "--momentum"},
                   {{"--momentum", "-0.1"}, "--momentum"},
                   {{"--momentum", "nan"}, "--momentum"},
                   {{"--l2", "-1"}, "--l2"},
                   {{"--l2", "nan"}, "--l2"},
                   {{"--epochs", "0"}, "--epochs"},
                   {{"--epochs", "-3"}, "--epochs"},
                   {{"--val", "-1"}, "--val"},
                   {{"--val", "60000"}, "--val"},
                   {{"--seed", "-1"}, "--seed"},
                   {{"--seed", "abc"}, "--seed"},
                   {{"--seed", "18446744073709551616"}, "--seed"}});
}

TEST(CliParse, RefusesUnknownChoices) {
  expect_refusals({{{"--activation", "softplus"}, "--activation"},
                   {{"--activation", "identity"}, "--activation"},  // internal only
                   {{"--loss", "hinge"}, "--loss"},
                   {{"--optimizer", "adagrad"}, "--optimizer"},
                   {{"--schedule", "linear"}, "--schedule"},
                   {{"--device", "tpu"}, "--device"},
                   {{"--device", "CPU"}, "--device"},
                   {{"--data-path", "both"}, "--data-path"},  // bench only
                   {{"--data-path", "pinned"}, "--data-path"},
                   {{"--cuda-graph", "yes"}, "--cuda-graph"},
                   {{"--cuda-graph", "--epochs"}, "--cuda-graph"},
                   {{"--autotune", "fast"}, "--autotune"}});
  // The message lists what is accepted.
  EXPECT_TRUE(contains(refusal({"--optimizer", "adagrad"}), "rmsprop"));
}

TEST(CliParse, RefusesUnknownFlagMissingValueAndMisplacedNesterov) {
  expect_refusals({{{"--bogus"}, "--bogus"},
                   {{"--bogus", "3"}, "--bogus"},
                   {{"--batch"}, "--batch"},
                   {{"--lr"}, "--lr"},
                   {{"--epochs", "2", "--batch"}, "--batch"},
                   // CLI11 takes the next word as the value even when it looks like a flag; the
                   // value check then refuses it.
                   {{"--batch", "--nesterov"}, "--batch"},
                   {{"--nesterov", "--optimizer", "sgd"}, "--nesterov"},
                   {{"--optimizer", "adam", "--nesterov"}, "--nesterov"}},
                  /*quotes_value=*/false);
}

// --- the executable ---------------------------------------------------------------------------

struct ExeRun {
  int exit_code = -1;
  std::string output;
};

// Runs the mnist_gpu executable with `args` (already shell-quoted), capturing stderr (or stdout).
ExeRun run_exe(const std::string& args, bool capture_stdout = false) {
  const mnist_gpu::test::StreamsResult r = mnist_gpu::test::run_exe_streams(args);
  return ExeRun{r.exit_code, capture_stdout ? r.out : r.err};
}

TEST(CliExe, BadFlagsExitTwoAndNameTheFlag) {
  // A missing data directory and one epoch: if a bad flag were accepted, the run would fail fast
  // with exit 1 (data error) instead of training.
  const std::string safe = " --data /nonexistent/mnist_gpu_test --epochs 1";
  const std::vector<Refusal> cases = {{{"--batch", "0"}, "--batch"},
                                      {{"--hidden", "512,,256"}, "--hidden"},
                                      {{"--lr", "nan"}, "--lr"},
                                      {{"--optimizer", "adagrad"}, "--optimizer"},
                   {{"--schedule", "linear"}, "--schedule"},
                                      {{"--bogus"}, "--bogus"},
                                      {{"--val", "60000"}, "--val"}};
  for (const Refusal& c : cases) {
    std::string args = "train";
    for (const auto& f : c.flags) args += " '" + f + "'";
    SCOPED_TRACE(args);
    const ExeRun r = run_exe(args + safe);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_TRUE(contains(r.output, c.names));
  }
}

TEST(CliExe, TrainHelpExitsZeroAndListsTheFlags) {
  const ExeRun r = run_exe("train --help", /*capture_stdout=*/true);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "--batch"));
  EXPECT_TRUE(contains(r.output, "--hidden"));
  EXPECT_TRUE(contains(r.output, "--optimizer"));
}

TEST(CliExe, MisspeltCommandOrFlagSuggestsTheNearName) {
  const ExeRun command = run_exe("trian --epochs 1");
  EXPECT_EQ(command.exit_code, 2) << command.output;
  EXPECT_TRUE(contains(command.output, "'trian' is not a command; did you mean 'train'?"));
  const ExeRun flag = run_exe("train --epoch 1 --data /nonexistent/mnist_gpu_test");
  EXPECT_EQ(flag.exit_code, 2) << flag.output;
  EXPECT_TRUE(contains(flag.output, "'--epoch' is not a train flag; did you mean '--epochs'?"));
  const ExeRun eq = run_exe("eval --modle=m.bin");
  EXPECT_EQ(eq.exit_code, 2) << eq.output;
  EXPECT_TRUE(contains(eq.output, "did you mean '--model'?"));
  // Nothing near: no guess.
  const ExeRun far = run_exe("frobnicate");
  EXPECT_EQ(far.output.find("did you mean"), std::string::npos) << far.output;
}

TEST(CliExe, NoOrUnknownSubcommandFails) {
  const ExeRun none = run_exe("");
  EXPECT_NE(none.exit_code, 0) << none.output;
  EXPECT_FALSE(none.output.empty());  // says why
  const ExeRun unknown = run_exe("frobnicate");
  EXPECT_NE(unknown.exit_code, 0) << unknown.output;
}

}  // namespace

TEST(CliParse, FlagTakenAsAnotherFlagsValueIsRefusedNamingIt) {
  try {
    mnist_gpu::parse_train_flags({"--batch", "--hidden", "10"});
    FAIL() << "accepted --batch --hidden";
  } catch (const mnist_gpu::UsageError& e) {
    // CLI11 reports the stray "10" first or our check reports --batch; either way a flag is named.
    const std::string m = e.what();
    EXPECT_TRUE(m.find("--batch") != std::string::npos || m.find("10") != std::string::npos) << m;
  }
  try {
    mnist_gpu::parse_train_flags({"--activation", "--loss"});
    FAIL() << "accepted --activation --loss";
  } catch (const mnist_gpu::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--activation: expected a value, got the flag '--loss'"), std::string::npos)
        << e.what();
  }
}

TEST(CliExe, TimingsLogsEveryPhaseOnceAtTheEnd) {
  const auto with = mnist_gpu::test::run_exe("train --device cpu --epochs 1 --limit 600 --val 100 --hidden 16 --timings");
  ASSERT_EQ(with.code, 0) << with.out;
  const std::size_t at = with.out.find("timings: ");
  ASSERT_NE(at, std::string::npos) << with.out;
  const std::string line = with.out.substr(at, with.out.find('\n', at) - at);
  for (const char* phase : {"start-up ", "backend setup ", "data wait (loaded in ", "train/validation split ",
                            "run setup ", "training ", "evaluation ", "outputs ", "since main",
                            "test accuracy printed at "})
    EXPECT_TRUE(contains(line, phase));
  EXPECT_GT(with.out.find("timings: "), with.out.find("test: accuracy")) << "logged at the end";
  const auto without = mnist_gpu::test::run_exe("train --device cpu --epochs 1 --limit 600 --val 100 --hidden 16");
  ASSERT_EQ(without.code, 0) << without.out;
  EXPECT_FALSE(contains(without.out, "timings:"));
  // --autotune acts on the GPU only: with --device cpu, one warning line, and the run goes on.
  const auto autotune = mnist_gpu::test::run_exe("train --device cpu --epochs 1 --limit 300 --val 0 --hidden 8 --autotune off");
  ASSERT_EQ(autotune.code, 0) << autotune.out;
  EXPECT_TRUE(contains(autotune.out, "--autotune"));
  // A sweep has no --timings (its runs are logged apart).
  EXPECT_EQ(mnist_gpu::test::run_exe("sweep --timings --out /nonexistent-mnist-gpu").code, 2);
}
