// What `train`, `eval` and `predict` write and say, through the executable: --metrics - and
// eval --json - put exactly their JSON on stdout (the log stays on stderr); the log names every
// file a run writes and says when the model was not kept; the final test is announced; the
// progress line (samples/s, ETA) is drawn only on a terminal; a --show write failure stops predict.
#include <gtest/gtest.h>

#include <limits>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/image_io.hpp"
#include "mnist_gpu/progress_text.hpp"
#include "mnist_gpu/run_record.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
namespace fs = std::filesystem;
using mnist_gpu::test::run_exe_streams;
using mnist_gpu::test::StreamsResult;
using mnist_gpu::test::TempDir;

namespace {

std::string q(const fs::path& p) { return shell_quote(p.string()); }

const std::string kSmall = "train --device cpu --hidden 16 --epochs 2 --limit 1000 --val 500 --batch 100 --data " +
                           shell_quote(mnist_gpu::test::data_dir());

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(CliOutputs, MetricsDashPutsExactlyTheJsonLinesOnStdout) {
  const StreamsResult r = run_exe_streams(kSmall + " --metrics -");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;  // two epochs and the summary
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto j = nlohmann::json::parse(lines[i]);  // throws (fails the test) on anything else
    if (i < 2) {
      EXPECT_EQ(j["epoch"], i + 1);
    }
  }
  EXPECT_TRUE(nlohmann::json::parse(lines.back()).value("final", false));
  EXPECT_FALSE(fs::exists("-")) << "a file named '-' was written";
  EXPECT_NE(r.err.find("epoch   2/2"), std::string::npos) << "the log left stderr";
}

TEST(CliOutputs, EvalJsonDashPutsExactlyTheJsonOnStdout) {
  const TempDir dir;
  ASSERT_EQ(run_exe_streams(kSmall + " --save " + q(dir / "m.bin")).exit_code, 0);
  const StreamsResult r = run_exe_streams("eval --device cpu --model " + q(dir / "m.bin") + " --data " +
                                          q(mnist_gpu::test::data_dir()) + " --json -");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(lines_of(r.out).size(), 1u) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["count"], 10000);
  EXPECT_NE(r.err.find("accuracy"), std::string::npos);
}

TEST(CliOutputs, LogNamesEveryFileWrittenAndTheModelNotKept) {
  const TempDir dir;
  const std::string outputs = " --metrics " + q(dir / "m.jsonl") + " --report " + q(dir / "rep") + " --checkpoint " +
                              q(dir / "ck.ckpt");
  const StreamsResult kept = run_exe_streams(kSmall + outputs + " --save " + q(dir / "m.bin"));
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_EQ(count(kept.err, "checkpoint: " + (dir / "ck.ckpt").string() + " (written after every epoch)"), 1u)
      << kept.err;
  EXPECT_NE(kept.err.find("metrics: " + (dir / "m.jsonl").string()), std::string::npos) << kept.err;
  const std::string files = "files written: checkpoint " + (dir / "ck.ckpt").string() + "; metrics " +
                            (dir / "m.jsonl").string() + "; model " + (dir / "m.bin").string() + "; report " +
                            (dir / "rep" / "report.html").string();
  EXPECT_NE(kept.err.find(files), std::string::npos) << kept.err;
  EXPECT_EQ(kept.err.find("was not kept"), std::string::npos) << kept.err;
  EXPECT_TRUE(kept.out.empty());

  const StreamsResult lost = run_exe_streams(kSmall);
  ASSERT_EQ(lost.exit_code, 0) << lost.err;
  EXPECT_NE(lost.err.find("the trained model was not kept (add --save FILE to keep it)"), std::string::npos)
      << lost.err;
  EXPECT_NE(lost.err.find("files written: none"), std::string::npos) << lost.err;
}

TEST(CliOutputs, FinalTestIsAnnouncedBeforeItRuns) {
  const StreamsResult r = run_exe_streams(kSmall);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::size_t announce = r.err.find("testing: evaluating 10000 test images");
  ASSERT_NE(announce, std::string::npos) << r.err;
  EXPECT_LT(announce, r.err.find("test: accuracy")) << r.err;
  EXPECT_GT(announce, r.err.find("epoch   2/2")) << r.err;
}

TEST(CliOutputs, ProgressLineOnlyOnATerminal) {
  // stderr to a file: no progress line (no carriage return, no bar) at all.
  const StreamsResult r = run_exe_streams(kSmall);
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err.find('\r'), std::string::npos);
  EXPECT_EQ(r.err.find("samples/s  ETA"), std::string::npos);
  // On a terminal (script(1) gives the run a pseudo-terminal): the bar with rate and ETA.
  if (std::system("command -v script >/dev/null 2>&1") != 0) GTEST_SKIP() << "script(1) is not installed";
  const TempDir dir;
  const std::string cmd = shell_quote(mnist_gpu::test::exe()) + " " + kSmall;
  const std::string run = "script -qec " + shell_quote(cmd) + " /dev/null > " + q(dir / "tty.txt") + " 2>&1";
  ASSERT_EQ(std::system(run.c_str()), 0);
  std::ifstream in(dir / "tty.txt", std::ios::binary);
  const std::string tty((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(tty.find("\r  epoch 1/2 ["), std::string::npos) << tty;
  EXPECT_NE(tty.find("] 100%  "), std::string::npos) << tty;
  EXPECT_NE(tty.find(" samples/s  ETA 0:00"), std::string::npos) << tty;
}

TEST(CliOutputs, ProgressTextShowsRateAndTimeLeft) {
  EXPECT_EQ(progress_text(3, 10, 50, 200, 52000.4, 12.4),
            "  epoch 3/10 [#######.......................]  25%  52000 samples/s  ETA 0:12");
  EXPECT_EQ(progress_text(1, 1, 0, 0, 0, 0), "  epoch 1/1 [..............................]   0%");
  EXPECT_EQ(progress_text(3, 10, 50, 200, 0.21043, 0.93812, 52000.4, 12.4),
            "  epoch 3/10 [#######.......................]  25%  loss 0.2104  acc 93.81%  52000 samples/s  ETA 0:12");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(progress_text(3, 10, 50, 200, nan, nan, 52000.4, 12.4), progress_text(3, 10, 50, 200, 52000.4, 12.4))
      << "no running loss known yet: left out";
  EXPECT_EQ(eval_progress_text("final test", 2000, 10000, 41),
            "  final test [######........................]  20%  2000 of 10000 images  ETA 0:41");
  EXPECT_EQ(eval_progress_text("final test", 0, 10000, 0),
            "  final test [..............................]   0%  0 of 10000 images");
  EXPECT_EQ(duration_text(59.6), "1:00");
  EXPECT_EQ(duration_text(3725), "1:02:05");
  EXPECT_EQ(duration_text(-1), "-");
}

TEST(CliOutputs, ShowWriteFailureStopsPredictNamingTheFile) {
  const TempDir dir;
  ASSERT_EQ(run_exe_streams(kSmall + " --save " + q(dir / "m.bin")).exit_code, 0);
  const MnistFiles files = load_mnist_dir(mnist_gpu::test::data_dir());
  for (const char* name : {"a", "b"}) write_grey_png(dir / (std::string(name) + ".png"), 28, 28, files.test.images.data());
  // The shown image of a.png cannot be written: that name is taken by a folder.
  fs::create_directories(dir / "shown" / "a.png");
  const StreamsResult r = run_exe_streams("predict --model " + q(dir / "m.bin") + " --show " + q(dir / "shown") + " " +
                                          q(dir / "a.png") + " " + q(dir / "b.png"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--show: cannot write " + (dir / "shown" / "a.png").string()), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << "classified after the failure: " << r.out;
  EXPECT_FALSE(fs::exists(dir / "shown" / "b.png")) << "went on past the failure";
}
