// The step program (step_program.hpp) and the step interface train() drives: the stage list of a
// model, run_step's order, and a CPU backend's refusal of a batch out of turn.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/step_program.hpp"
#include "mnist_gpu/train.hpp"

using namespace mnist_gpu;

namespace {

// Records the stages it is asked to run, as "input", "forward 0", ...
struct Recorder {
  std::vector<std::string> seen;
  void input() { seen.push_back("input"); }
  void augment() { seen.push_back("augment"); }
  void forward(int l) { seen.push_back("forward " + std::to_string(l)); }
  void loss() { seen.push_back("loss"); }
  void backward(int l) { seen.push_back("backward " + std::to_string(l)); }
  void grad_hook() { seen.push_back("grad_hook"); }
  void update() { seen.push_back("update"); }
};

Dataset tiny_set(int n, int pixels) {
  Dataset d;
  d.count = n;
  d.rows = 1;
  d.cols = pixels;
  d.images.assign(static_cast<std::size_t>(n) * pixels, 128);
  d.labels.assign(static_cast<std::size_t>(n), 3);
  return d;
}

}  // namespace

TEST(StepProgram, TwoHiddenLayersRunInputForwardLossBackwardUpdate) {
  ModelSpec spec;
  spec.hidden = {16, 8};
  Recorder r;
  run_step(make_step_program(spec), r);
  const std::vector<std::string> want{"input",      "forward 0",  "forward 1",  "forward 2", "loss",
                                      "backward 2", "backward 1", "backward 0", "update"};
  EXPECT_EQ(r.seen, want);
}

TEST(StepProgram, SoftmaxRegressionIsOneLayer) {
  ModelSpec spec;
  spec.hidden = {};
  Recorder r;
  run_step(make_step_program(spec), r);
  EXPECT_EQ(r.seen, (std::vector<std::string>{"input", "forward 0", "loss", "backward 0", "update"}));
}

TEST(StepProgram, DeformingAddsTheAugmentStageBetweenInputAndLayerZero) {
  ModelSpec spec;
  spec.hidden = {};
  Recorder r;
  run_step(make_step_program(spec, true), r);
  EXPECT_EQ(r.seen, (std::vector<std::string>{"input", "augment", "forward 0", "loss", "backward 0", "update"}));
}

TEST(StepProgram, GradHookRunsWhereTheProgramPlacesIt) {
  ModelSpec spec;
  spec.hidden = {4};
  std::vector<Stage> p = make_step_program(spec);
  p.insert(p.end() - 1, Stage{StageKind::grad_hook, -1});
  Recorder r;
  run_step(p, r);
  ASSERT_GE(r.seen.size(), 2u);
  EXPECT_EQ(r.seen[r.seen.size() - 2], "grad_hook");
  EXPECT_EQ(r.seen.back(), "update");
}

// A 4-3-10 model at batch 2 over 5 rows of 4 pixels (3 batches, the last of one row).
struct TinyRun {
  std::unique_ptr<Backend> backend = make_cpu_backend(spec(), OptimizerConfig{}, 2, 1);
  Dataset d = tiny_set(5, 4);
  std::vector<std::uint32_t> order{0, 1, 2, 3, 4};
  static ModelSpec spec() {
    ModelSpec s;
    s.inputs = 4;
    s.hidden = {3};
    return s;
  }
};

// The CPU backend takes the batches of the epoch it began in turn, and nothing outside one.
TEST(StepInterface, CpuBackendRefusesABatchOutOfTurn) {
  TinyRun t;
  Backend* backend = t.backend.get();
  const Dataset& d = t.d;
  const std::vector<std::uint32_t>& order = t.order;
  EXPECT_THROW(backend->step(0), Error) << "no epoch begun";
  backend->begin_epoch(d, order, 0.01f, 1, EpochSums{}, 1);
  EXPECT_THROW(backend->step(0), Error) << "the epoch began at batch 1";
  backend->step(1);
  EXPECT_THROW(backend->step(1), Error) << "batch 1 twice";
  backend->step(2);
  const EpochSums s = backend->end_epoch();
  EXPECT_GT(s.loss_sum, 0.0);
  EXPECT_EQ(backend->get_state().step, 2);
}

// run_epoch over a resumed epoch (from batch 1, with sums so far) adds to those sums.
TEST(StepInterface, RunEpochFromABatchAddsToTheSumsSoFar) {
  TinyRun t;
  EpochControl ctl;
  ctl.first_batch = 1;
  ctl.start.loss_sum = 100.0;
  ctl.start.correct = 7;
  ctl.start.samples = 2;
  ctl.start.batches = 1;
  const EpochSums s = run_epoch(*t.backend, t.d, t.order, 0.01f, ctl);
  EXPECT_EQ(s.batches, 3);
  EXPECT_EQ(s.samples, 5);
  EXPECT_GT(s.loss_sum, 100.0);
  EXPECT_GE(s.correct, 7u);
  EXPECT_EQ(t.backend->get_state().step, 2);
}

// The running sums a progress line reads: none before an epoch; after each step exactly what
// end_epoch will return so far (a resumed epoch's sums included), with the samples and batches.
TEST(StepInterface, CpuRunningSumsAreTheEpochsSumsAfterEachStep) {
  TinyRun t;
  EpochSums seen;
  EXPECT_FALSE(t.backend->running_sums(seen)) << "no epoch begun";
  EpochSums start;
  start.loss_sum = 100.0;
  start.correct = 7;
  start.samples = 2;
  start.batches = 1;
  t.backend->begin_epoch(t.d, t.order, 0.01f, 1, start, 1);
  ASSERT_TRUE(t.backend->running_sums(seen));
  EXPECT_EQ(seen.loss_sum, 100.0);
  EXPECT_EQ(seen.samples, 2);
  EXPECT_EQ(seen.batches, 1);
  t.backend->step(1);
  ASSERT_TRUE(t.backend->running_sums(seen));
  EXPECT_GT(seen.loss_sum, 100.0);
  EXPECT_EQ(seen.samples, 4);
  EXPECT_EQ(seen.batches, 2);
  t.backend->step(2);
  ASSERT_TRUE(t.backend->running_sums(seen));
  const EpochSums end = t.backend->end_epoch();
  EXPECT_EQ(seen.loss_sum, end.loss_sum);
  EXPECT_EQ(seen.correct, end.correct);
  EXPECT_EQ(seen.samples, 5);
  EXPECT_FALSE(t.backend->running_sums(seen)) << "the epoch has ended";
}

// Evaluation progress: rows done after each batch, rising to the total; the result is the same
// with or without a progress callback.
TEST(StepInterface, CpuEvaluateReportsRowsDoneAfterEachBatch) {
  TinyRun t;
  std::vector<long long> done;
  const EvalResult with = t.backend->evaluate(t.d, [&](long long d, long long total) {
    EXPECT_EQ(total, t.d.count);
    done.push_back(d);
  });
  EXPECT_EQ(done, (std::vector<long long>{2, 4, 5}));
  const EvalResult without = t.backend->evaluate(t.d);
  EXPECT_EQ(with.loss, without.loss);
  EXPECT_EQ(with.confusion, without.confusion);
}

namespace {

// Records train()'s evaluations as "validation 1 0/5" ..., and raises the stop flag when asked to
// at the start of one.
struct EvalRecorder : TrainObserver {
  std::vector<std::string> seen;
  std::atomic<bool>* stop_at_validation_start = nullptr;
  void on_eval(EvalKind what, int epoch, long long done, long long total) override {
    const char* name = what == EvalKind::validation ? "validation" : what == EvalKind::test ? "test" : "target";
    seen.push_back(std::string(name) + " " + std::to_string(epoch) + " " + std::to_string(done) + "/" +
                   std::to_string(total));
    if (what == EvalKind::validation && done == 0 && stop_at_validation_start) stop_at_validation_start->store(true);
  }
};

}  // namespace

TEST(StepInterface, TrainReportsEachEvaluationsProgress) {
  TinyRun t;
  TrainConfig cfg;
  cfg.model = TinyRun::spec();
  cfg.epochs = 2;
  const Dataset val = tiny_set(3, 4), test = tiny_set(5, 4);
  EvalRecorder obs;
  const TrainResult r = train(cfg, TrainData{t.d, val, test}, *t.backend, obs);
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(obs.seen, (std::vector<std::string>{"validation 1 0/3", "validation 1 2/3", "validation 1 3/3",
                                                "validation 2 0/3", "validation 2 2/3", "validation 2 3/3",
                                                "test 2 0/5", "test 2 2/5", "test 2 4/5", "test 2 5/5"}));
}

// A stop asked during an epoch's evaluation ends the run after that epoch, whole, instead of in
// the next one or (after the last) with the test: the progress holds the epoch, no partial batch.
TEST(StepInterface, StopDuringValidationEndsTheRunAfterThatEpochWhole) {
  for (int epochs : {1, 3}) {
    TinyRun t;
    TrainConfig cfg;
    cfg.model = TinyRun::spec();
    cfg.epochs = epochs;
    const Dataset val = tiny_set(3, 4), test = tiny_set(5, 4);
    std::atomic<bool> stop{false};
    EvalRecorder obs;
    obs.stop_at_validation_start = &stop;
    TrainOptions opt;
    opt.stop = &stop;
    const TrainResult r = train(cfg, TrainData{t.d, val, test}, *t.backend, obs, opt);
    EXPECT_TRUE(r.stopped) << epochs;
    ASSERT_EQ(r.progress.done.size(), 1u) << epochs;
    EXPECT_EQ(r.progress.partial.batches, 0) << epochs;
    EXPECT_FALSE(std::isnan(r.progress.done[0].val_loss)) << epochs << ": the validation finished";
    EXPECT_EQ(obs.seen.back(), "validation 1 3/3") << epochs << ": no test after the stop";
  }
}
