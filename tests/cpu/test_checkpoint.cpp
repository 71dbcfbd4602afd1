// Checkpoints: round trip, every refusal of the reader, atomic replacement, and runs of the real
// executable that are killed (SIGKILL at several moments, SIGINT, SIGTERM) and resumed, ending
// bit-identical to an uninterrupted run.
#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/model.hpp"
#include "test_paths.hpp"

extern char** environ;

using namespace mnist_gpu;
namespace fs = std::filesystem;

namespace {

fs::path temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("mnist_gpu_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

Checkpoint sample_checkpoint(OptimizerKind kind) {
  Checkpoint ck;
  ck.config.model.hidden = {7, 5};
  ck.config.model.inputs = 13;
  ck.config.optimizer.kind = kind;
  ck.config.epochs = 4;
  ck.config.seed = 123456789012345ull;
  const std::size_t n = ParamLayout(ck.config.model).size;
  for (std::size_t i = 0; i < n; ++i) ck.state.params.push_back(0.001f * static_cast<float>(i) - 0.3f);
  if (kind == OptimizerKind::momentum) ck.state.optimizer = {{"velocity", std::vector<float>(n, 0.25f)}};
  if (kind == OptimizerKind::adam)
    ck.state.optimizer = {{"m", std::vector<float>(n, 0.25f)}, {"v", std::vector<float>(n, 1e-30f)}};
  ck.state.step = 77;
  EpochMetrics m;
  m.epoch = 1;
  m.train_loss = 0.5;
  m.val_loss = std::nan("");
  m.val_acc = std::nan("");
  ck.progress.done.push_back(m);
  ck.progress.partial.loss_sum = 12.5;
  ck.progress.partial.correct = 99;
  ck.progress.partial.samples = 128;
  ck.progress.partial.batches = 1;
  ck.progress.partial_s = 0.125;
  return ck;
}

std::vector<std::uint8_t> bytes_of(const fs::path& p) { return read_whole_file(p, 1ull << 30); }

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void fix_crc(std::vector<std::uint8_t>& b) {
  const auto crc = static_cast<std::uint32_t>(crc32(0L, b.data(), static_cast<uInt>(b.size() - 4)));
  std::memcpy(b.data() + b.size() - 4, &crc, 4);
}

std::string read_error(const fs::path& p) {
  try {
    read_checkpoint(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Replaces the JSON header of a checkpoint's bytes and fixes the length and CRC.
std::vector<std::uint8_t> with_header(const std::vector<std::uint8_t>& b, const std::string& header) {
  std::uint64_t len;
  std::memcpy(&len, b.data() + 12, 8);
  std::vector<std::uint8_t> out(b.begin(), b.begin() + 12);
  const std::uint64_t new_len = header.size();
  out.insert(out.end(), reinterpret_cast<const std::uint8_t*>(&new_len), reinterpret_cast<const std::uint8_t*>(&new_len) + 8);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), b.begin() + 20 + static_cast<std::ptrdiff_t>(len), b.end());
  fix_crc(out);
  return out;
}

std::string header_of(const std::vector<std::uint8_t>& b) {
  std::uint64_t len;
  std::memcpy(&len, b.data() + 12, 8);
  return std::string(b.begin() + 20, b.begin() + 20 + static_cast<std::ptrdiff_t>(len));
}

}  // namespace

TEST(Checkpoint, RoundTripsEveryField) {
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::momentum, OptimizerKind::adam}) {
    const Checkpoint ck = sample_checkpoint(kind);
    const fs::path p = temp_path("rt.ckpt");
    write_checkpoint(p, ck);
    const Checkpoint back = read_checkpoint(p);
    EXPECT_EQ(back.config.model.hidden, ck.config.model.hidden);
    EXPECT_EQ(back.config.model.inputs, 13);
    EXPECT_EQ(back.config.optimizer.kind, kind);
    EXPECT_EQ(back.config.seed, ck.config.seed);
    EXPECT_EQ(back.config.epochs, 4);
    EXPECT_EQ(back.state.params, ck.state.params);
    EXPECT_EQ(back.state.optimizer, ck.state.optimizer);  // 1e-30 survives: raw float bits
    EXPECT_EQ(back.state.step, 77);
    ASSERT_EQ(back.progress.done.size(), 1u);
    EXPECT_TRUE(std::isnan(back.progress.done[0].val_acc));
    EXPECT_EQ(back.progress.partial.loss_sum, 12.5);
    EXPECT_EQ(back.progress.partial.correct, 99u);
    EXPECT_EQ(back.progress.partial.batches, 1);
    EXPECT_EQ(back.progress.partial_s, 0.125);
    for (const auto& e : fs::directory_iterator(p.parent_path()))
      EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "left behind: " << e.path();
  }
}

TEST(Checkpoint, RefusesForeignCorruptTruncatedAndAbsurdFiles) {
  const fs::path good = temp_path("good.ckpt");
  write_checkpoint(good, sample_checkpoint(OptimizerKind::adam));
  const std::vector<std::uint8_t> b = bytes_of(good);
  const fs::path p = temp_path("bad.ckpt");

  EXPECT_NE(read_error(temp_path("missing.ckpt")).find("cannot open"), std::string::npos);
  write_bytes(p, {});
  EXPECT_NE(read_error(p).find("not an mnist_gpu checkpoint"), std::string::npos) << read_error(p);
  write_bytes(p, {'<', 'h', 't', 'm', 'l', '>', '\n', 'x', 'y', 'z'});
  EXPECT_NE(read_error(p).find("not an mnist_gpu checkpoint"), std::string::npos) << read_error(p);

  auto newer = b;
  newer[8] = static_cast<std::uint8_t>(kCheckpointVersion + 1);
  fix_crc(newer);
  write_bytes(p, newer);
  EXPECT_NE(read_error(p).find("version " + std::to_string(kCheckpointVersion + 1) + ", this build reads versions 1 to " +
                               std::to_string(kCheckpointVersion) + " (written by a newer mnist_gpu)"),
            std::string::npos)
      << read_error(p);

  auto flipped = b;
  flipped[flipped.size() / 2] ^= 0x40;
  write_bytes(p, flipped);
  EXPECT_NE(read_error(p).find("checksum mismatch"), std::string::npos) << read_error(p);

  write_bytes(p, std::vector<std::uint8_t>(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(b.size() / 3)));
  EXPECT_NE(read_error(p).find("checksum mismatch"), std::string::npos) << read_error(p);

  auto trailing = b;
  trailing.insert(trailing.end() - 4, {1, 2, 3, 4});
  fix_crc(trailing);
  write_bytes(p, trailing);
  EXPECT_NE(read_error(p).find("does not match its arrays"), std::string::npos) << read_error(p);

  // A forged header with a correct CRC: absurd widths are refused before anything is sized.
  auto h = nlohmann::json::parse(header_of(b));
  h["config"]["hidden"] = {1000000000, 5};
  write_bytes(p, with_header(b, h.dump()));
  EXPECT_NE(read_error(p).find("absurd sizes"), std::string::npos) << read_error(p);

  // A different (valid) architecture than the arrays hold.
  h = nlohmann::json::parse(header_of(b));
  h["config"]["hidden"] = {8, 5};
  write_bytes(p, with_header(b, h.dump()));
  EXPECT_NE(read_error(p).find("do not match the model's"), std::string::npos) << read_error(p);

  write_bytes(p, with_header(b, "{not json"));
  EXPECT_NE(read_error(p).find("malformed header"), std::string::npos) << read_error(p);

  h = nlohmann::json::parse(header_of(b));
  h["config"]["activation"] = "swish";
  write_bytes(p, with_header(b, h.dump()));
  EXPECT_NE(read_error(p).find("unknown activation 'swish'"), std::string::npos) << read_error(p);
}

TEST(Checkpoint, FailedWriteLeavesThePreviousFileIntact) {
  const fs::path p = temp_path("keep.ckpt");
  write_checkpoint(p, sample_checkpoint(OptimizerKind::sgd));
  const auto before = bytes_of(p);
  // A destination whose directory is a regular file: the temporary file cannot be created.
  const fs::path blocker = temp_path("not_a_dir");
  std::ofstream(blocker) << "x";
  try {
    write_checkpoint(blocker / "x.ckpt", sample_checkpoint(OptimizerKind::sgd));
    FAIL() << "wrote under a regular file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((blocker / "x.ckpt").string() + ": cannot write"), std::string::npos) << e.what();
  }
  EXPECT_EQ(bytes_of(p), before);
}

// A full disk, simulated with a file-size limit in a child process (writes past it fail with
// EFBIG): the error names the file, no temporary is left, the previous checkpoint is intact.
TEST(Checkpoint, FullDiskLeavesThePreviousFileIntact) {
  const fs::path p = temp_path("full.ckpt");
  write_checkpoint(p, sample_checkpoint(OptimizerKind::sgd));
  const auto before = bytes_of(p);
  Checkpoint big = sample_checkpoint(OptimizerKind::adam);
  big.config.model.hidden = {512, 256};
  big.config.model.inputs = 784;
  const std::size_t n = ParamLayout(big.config.model).size;
  big.state.params.assign(n, 0.5f);
  big.state.optimizer = {{"m", std::vector<float>(n, 0.0f)}, {"v", std::vector<float>(n, 0.0f)}};
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{};
    lim.rlim_cur = lim.rlim_max = 1 << 20;  // 1 MiB: the 6 MiB checkpoint does not fit
    setrlimit(RLIMIT_FSIZE, &lim);
    try {
      write_checkpoint(p, big);
    } catch (const Error& e) {
      const std::string m = e.what();
      _exit(m.find(p.string() + ": write failed") != std::string::npos &&
                    m.find("the previous file, if any, is unchanged") != std::string::npos
                ? 0
                : 3);
    }
    _exit(4);  // no error: the limit did not bite
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "3: wrong message, 4: no error";
  EXPECT_EQ(bytes_of(p), before);
  for (const auto& e : fs::directory_iterator(p.parent_path()))
    EXPECT_EQ(e.path().string().find("full.ckpt.tmp."), std::string::npos) << "left behind: " << e.path();
}

namespace {

// Runs the executable with `args`; returns its pid (stdout/stderr to /dev/null).
pid_t spawn(const std::vector<std::string>& args) {
  std::vector<std::string> all{mnist_gpu::test::exe()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<nlohmann::json> metrics_of(const fs::path& p) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The fields that must be bit-identical between an interrupted-and-resumed run and a clean one.
std::string outcome(const std::vector<nlohmann::json>& lines) {
  std::string s;
  for (const auto& l : lines) {
    if (l.contains("final")) {
      s += l["test_loss"].dump() + " " + l["test_acc"].dump() + " " + l["confusion"].dump() + "\n";
    } else {
      s += l["epoch"].dump() + " " + l["train_loss"].dump() + " " + l["train_acc"].dump() + " " + l["val_loss"].dump() + "\n";
    }
  }
  return s;
}

const std::vector<std::string> kRun{"train", "--device", "cpu", "--hidden", "48", "--epochs", "3", "--batch", "100",
                                    "--val", "2000", "--seed", "5"};

}  // namespace

// Kills a run at three moments: early (a tenth of a clean run's time: before the first checkpoint
// or just after it, either way), and as soon as the checkpoint holds 1 and then 2 finished epochs
// (mid-run, late), so that at least two kills land after a checkpoint however loaded the machine
// is. Each killed run is resumed (or restarted when no checkpoint was written) and must end
// bit-identical to the clean run.
TEST(Checkpoint, KilledAtAnyMomentAndResumedEndsBitIdentical) {
  const fs::path clean_metrics = temp_path("clean.jsonl");
  auto clean_args = kRun;
  clean_args.insert(clean_args.end(), {"--metrics", clean_metrics.string()});
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(wait_exit(spawn(clean_args)), 0);
  const double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const std::string want = outcome(metrics_of(clean_metrics));
  ASSERT_EQ(metrics_of(clean_metrics).size(), 4u);

  // The epochs a checkpoint file holds (0 while none is readable yet).
  auto epochs_in = [](const fs::path& ck) -> std::size_t {
    try {
      return fs::exists(ck) ? read_checkpoint(ck).progress.done.size() : 0;
    } catch (const Error&) {
      return 0;
    }
  };
  int resumed = 0;
  for (const int after_epochs : {0, 1, 2}) {
    SCOPED_TRACE("kill after " + std::to_string(after_epochs) + " checkpointed epochs");
    const fs::path ck = temp_path("kill.ckpt"), metrics = temp_path("kill.jsonl");
    fs::remove(ck);
    fs::remove(metrics);
    auto args = kRun;
    args.insert(args.end(), {"--checkpoint", ck.string(), "--metrics", metrics.string()});
    const pid_t pid = spawn(args);
    ASSERT_GT(pid, 0);
    if (after_epochs == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(0.1 * run_ms * 1000)));
    } else {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
      while (epochs_in(ck) < static_cast<std::size_t>(after_epochs) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ASSERT_GE(epochs_in(ck), static_cast<std::size_t>(after_epochs)) << "no such checkpoint after 120 s";
    }
    kill(pid, SIGKILL);
    wait_exit(pid);
    // Resume from the last complete checkpoint, or start again if none was written yet.
    resumed += fs::exists(ck) ? 1 : 0;
    std::vector<std::string> again = fs::exists(ck) ? std::vector<std::string>{"train", "--resume", ck.string(), "--metrics",
                                                                                metrics.string()}
                                                     : args;
    ASSERT_EQ(wait_exit(spawn(again)), 0);
    EXPECT_EQ(outcome(metrics_of(metrics)), want);
  }
  EXPECT_GE(resumed, 2) << "the kills after a checkpoint did not find one";
}

TEST(Checkpoint, SigintAndSigtermStopAfterAStepSaveAndExitConventionally) {
  for (int sig : {SIGINT, SIGTERM}) {
    const fs::path ck = temp_path("sig.ckpt");
    fs::remove(ck);
    auto args = kRun;
    args[6] = "50";  // many epochs: the signal surely arrives mid-run
    args.insert(args.end(), {"--checkpoint", ck.string()});
    const pid_t pid = spawn(args);
    ASSERT_GT(pid, 0);
    // Signal once training is under way (the first epoch's checkpoint exists), however loaded
    // the machine is: a signal during start-up would meet the default action, not the handler.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!fs::exists(ck) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(fs::exists(ck)) << "no checkpoint after 120 s";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // mid-epoch, most likely
    kill(pid, sig);
    EXPECT_EQ(wait_exit(pid), 128 + sig);
    ASSERT_TRUE(fs::exists(ck));
    const Checkpoint c = read_checkpoint(ck);
    EXPECT_EQ(c.config.epochs, 50);
    EXPECT_GT(c.state.step, 0);
  }
}

TEST(Checkpoint, ResumeRefusesFlagsThatDisagree) {
  const fs::path ck = temp_path("flags.ckpt");
  write_checkpoint(ck, sample_checkpoint(OptimizerKind::adam));
  const auto [out, code] = mnist_gpu::test::run_exe("train --resume " + ck.string() + " --hidden 9,5");
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("--resume: --hidden 9,5 differs from the checkpoint's 7,5 (" + ck.string() +
                     "); resume without --hidden or with --hidden 7,5"),
            std::string::npos)
      << out;
  // Floats as typed, not as their float's double expansion (0.0020000000949949026).
  const auto [out2, code2] = mnist_gpu::test::run_exe("train --resume " + ck.string() + " --lr 0.003");
  EXPECT_EQ(code2, 2);
  EXPECT_NE(out2.find("--resume: --lr 0.003 differs from the checkpoint's 0.002 ("), std::string::npos) << out2;
}
