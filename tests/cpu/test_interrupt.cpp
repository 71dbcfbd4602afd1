// `train` interrupted in each phase (data loading, training, the final test, the model save, the
// report, the metrics summary) through the hidden MNIST_GPU_TEST_SIGNAL_AT hook, which makes the
// run signal itself on entering a phase, so no test races a kill against the clock: exit 130 (143
// for SIGTERM), what was kept named, no partial file or empty report folder left, and the printed
// resume command, run as printed, finishing the run with every output.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "mnist_gpu/cli_interrupt.hpp"
#include "mnist_gpu/run_record.hpp"
#include "mnist_gpu/stop_signal.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
namespace fs = std::filesystem;
using mnist_gpu::test::StreamsResult;
using mnist_gpu::test::TempDir;

namespace {

std::string q(const fs::path& p) { return shell_quote(p.string()); }

// A small, fast run with every output.
std::string run_flags(const TempDir& dir) {
  return "train --device cpu --hidden 16 --epochs 2 --limit 1000 --val 500 --batch 100 --data " +
         q(mnist_gpu::test::data_dir()) + " --metrics " + q(dir / "m.jsonl") + " --save " + q(dir / "model.bin") +
         " --report " + q(dir / "rep") + " --checkpoint " + q(dir / "ck.ckpt");
}

// The executable run with MNIST_GPU_TEST_SIGNAL_AT=`at` (the variable unset again after).
StreamsResult run_signalled(const std::string& at, const std::string& args) {
  ::setenv("MNIST_GPU_TEST_SIGNAL_AT", at.c_str(), 1);
  StreamsResult r = mnist_gpu::test::run_exe_streams(args);
  ::unsetenv("MNIST_GPU_TEST_SIGNAL_AT");
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every entry under `dir`, recursively, as paths relative to it.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

bool metrics_complete(const fs::path& p) {
  const auto lines = lines_of(slurp(p));
  return !lines.empty() && nlohmann::json::parse(lines.back()).value("final", false);
}

// The words after "resume with: mnist_gpu " in a log, or "".
std::string printed_resume_args(const std::string& log) {
  const std::string key = "resume with: mnist_gpu ";
  const std::size_t at = log.find(key);
  if (at == std::string::npos) return "";
  const std::size_t end = log.find('\n', at);
  return log.substr(at + key.size(), end - at - key.size());
}

}  // namespace

TEST(Interrupt, EachPhaseExitsConventionallyKeepsOnlyWholeFilesAndSaysSo) {
  struct Case {
    const char* phase;
    const char* says;
    std::vector<std::string> files;  // what the folder holds afterwards
    bool metrics_final;
  };
  const std::vector<std::string> report = {"rep", "rep/accuracy.svg", "rep/loss.svg", "rep/misclassified.png",
                                           "rep/report.html"};
  auto with = [](std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    std::sort(a.begin(), a.end());
    return a;
  };
  const std::vector<Case> cases = {
      {"load", "interrupted: SIGINT while loading the data", {}, false},
      // Stopped before its first batch: the checkpoint is kept, the empty metrics file is not.
      {"train", "interrupted: SIGINT during training", {"ck.ckpt"}, false},
      // During epoch 1's validation: the epoch ends whole and is checkpointed, epoch 2 is left.
      {"validate", "interrupted: SIGINT during an epoch's validation", {"ck.ckpt", "m.jsonl"}, false},
      {"test", "interrupted: SIGINT during the final test evaluation", {"ck.ckpt", "m.jsonl"}, false},
      {"save", "interrupted: SIGINT while saving the model", {"ck.ckpt", "m.jsonl", "model.bin"}, false},
      {"report", "interrupted: SIGINT while writing the report", with({"ck.ckpt", "m.jsonl", "model.bin"}, report),
       false},
      {"metrics", "interrupted: SIGINT while writing the metrics summary",
       with({"ck.ckpt", "m.jsonl", "model.bin"}, report), true},
  };
  for (const Case& c : cases) {
    const TempDir dir;
    const StreamsResult r = run_signalled(c.phase, run_flags(dir));
    EXPECT_EQ(r.exit_code, 130) << c.phase << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.phase << "\n" << r.err;
    EXPECT_NE(r.err.find("kept: "), std::string::npos) << c.phase << "\n" << r.err;
    // Only whole files: no temporary file of an atomic write, no empty report folder.
    EXPECT_EQ(listing(dir.path()), c.files) << c.phase << "\n" << r.err;
    if (fs::exists(dir / "m.jsonl")) {
      EXPECT_EQ(metrics_complete(dir / "m.jsonl"), c.metrics_final) << c.phase;
    }
    // Anything left unfinished can be resumed, and the log says how (a finished run needs none).
    const bool resumable = std::string(c.phase) != "load" && std::string(c.phase) != "metrics";
    EXPECT_EQ(r.err.find("resume with: ") != std::string::npos, resumable) << c.phase << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << c.phase << ": stdout holds " << r.out;
  }
}

TEST(Interrupt, SigtermIsHonouredLikeSigintWithItsOwnExitCode) {
  for (const char* phase : {"test", "report"}) {
    const TempDir dir;
    const StreamsResult r = run_signalled(std::string(phase) + ":SIGTERM", run_flags(dir));
    EXPECT_EQ(r.exit_code, 143) << phase << "\n" << r.err;
    EXPECT_NE(r.err.find("interrupted: SIGTERM"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::exists(dir / "ck.ckpt"));
  }
}

TEST(Interrupt, HookIsInertForOtherValues) {
  const TempDir dir;
  const StreamsResult r = run_signalled("nothing-of-the-kind", run_flags(dir));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(metrics_complete(dir / "m.jsonl"));
}

TEST(Interrupt, PrintedResumeCommandFinishesTheRunWithEveryOutput) {
  // The clean run's test result, to compare the resumed ones with.
  const TempDir clean;
  ASSERT_EQ(mnist_gpu::test::run_exe_streams(run_flags(clean)).exit_code, 0);
  const auto want = nlohmann::json::parse(lines_of(slurp(clean / "m.jsonl")).back());
  for (const char* phase : {"train", "validate", "test", "save", "report"}) {
    const TempDir dir;
    const StreamsResult first = run_signalled(phase, run_flags(dir));
    ASSERT_EQ(first.exit_code, 130) << first.err;
    const std::string args = printed_resume_args(first.err);
    ASSERT_FALSE(args.empty()) << first.err;
    for (const char* flag : {"--resume", "--metrics", "--save", "--report", "--data", "--device cpu"})
      EXPECT_NE(args.find(flag), std::string::npos) << phase << ": the resume command lacks " << flag << ": " << args;
    // Followed as printed (through the shell, as a user would paste it).
    const StreamsResult again = mnist_gpu::test::run_exe_streams(args);
    ASSERT_EQ(again.exit_code, 0) << phase << ": " << args << "\n" << again.err;
    ASSERT_TRUE(metrics_complete(dir / "m.jsonl")) << phase;
    const auto got = nlohmann::json::parse(lines_of(slurp(dir / "m.jsonl")).back());
    EXPECT_EQ(got["test_acc"], want["test_acc"]) << phase;
    EXPECT_EQ(got["confusion"], want["confusion"]) << phase;
    EXPECT_EQ(lines_of(slurp(dir / "m.jsonl")).size(), 3u) << phase << ": two epoch lines and the summary";
    EXPECT_TRUE(fs::exists(dir / "model.bin")) << phase;
    EXPECT_TRUE(fs::exists(dir / "rep" / "report.html")) << phase;
  }
}

TEST(Interrupt, SignalDuringTheLastValidationStopsBeforeTheTestAndSaysSo) {
  auto one_epoch = [](const TempDir& dir) {
    std::string f = run_flags(dir);
    f.replace(f.find("--epochs 2"), 10, "--epochs 1");
    return f;
  };
  const TempDir clean;
  ASSERT_EQ(mnist_gpu::test::run_exe_streams(one_epoch(clean)).exit_code, 0);
  const auto want = nlohmann::json::parse(lines_of(slurp(clean / "m.jsonl")).back());
  const TempDir dir;
  const StreamsResult r = run_signalled("validate", one_epoch(dir));
  EXPECT_EQ(r.exit_code, 130) << r.err;
  // Not "during the final test evaluation": the test has not begun.
  EXPECT_NE(r.err.find("interrupted: SIGINT during an epoch's validation"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("stopped after epoch 1 of 1, whole (its validation included); the final test is left"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("testing: evaluating"), std::string::npos) << r.err;
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"ck.ckpt", "m.jsonl"})) << r.err;
  const std::string args = printed_resume_args(r.err);
  ASSERT_FALSE(args.empty()) << r.err;
  const StreamsResult again = mnist_gpu::test::run_exe_streams(args);
  ASSERT_EQ(again.exit_code, 0) << args << "\n" << again.err;
  ASSERT_TRUE(metrics_complete(dir / "m.jsonl"));
  const auto got = nlohmann::json::parse(lines_of(slurp(dir / "m.jsonl")).back());
  EXPECT_EQ(got["test_acc"], want["test_acc"]);
  EXPECT_EQ(got["confusion"], want["confusion"]);
  EXPECT_EQ(lines_of(slurp(dir / "m.jsonl")).size(), 2u) << "one epoch line and the summary";
}

// A second signal ends the process at once, by that signal (the default action), and first removes
// the temporary file of the atomic write it cuts short: nothing half-written is left.
TEST(Interrupt, SecondSignalEndsAtOnceAndRemovesTheTemporaryFileOfTheWriteUnderWay) {
  for (int sig : {SIGINT, SIGTERM}) {
    const TempDir dir;
    const fs::path tmp = dir / "model.bin.tmp.123";
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {  // only async-signal-safe work would matter here; the child ends by the signal
      const StopOnSignals stop;
      std::raise(sig);  // the first: a request to stop, the process goes on
      if (!stop.requested()) ::_exit(3);
      std::ofstream(tmp) << "half";
      const TempFileGuard guard(tmp.string());
      std::raise(sig);  // the second: ends the process
      ::_exit(4);       // not reached
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    EXPECT_EQ(WTERMSIG(status), sig);
    EXPECT_FALSE(fs::exists(tmp)) << "the temporary file was left behind";
  }
}

TEST(Interrupt, LoadingForAResumeKeepsTheCheckpointAndSaysHowToResume) {
  const TempDir dir;
  ASSERT_EQ(run_signalled("train", run_flags(dir)).exit_code, 130);
  const std::string before = slurp(dir / "ck.ckpt");
  const StreamsResult r = run_signalled("load", "train --resume " + q(dir / "ck.ckpt") + " --data " +
                                                    q(mnist_gpu::test::data_dir()) + " --device cpu");
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_EQ(slurp(dir / "ck.ckpt"), before) << "the checkpoint changed";
  EXPECT_NE(r.err.find("resume with: mnist_gpu train --resume " + q(dir / "ck.ckpt")), std::string::npos) << r.err;
}

TEST(Interrupt, ResumeCommandKeepsEveryOutputAndRunFlag) {
  TrainConfig cfg;
  cfg.data_dir = "my data";
  cfg.device = DeviceChoice::cpu;
  cfg.metrics_path = "-";
  cfg.save_path = "m.bin";
  cfg.report_path = "rep";
  cfg.checkpoint_path = "other.ckpt";
  cfg.cuda.graph = false;
  EXPECT_EQ(resume_command(cfg, "a b.ckpt"),
            "mnist_gpu train --resume 'a b.ckpt' --checkpoint other.ckpt --data 'my data' --device cpu --metrics - "
            "--save m.bin --report rep --cuda-graph off");
  cfg = TrainConfig{};
  cfg.checkpoint_path = "c.ckpt";
  EXPECT_EQ(resume_command(cfg, "c.ckpt"), "mnist_gpu train --resume c.ckpt --device auto");
}

TEST(RunRecord, ShellQuoteRoundTripsThroughTheShell) {
  EXPECT_EQ(shell_quote("plain/path-1.ckpt"), "plain/path-1.ckpt");
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("it's here"), "'it'\\''s here'");
  EXPECT_EQ(shell_command({"a", "b c", "$HOME"}), "a 'b c' '$HOME'");
  EXPECT_EQ(utc_iso8601(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(utc_iso8601(1700000000), "2023-11-14T22:13:20Z");
}
