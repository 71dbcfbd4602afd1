// Sweeps: the grid and its tables, a small sweep end to end through the executable (each row the
// same run `train` gives for that point), refusals, and an interrupted sweep that keeps its rows
// and is completed by --resume.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mnist_gpu/file_lock.hpp"
#include "mnist_gpu/sweep.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The small budget every end-to-end sweep here uses.
const std::string kBudget = "--device cpu --epochs 2 --limit 3000 --val 500 --seed 3";

}  // namespace

TEST(Sweep, GridIsTheProductInFlagOrderWithUniqueLabels) {
  SweepGrid g;
  g.hidden = {{100}, {512, 256}, {}};
  g.activations = {Activation::relu, Activation::sigmoid};
  g.losses = {Loss::xent, Loss::l2};
  g.batches = {32, 256};
  const std::vector<SweepPoint> p = g.points();
  ASSERT_EQ(p.size(), 24u);
  EXPECT_EQ(p[0].label(), "100 relu xent b32");
  EXPECT_EQ(p[1].label(), "100 relu xent b256");
  EXPECT_EQ(p[2].label(), "100 relu l2 b32");
  EXPECT_EQ(p[4].label(), "100 sigmoid xent b32");
  EXPECT_EQ(p[8].label(), "512-256 relu xent b32");
  EXPECT_EQ(p[23].label(), "none sigmoid l2 b256");
  for (std::size_t i = 0; i < p.size(); ++i)
    for (std::size_t j = 0; j < i; ++j) EXPECT_NE(p[i].label(), p[j].label());
}

TEST(Sweep, RowAndTablesCarryTheRunsFigures) {
  TrainResult r;
  for (int e = 1; e <= 3; ++e) {
    EpochMetrics m;
    m.epoch = e;
    m.val_acc = e == 2 ? 0.97 : 0.95;  // best at epoch 2
    m.val_loss = 0.1;
    m.epoch_s = 2.0;
    m.samples_per_s = 1000.0 * e;  // 2000, 4000, 6000 samples
    r.epochs.push_back(m);
  }
  r.train_s = 6.0;
  r.test.acc = 0.9612;
  r.test.loss = 0.125;
  SweepPoint p{{64}, Activation::tanh, Loss::l2, 32};
  const SweepRow row = make_sweep_row(p, r);
  EXPECT_EQ(row.best_val_epoch, 2);
  EXPECT_DOUBLE_EQ(row.best_val_acc, 0.97);
  EXPECT_DOUBLE_EQ(row.samples_per_s, 12000.0 / 6.0);

  SweepRow other = row;
  other.point.batch = 256;
  other.test_acc = 0.99;      // the better test accuracy ...
  other.best_val_acc = 0.96;  // ... but the worse validation: the table picks by validation
  const std::string md = sweep_markdown({row, other});
  const auto md_lines = lines(md);
  ASSERT_EQ(md_lines.size(), 6u) << md;
  EXPECT_EQ(md_lines[2], "| 64 | tanh | l2 | 32 | 96.12% | 0.1250 | **97.00% (2)** | 3 | 6.0 | 2000 |");
  EXPECT_NE(md_lines[3].find("| 256 | 99.00% |"), std::string::npos) << md_lines[3];
  EXPECT_EQ(md_lines[3].find("**"), std::string::npos) << md_lines[3];
  EXPECT_NE(md_lines[5].find("by validation accuracy"), std::string::npos) << md;

  const auto csv = lines(sweep_csv({row, other}));
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(csv[0].rfind("label,hidden,activation,loss,batch,test_acc,", 0), 0u);
  EXPECT_EQ(csv[1], "\"64 tanh l2 b32\",\"64\",tanh,l2,32,0.9612,0.125,0.97,2,3,false,6,2000");
  // Without a validation set the best-val columns are empty / '-'.
  TrainResult nv = r;
  for (auto& m : nv.epochs) m.val_acc = std::numeric_limits<double>::quiet_NaN();
  const SweepRow none = make_sweep_row(p, nv);
  EXPECT_EQ(none.best_val_epoch, 0);
  EXPECT_NE(sweep_markdown({none}).find("| - |"), std::string::npos);
  EXPECT_NE(sweep_markdown({none}).find("| **96.12%** |"), std::string::npos) << sweep_markdown({none});
  EXPECT_NE(sweep_markdown({none}).find("by test accuracy (no run has a validation set)"), std::string::npos);
  EXPECT_NE(sweep_csv({none}).find(",0.125,,0,3,"), std::string::npos) << sweep_csv({none});
}

// Four runs end to end; each row must be exactly the run that `train` gives for its point (same
// seed, same budget), and the outputs must all be there.
TEST(Sweep, EndToEndEachRowIsTheTrainRunOfItsPoint) {
  test::TempDir dir;
  const fs::path out = dir / "sw";
  const auto [log, code] = test::run_exe("sweep " + kBudget +
                                         " --hidden 16 --hidden 32,16 --activation relu,tanh --loss xent --batch 100"
                                         " --out '" + out.string() + "'");
  ASSERT_EQ(code, 0) << log;
  for (const char* f : {"results.md", "results.csv", "report.html", "sweep.json"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  const auto csv = lines(slurp(out / "results.csv"));
  ASSERT_EQ(csv.size(), 5u) << slurp(out / "results.csv");
  EXPECT_EQ(csv[1].rfind("\"16 relu xent b100\"", 0), 0u);
  EXPECT_EQ(csv[4].rfind("\"32-16 tanh xent b100\"", 0), 0u);
  const auto md = lines(slurp(out / "results.md"));
  EXPECT_EQ(md.size(), 8u);  // header, rule, 4 runs, a blank line, which run is bold and why
  EXPECT_NE(log.find("sweep done: 4 runs"), std::string::npos) << log;
  // The page names every run.
  const std::string html = slurp(out / "report.html");
  for (const char* label : {"16 relu xent b100", "16 tanh xent b100", "32-16 relu xent b100", "32-16 tanh xent b100"})
    EXPECT_NE(html.find(label), std::string::npos) << label;

  // The same point through `train`: the same test accuracy and loss, to the last digit.
  const fs::path metrics = dir / "m.jsonl";
  const auto [tlog, tcode] =
      test::run_exe("train " + kBudget + " --hidden 32,16 --activation tanh --batch 100 --metrics '" +
                    metrics.string() + "'");
  ASSERT_EQ(tcode, 0) << tlog;
  nlohmann::json fin;
  for (const auto& l : lines(slurp(metrics))) fin = nlohmann::json::parse(l);
  const nlohmann::json state = nlohmann::json::parse(slurp(out / "sweep.json"));
  const nlohmann::json& row = state["rows"][3];
  EXPECT_EQ(row["label"], "32-16 tanh xent b100");
  EXPECT_EQ(row["test_acc"].get<double>(), fin["test_acc"].get<double>());
  EXPECT_EQ(row["test_loss"].get<double>(), fin["test_loss"].get<double>());
  EXPECT_EQ(row["epochs"].size(), 2u);
}

TEST(Sweep, RefusesBadAxesBeforeTrainingAndAnOccupiedFolder) {
  test::TempDir dir;
  const std::string out = " --out '" + (dir / "sw").string() + "'";
  const std::pair<std::string, std::string> refusals[] = {
      {"--activation relu,softplus", "--activation: expected one of relu | sigmoid | tanh | gelu, got 'softplus'"},
      {"--activation relu,relu", "--activation: 'relu' is given twice"},
      {"--loss xent,", "--loss: expected one of xent | l2, got ''"},
      {"--batch 32,0", "--batch: expected a whole number of images in 1..65536, got '0'"},
      {"--hidden 100 --hidden 0", "--hidden: expected a comma-separated list"},
      {"--hidden 100 --hidden 100", "--hidden: '100' is given twice"},
      {"--hidden '' --dropout 0.5", "--dropout: drops hidden units"},
      {"--resume", "--resume: " + (dir / "sw").string() + " holds no sweep"}};
  for (const auto& [flags, message] : refusals) {
    const auto [log, code] = test::run_exe("sweep " + kBudget + " " + flags + out);
    EXPECT_EQ(code, 2) << flags << "\n" << log;
    EXPECT_NE(log.find(message), std::string::npos) << flags << "\n" << log;
    EXPECT_EQ(log.find("epoch 1/"), std::string::npos) << "trained before refusing: " << flags;
  }
  fs::create_directories(dir / "sw");
  std::ofstream(dir / "sw" / "sweep.json") << "{}";
  const auto [log, code] = test::run_exe("sweep " + kBudget + " --hidden 16" + out);
  EXPECT_EQ(code, 2) << log;
  EXPECT_NE(log.find("already holds a sweep (sweep.json); add --resume"), std::string::npos) << log;
}

// Two sweeps into one folder: the second is refused, naming the first's pid (here the test
// process holds the lock, as a running sweep would); a refused sweep leaves no folder it made.
TEST(Sweep, SecondSweepIntoTheSameFolderIsRefusedNamingTheFirstsPid) {
  test::TempDir dir;
  fs::create_directories(dir / "sw");
  long holder = 0;
  std::optional<FileLock> first = FileLock::try_acquire(dir / "sw" / "sweep.lock", holder);
  ASSERT_TRUE(first.has_value());
  const auto [log, code] = test::run_exe("sweep " + kBudget + " --hidden 16 --out '" + (dir / "sw").string() + "'");
  EXPECT_EQ(code, 1) << log;
  EXPECT_NE(log.find("another sweep (pid " + std::to_string(::getpid()) + ") is writing into this folder"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("epoch 1/"), std::string::npos) << "trained while locked out";
  EXPECT_FALSE(fs::exists(dir / "sw" / "sweep.json")) << "wrote into the locked folder";
  first.reset();
  // Released: a sweep runs there, and removes its lock when done.
  const auto [log2, code2] = test::run_exe("sweep " + kBudget + " --hidden 16 --out '" + (dir / "sw").string() + "'");
  EXPECT_EQ(code2, 0) << log2;
  EXPECT_FALSE(fs::exists(dir / "sw" / "sweep.lock"));
  // Refused after making its folder (nothing to resume): the folder is removed again.
  const auto [log3, code3] = test::run_exe("sweep " + kBudget + " --hidden 16 --resume --out '" +
                                           (dir / "new" / "sw").string() + "'");
  EXPECT_EQ(code3, 2) << log3;
  EXPECT_FALSE(fs::exists(dir / "new")) << log3;
}

// SIGINT in the middle of a sweep: the finished rows stay (in every output), the exit code is
// 130, and --resume trains only the missing runs, leaving the kept rows as they were.
TEST(Sweep, InterruptedSweepKeepsItsRowsAndResumeCompletesIt) {
  test::TempDir dir;
  const fs::path out = dir / "sw";
  const std::string flags = "sweep --device cpu --epochs 3 --limit 10000 --val 500 --seed 3 --hidden 64"
                            " --batch 200,100,50 --out '" + out.string() + "'";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string cmd = "exec '" + test::exe() + "' " + flags + " >/dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the first row, then interrupt.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool first_row = false;
  while (!first_row && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    first_row = lines(slurp(out / "results.csv")).size() >= 2;
  }
  ASSERT_TRUE(first_row) << "no row within 120 s";
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  const auto kept = lines(slurp(out / "results.csv"));
  if (kept.size() == 4u) GTEST_SKIP() << "the sweep finished before the signal arrived; nothing to resume";
  EXPECT_EQ(WEXITSTATUS(status), 130);
  ASSERT_GE(kept.size(), 2u);
  const nlohmann::json before = nlohmann::json::parse(slurp(out / "sweep.json"));

  const auto [log, code] = test::run_exe(flags + " --resume");
  ASSERT_EQ(code, 0) << log;
  EXPECT_NE(log.find("continuing the sweep in"), std::string::npos) << log;
  EXPECT_NE(log.find(std::to_string(kept.size() - 1) + " of 3 runs already done"), std::string::npos) << log;
  const auto all = lines(slurp(out / "results.csv"));
  ASSERT_EQ(all.size(), 4u);
  for (std::size_t i = 1; i < kept.size(); ++i) EXPECT_EQ(all[i], kept[i]) << "a kept row changed";
  const nlohmann::json after = nlohmann::json::parse(slurp(out / "sweep.json"));
  EXPECT_EQ(after["rows"][0], before["rows"][0]);

  // Other settings than the sweep's: refused.
  const auto [log2, code2] = test::run_exe(flags + " --resume --lr 0.01");
  EXPECT_EQ(code2, 2) << log2;
  // Named, with both values as typed.
  EXPECT_NE(log2.find("--resume: --lr 0.01 differs from the sweep's 0.002 (" + (out / "sweep.json").string() + ")"),
            std::string::npos)
      << log2;
}
