// The settings table (settings.hpp): every setting parses its example, prints it back as typed,
// round-trips through a checkpoint's config JSON and is covered by --resume's check; flags that do
// nothing in the chosen settings are refused or warned about.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/resume.hpp"
#include "mnist_gpu/settings.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
using Flags = std::vector<std::string>;

namespace {

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

std::string usage_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(accepted)";
}

// A config holding `s`'s example value (the flag given alone, on the defaults).
TrainConfig with_example(const Setting& s) {
  TrainConfig c;
  s.parse(s.example, c);
  return c;
}

}  // namespace

TEST(Settings, EveryExampleParsesAndPrintsBackAsTyped) {
  std::set<std::string> names;
  for (const Setting& s : train_settings()) {
    SCOPED_TRACE(s.name());
    EXPECT_FALSE(s.name().empty());
    EXPECT_TRUE(names.insert(s.name()).second) << "defined twice";
    ASSERT_TRUE(s.parse && s.show);
    EXPECT_FALSE(s.help.empty());
    EXPECT_NE(s.example, s.default_text.value_or("")) << "the example must differ from the default";
    EXPECT_EQ(s.show(with_example(s)), s.example);
    if (s.default_text) {
      EXPECT_EQ(s.show(TrainConfig{}), *s.default_text) << "TrainConfig{} and --help disagree";
    }
    // Stored exactly when it shapes the result.
    const bool stored = s.role == SettingRole::result || s.role == SettingRole::stored;
    EXPECT_EQ(!s.key.empty(), stored);
    EXPECT_EQ(s.flag.empty(), s.role == SettingRole::stored);
  }
}

TEST(Settings, EveryFlagIsAcceptedByTrainWithItsExample) {
  for (const Setting& s : train_settings()) {
    if (s.flag.empty()) continue;
    SCOPED_TRACE(s.flag);
    Flags flags = s.is_switch ? Flags{s.flag} : Flags{s.flag, s.example};
    // The flags the example needs to act (the table refuses ones that would do nothing).
    for (const char* f : {"--momentum", "--nesterov"})
      if (s.flag == f) flags.insert(flags.end(), {"--optimizer", "momentum"});
    if (s.flag == "--lr-step" || s.flag == "--lr-factor") flags.insert(flags.end(), {"--schedule", "step"});
    if (s.flag == "--min-lr" || s.flag == "--min-delta") flags.insert(flags.end(), {"--lr-patience", "2"});
    if (s.flag.rfind("--aug-", 0) == 0) flags.insert(flags.end(), {"--augment", "ciresan"});
    if (s.flag == "--resume") continue;  // parsed below without a file: a resume reads its checkpoint
    const TrainConfig c = parse_train_flags(flags);
    EXPECT_EQ(s.show(c), s.is_switch ? "on" : s.example);
  }
  EXPECT_EQ(parse_train_flags({"--resume", "c.ckpt"}).resume_path, "c.ckpt");
}

TEST(Settings, EveryStoredSettingRoundTripsThroughTheCheckpointJson) {
  const nlohmann::json defaults = config_to_json(TrainConfig{});
  std::size_t stored = 0;
  for (const Setting& s : train_settings()) {
    if (s.key.empty()) continue;
    SCOPED_TRACE(s.name());
    ++stored;
    EXPECT_TRUE(defaults.contains(s.key));
    const nlohmann::json j = nlohmann::json::parse(config_to_json(with_example(s)).dump());  // as in a file
    EXPECT_NE(j.at(s.key), defaults.at(s.key));
    const TrainConfig back = config_from_json(j, kCheckpointVersion);
    EXPECT_EQ(s.show(back), s.example);
    EXPECT_EQ(config_to_json(back), j);
    EXPECT_EQ(show_json_value(s, j.at(s.key)), s.example);
    // A key missing from a current checkpoint is refused; from an older one, its default is used.
    nlohmann::json missing = j;
    missing.erase(s.key);
    EXPECT_THROW(config_from_json(missing, kCheckpointVersion), Error);
    if (s.stored_since > 1) {
      EXPECT_EQ(s.show(config_from_json(missing, 1)), s.show(TrainConfig{}));
    }
  }
  EXPECT_EQ(defaults.size(), stored) << "config_to_json holds a key the table does not define";
}

TEST(Settings, ResumeRefusesEveryDifferingResultSettingByNameWithBothValuesAsTyped) {
  const TrainConfig ck;
  for (const Setting& s : train_settings()) {
    if (s.role != SettingRole::result) continue;
    SCOPED_TRACE(s.flag);
    const TrainConfig flags = with_example(s);
    if (s.flag == "--epochs") {  // may differ: the run is continued (plan_resume checks it)
      EXPECT_EQ(usage_error([&] { check_resume_settings(flags, ck, {s.flag}, "ck"); }), "(accepted)");
      continue;
    }
    const std::string e = usage_error([&] { check_resume_settings(flags, ck, {s.flag}, "ck"); });
    if (s.is_switch) {
      EXPECT_EQ(e, "--resume: " + s.flag + " differs from the checkpoint ck, trained without " + s.flag +
                       "; resume without " + s.flag);
    } else {
      const std::string then = s.show(ck).empty() ? "\"\"" : s.show(ck);
      EXPECT_TRUE(contains(e, "--resume: " + s.flag + " " + s.example + " differs from the checkpoint's " + then + " (ck)"));
    }
    // Not given: the checkpoint's value is used, whatever the flags' default.
    EXPECT_EQ(usage_error([&] { check_resume_settings(flags, ck, {}, "ck"); }), "(accepted)");
    // The same value given: accepted.
    EXPECT_EQ(usage_error([&] { check_resume_settings(ck, ck, {s.flag}, "ck"); }), "(accepted)");
  }
}

TEST(Settings, FloatsPrintAsTheShortestTextThatReadsBack) {
  EXPECT_EQ(float_text(0.002f), "0.002");
  EXPECT_EQ(float_text(0.003f), "0.003");
  EXPECT_EQ(float_text(0.1f), "0.1");
  EXPECT_EQ(float_text(1e-4f), "1e-4");
  EXPECT_EQ(float_text(1e-8f), "1e-8");
  EXPECT_EQ(float_text(1e6f), "1e6");
  EXPECT_EQ(float_text(0.0f), "0");
  EXPECT_EQ(float_text(0.9f), "0.9");
  for (float v : {0.002f, 1.17549435e-38f, 3.4028235e38f, 0.1f + 0.2f, 1.0f / 3.0f})
    EXPECT_EQ(std::stof(float_text(v)), v) << float_text(v);
}

TEST(Settings, FlagsThatDoNothingAreRefusedNamingWhy) {
  const auto refusal = [](const Flags& flags) { return usage_error([&] { parse_train_flags(flags); }); };
  EXPECT_EQ(refusal({"--momentum", "0.5"}), "--momentum: applies to --optimizer momentum only, not 'adam'");
  EXPECT_EQ(refusal({"--optimizer", "sgd", "--momentum", "0.5"}),
            "--momentum: applies to --optimizer momentum only, not 'sgd'");
  EXPECT_EQ(refusal({"--nesterov"}), "--nesterov: applies to --optimizer momentum only, not 'adam'");
  EXPECT_EQ(refusal({"--lr-step", "3"}), "--lr-step: applies to --schedule step only, not 'cosine'");
  EXPECT_EQ(refusal({"--schedule", "constant", "--lr-step", "3"}),
            "--lr-step: applies to --schedule step only, not 'constant'");
  EXPECT_TRUE(contains(refusal({"--lr-factor", "0.3"}), "--lr-factor: scales the cuts of --schedule step and exp "
                                                         "and of --lr-patience; with --schedule cosine and no --lr-patience"));
  EXPECT_TRUE(contains(refusal({"--min-lr", "0.001"}), "--min-lr: is the floor of the plateau cuts"));
  EXPECT_TRUE(contains(refusal({"--min-delta", "0.01"}), "--min-delta: defines what counts as better"));
  // Where they act, accepted.
  EXPECT_EQ(parse_train_flags({"--optimizer", "momentum", "--momentum", "0.5", "--nesterov"}).optimizer.momentum, 0.5f);
  EXPECT_EQ(parse_train_flags({"--schedule", "step", "--lr-step", "3", "--lr-factor", "0.3"}).lr_step, 3);
  EXPECT_EQ(parse_train_flags({"--lr-patience", "2", "--lr-factor", "0.3", "--min-lr", "0.001"}).min_lr, 0.001f);
  EXPECT_EQ(parse_train_flags({"--patience", "2", "--min-delta", "0.01"}).min_delta, 0.01f);
  // The GPU's flags on the CPU change nothing: one warning each, and the run goes on.
  for (const std::string flag : {"--data-path", "--cuda-graph"}) {
    TrainArgs a;
    a.set("--device", "cpu");
    a.set(flag, flag == "--data-path" ? "resident" : "off");
    std::vector<std::string> warnings;
    to_train_config(a, &warnings);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_EQ(warnings[0], "warning: " + flag + ": applies to the GPU only; --device cpu ignores it");
    a.set("--device", "auto");
    warnings.clear();
    to_train_config(a, &warnings);
    EXPECT_TRUE(warnings.empty());
  }
}

TEST(Settings, ExecutableWarnsOnceAndRefusesWithExitTwo) {
  const std::string safe = " --data /nonexistent/mnist_gpu_test --epochs 1";
  auto r = test::run_exe_streams("train --device cpu --cuda-graph off" + safe);
  EXPECT_EQ(r.exit_code, 1);  // it went on to the (missing) data
  EXPECT_TRUE(contains(r.err, "warning: --cuda-graph: applies to the GPU only; --device cpu ignores it\n"));
  r = test::run_exe_streams("train --lr-step 2" + safe);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--lr-step: applies to --schedule step only, not 'cosine'"));
  // verify steps through every activation and loss itself.
  for (const std::string flag : {"--activation tanh", "--loss l2"}) {
    r = test::run_exe_streams("verify --data /nonexistent/mnist_gpu_test " + flag);
    EXPECT_EQ(r.exit_code, 2) << flag;
    EXPECT_TRUE(contains(r.err, flag.substr(0, flag.find(' ')) + ": verify checks every activation and loss in turn"));
  }
}

// On --resume the flags that do nothing are judged with the checkpoint's settings: --momentum
// fits a momentum checkpoint even though the flags' own default optimizer is adam.
TEST(Settings, ResumeJudgesFlagsByTheCheckpointsSettings) {
  Checkpoint ck;
  ck.config.optimizer.kind = OptimizerKind::momentum;
  ck.config.epochs = 4;
  TrainArgs a;
  a.set("--resume", "ck");
  a.set("--momentum", "0.9");
  const TrainConfig flags = to_train_config(a);  // not judged here: the optimizer comes from the checkpoint
  EXPECT_EQ(plan_resume(flags, a.given, ck).cfg.optimizer.kind, OptimizerKind::momentum);
  ck.config.optimizer.kind = OptimizerKind::adam;
  EXPECT_EQ(usage_error([&] { plan_resume(flags, a.given, ck); }),
            "--momentum: applies to --optimizer momentum only, not 'adam'");
  // Runtime and output flags are the flags', not the checkpoint's; new checkpoints go to the resumed file.
  a.set("--device", "cpu");
  a.set("--metrics", "m.jsonl");
  a.text.at("--momentum") = "0.9";
  a.given.erase("--momentum");
  const ResumePlan plan = plan_resume(to_train_config(a), a.given, ck);
  EXPECT_EQ(plan.cfg.device, DeviceChoice::cpu);
  EXPECT_EQ(plan.cfg.metrics_path, "m.jsonl");
  EXPECT_EQ(plan.cfg.checkpoint_path, "ck");
  EXPECT_EQ(plan.cfg.epochs, 4);
  EXPECT_EQ(plan.continuation, "");
}

TEST(Settings, SweepResumeNamesTheDifferingSettingAsTyped) {
  test::TempDir dir;
  const std::string sweep = "sweep --device cpu --epochs 1 --limit 300 --val 0 --hidden 4 --data '" + test::data_dir() +
                            "' --out '" + (dir / "sw").string() + "'";
  auto r = test::run_exe(sweep);
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_exe(sweep + " --resume --lr 0.003");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.out, "--resume: --lr 0.003 differs from the sweep's 0.002 (" + (dir / "sw" / "sweep.json").string() +
                                  "); resume with the sweep's flags"));
  r = test::run_exe(sweep + " --resume --optimizer momentum --nesterov");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.out, "--resume: --optimizer momentum differs from the sweep's adam"));
  r = test::run_exe(sweep + " --resume");
  EXPECT_EQ(r.code, 0) << r.out;
}

// The report's and the metrics summary's "flags": train with them and the same run is configured.
TEST(Settings, SettingsAsFlagsReproduceTheRunsSettings) {
  const auto split = [](const std::string& text) {
    Flags words;
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t space = text.find(' ', at);
      std::string w = text.substr(at, space == std::string::npos ? std::string::npos : space - at);
      words.push_back(w == "\"\"" ? std::string() : w);
      if (space == std::string::npos) break;
      at = space + 1;
    }
    return words;
  };
  for (const Flags& flags : std::vector<Flags>{
           {},
           {"--optimizer", "momentum", "--momentum", "0.5", "--nesterov", "--lr", "0.03"},
           {"--schedule", "step", "--lr-step", "3", "--lr-factor", "0.25", "--hidden", ""},
           {"--lr-patience", "2", "--min-lr", "1e-5", "--patience", "4", "--min-delta", "0.01", "--dropout", "0.3"},
           {"--optimizer", "sgd", "--l2", "1e-4", "--batch", "32", "--limit", "1000", "--target", "0.9", "--seed", "7"},
           {"--optimizer", "rmsprop", "--input-dropout", "0.2", "--max-norm", "2", "--init", "uniform:0.05", "--schedule",
            "exp", "--lr-factor", "0.9"}}) {
    const TrainConfig c = parse_train_flags(flags);
    const std::string text = settings_as_flags(c);
    SCOPED_TRACE(text);
    EXPECT_EQ(config_to_json(parse_train_flags(split(text))), config_to_json(c));
  }
  EXPECT_EQ(settings_as_flags(TrainConfig{}),
            "--batch 128 --hidden 512,256 --activation relu --loss xent --optimizer adam --lr 0.002 --l2 0 --dropout 0 "
            "--precision fp32 --input-dropout 0 --max-norm 0 --init default "
            "--seed 1 --augment none --schedule cosine --lr-patience 0 --patience 0 --epochs 10 --val 5000 --limit 0 "
            "--target 0");
}

TEST(Settings, ContinuingARunThatEarlyStoppingEndedIsRefused) {
  Checkpoint ck;
  ck.config.epochs = 5;
  ck.config.patience = 2;
  for (int e = 1; e <= 3; ++e) {
    EpochMetrics m;
    m.epoch = e;
    m.val_loss = e == 1 ? 0.5 : 0.6;  // epochs 2 and 3 no better than epoch 1: stopped after 3
    m.val_acc = 0.9;
    ck.progress.done.push_back(m);
  }
  TrainArgs a;
  a.set("--resume", "ck");
  a.set("--epochs", "8");
  EXPECT_EQ(usage_error([&] { plan_resume(to_train_config(a), a.given, ck); }),
            "--epochs: early stopping ended the run in ck after epoch 3 (no better validation loss than epoch 1's for "
            "2 epochs); more epochs would train nothing");
  ck.progress.done.pop_back();  // not stopped yet: continued
  EXPECT_EQ(plan_resume(to_train_config(a), a.given, ck).cfg.epochs, 8);
}

// --device cuda:N names one GPU; cuda is the first visible one.
TEST(Settings, DeviceNamesOneGpuByIndex) {
  const TrainConfig two = parse_train_flags({"--device", "cuda:2"});
  EXPECT_EQ(two.device, DeviceChoice::cuda);
  EXPECT_EQ(two.cuda.device, 2);
  const TrainConfig first = parse_train_flags({"--device", "cuda"});
  EXPECT_EQ(first.device, DeviceChoice::cuda);
  EXPECT_EQ(first.cuda.device, 0);
  EXPECT_EQ(parse_train_flags({"--device", "cuda:0"}).cuda.device, 0);
  EXPECT_EQ(find_setting("--device")->show(two), "cuda:2");
  for (const char* bad : {"cuda:", "cuda:x", "cuda:-1", "cuda:1.5", "cuda:99999", "gpu", "cuda1"})
    EXPECT_TRUE(contains(usage_error([&] { parse_train_flags({"--device", bad}); }), "--device")) << bad;
}
