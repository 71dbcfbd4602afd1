// Outputs and inputs that are not plain files, through the library and the real executable: a
// device, FIFO or directory is never replaced nor read (refused at once, naming it), a symbolic
// link is written through, every output is checked (and locked, for --checkpoint) before any
// work, and two outputs naming one file are refused. Every run that could hang has a timeout.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/idx.hpp"
#include "mnist_gpu/image_io.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/model_io.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
using mnist_gpu::test::run_exe;
using mnist_gpu::test::TempDir;
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

constexpr int kTimeout = 120;  // seconds: far above any run here, which each take a few

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// No sign of work in a run's log: the data was not loaded, no epoch trained, nothing measured.
::testing::AssertionResult refused_before_work(const std::string& out) {
  for (const char* sign : {"data: ", "epoch", "samples/s", "accuracy"})
    if (out.find(sign) != std::string::npos)
      return ::testing::AssertionFailure() << "refused only after work ('" << sign << "'):\n" << out;
  return ::testing::AssertionSuccess();
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

fs::path small_model(const fs::path& file) {
  ModelSpec spec;
  spec.hidden = {8};
  std::vector<float> params(ParamLayout(spec).size);
  init_params(spec, ParamLayout(spec), 1, params.data());
  save_model(file, spec, params);
  return file;
}

// A quick training run on the bundled data (a few seconds), with `extra` flags.
std::string quick_train(const std::string& extra) {
  return "train --device cpu --epochs 1 --limit 1000 --hidden 8 --val 0 " + extra;
}

// The message of the exception `read` throws, run in a child process that is killed after
// kTimeout seconds: a reader that blocks on a FIFO fails the test ("timed out") instead of hanging it.
std::string refusal_in_child(const std::function<void()>& read) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(fds[0]);
    std::string msg = "accepted";
    try {
      read();
    } catch (const std::exception& e) {
      msg = e.what();
    }
    const ssize_t n = ::write(fds[1], msg.data(), msg.size());
    ::_exit(n == static_cast<ssize_t>(msg.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kTimeout);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ::close(fds[0]);
      return "timed out";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  return msg;
}

// A run that must be refused: its exit code, a phrase of its message, and no sign of work.
struct Case {
  std::string args;
  std::string message;
};
void expect_refused(const std::vector<Case>& cases, int code) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const auto r = run_exe(c.args, kTimeout);
    EXPECT_EQ(r.code, code) << r.out;
    EXPECT_TRUE(contains(r.out, c.message));
    EXPECT_TRUE(refused_before_work(r.out));
  }
}

bool is_char_device(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

}  // namespace

// --- outputs ----------------------------------------------------------------------------------

TEST(SpecialOutputs, DeviceDestinationIsRefusedAndKept) {
  if (::geteuid() != 0) GTEST_SKIP() << "mknod of a character device needs root";
  TempDir dir;
  const fs::path dev = dir / "null";
  ASSERT_EQ(::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << "mknod: " << std::strerror(errno);  // a /dev/null twin
  try {
    write_file_atomically(dev, Bytes{1, 2, 3});
    ADD_FAILURE() << "wrote over a device";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), dev.string() + ": not a regular file (it is a character device)"));
  }
  EXPECT_THROW(check_file_writable(dev, "save the model"), Error);
  const fs::path model = small_model(dir / "m.bin");
  const std::string cases[] = {
      quick_train("--save " + q(dev)),
      quick_train("--checkpoint " + q(dev)),
      quick_train("--metrics " + q(dev)),
      "eval --device cpu --model " + q(model) + " --json " + q(dev),
      "bench --device cpu --batches 32 --samples 320 --hidden 8 --json " + q(dev),
  };
  for (const std::string& args : cases) {
    SCOPED_TRACE(args);
    const auto r = run_exe(args, kTimeout);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_TRUE(contains(r.out, dev.string() + ": not a regular file (it is a character device)"));
    EXPECT_TRUE(refused_before_work(r.out));
    EXPECT_TRUE(is_char_device(dev)) << "the device was replaced";
  }
}

TEST(SpecialOutputs, FifoAndDirectoryDestinationsAreRefusedBeforeAnyWork) {
  TempDir dir;
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const fs::path folder = dir / "folder";
  fs::create_directory(folder);
  const fs::path model = small_model(dir / "m.bin");
  const std::vector<Case> cases = {
      {quick_train("--save " + q(fifo)), fifo.string() + ": not a regular file (it is a FIFO)"},
      {quick_train("--checkpoint " + q(fifo)), fifo.string() + ": not a regular file (it is a FIFO)"},
      {quick_train("--metrics " + q(fifo)), fifo.string() + ": not a regular file (it is a FIFO)"},
      {quick_train("--save " + q(folder)), folder.string() + ": not a regular file (it is a directory)"},
      {quick_train("--checkpoint " + q(folder)), folder.string() + ": not a regular file (it is a directory)"},
      {"eval --device cpu --model " + q(model) + " --json " + q(folder),
       folder.string() + ": not a regular file (it is a directory)"},
      {"bench --device cpu --batches 32 --samples 320 --hidden 8 --json " + q(folder),
       folder.string() + ": not a regular file (it is a directory)"},
  };
  expect_refused(cases, 1);
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_TRUE(fs::is_empty(folder));
}

TEST(SpecialOutputs, MissingFolderAndOverlongNameAreRefusedBeforeAnyWork) {
  TempDir dir;
  const std::string long_name(300, 'c');  // beyond NAME_MAX (255) of every Linux file system
  const std::vector<Case> cases = {
      {quick_train("--checkpoint " + q(dir / "no" / "such" / "ck")), "cannot write the checkpoint here (No such file"},
      {quick_train("--checkpoint " + q(dir / long_name)), "cannot write the checkpoint here (File name too long)"},
      {quick_train("--save " + q(dir / long_name)), "cannot save the model here (File name too long)"},
      {quick_train("--metrics " + q(dir / "no" / "m.jsonl")), "cannot write the --metrics file here (No such file"},
  };
  expect_refused(cases, 1);
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(SpecialOutputs, SymlinkDestinationIsWrittenThroughAndKept) {
  TempDir dir;
  fs::create_directory(dir / "real");
  const fs::path target = dir / "real" / "out.bin";
  std::ofstream(target) << "old";
  const fs::path link = dir / "link.bin";
  fs::create_symlink(fs::path("real") / "out.bin", link);  // relative, as `ln -s` users write them
  write_file_atomically(link, Bytes{'n', 'e', 'w'});
  EXPECT_TRUE(fs::is_symlink(link)) << "the link was replaced by a file";
  EXPECT_EQ(read_text(target), "new");
  EXPECT_NO_THROW(check_file_writable(link, "write"));

  // A dangling link: the file it names is created.
  const fs::path dangling = dir / "dangling";
  fs::create_symlink(dir / "real" / "later.bin", dangling);
  write_file_atomically(dangling, Bytes{'x'});
  EXPECT_TRUE(fs::is_symlink(dangling));
  EXPECT_EQ(read_text(dir / "real" / "later.bin"), "x");

  // The executable: --save through a link leaves the link and replaces the model it points to.
  const fs::path model_link = dir / "model-link.bin";
  fs::create_symlink(dir / "real" / "model.bin", model_link);
  const auto r = run_exe(quick_train("--save " + q(model_link)), kTimeout);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::is_symlink(model_link));
  EXPECT_EQ(load_model(dir / "real" / "model.bin").spec.hidden, std::vector<int>{8});
  for (const auto& e : fs::recursive_directory_iterator(dir.path()))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(SpecialOutputs, TwoOutputsNamingOneFileAreRefused) {
  TempDir dir;
  const fs::path x = dir / "x";
  fs::create_symlink(x, dir / "alias");
  const fs::path model = small_model(dir / "m.bin");
  const std::string model_before = read_text(model);
  const std::vector<Case> cases = {
      {quick_train("--save " + q(x) + " --checkpoint " + q(x)), "--checkpoint and --save both name"},
      {quick_train("--metrics " + q(x) + " --save " + q(x)), "--metrics and --save both name"},
      {quick_train("--metrics " + q(x) + " --checkpoint " + q(dir / "." / "x")), "--metrics and --checkpoint both name"},
      {quick_train("--save " + q(dir / "alias") + " --checkpoint " + q(x)), "--checkpoint and --save both name"},
      {quick_train("--report " + q(dir / "rep") + " --metrics " + q(dir / "rep" / "report.html")),
       "--metrics and --report both name"},
      {quick_train("--report " + q(dir / "rep") + " --save " + q(dir / "rep")), "--save and --report both name"},
      {"eval --device cpu --model " + q(model) + " --json " + q(model), "--model and --json both name"},
      {"eval --device cpu --model " + q(model) + " --json " + q(x) + " --predictions " + q(x),
       "--json and --predictions both name"},
      {"export --model " + q(model) + " --onnx " + q(x) + " --safetensors " + q(x), "--onnx and --safetensors both name"},
  };
  expect_refused(cases, 2);
  EXPECT_FALSE(fs::exists(x));
  EXPECT_FALSE(fs::exists(dir / "rep"));
  EXPECT_EQ(read_text(model), model_before);
}

// --- the checkpoint's lock --------------------------------------------------------------------

TEST(CheckpointLock, ASecondRunOnTheSameCheckpointIsRefusedNamingTheFirst) {
  TempDir dir;
  const fs::path ck = dir / "run.ckpt", lock = dir / "run.ckpt.lock", log = dir / "first.log";
  // The first run: long enough to still hold the lock when the second starts (it is killed).
  const pid_t first = ::fork();
  ASSERT_GE(first, 0);
  if (first == 0) {
    const std::string exe = mnist_gpu::test::exe(), path = ck.string();
    FILE* out = std::freopen(log.c_str(), "w", stderr);
    (void)out;
    ::execl(exe.c_str(), exe.c_str(), "train", "--device", "cpu", "--epochs", "1000", "--limit", "2000", "--hidden",
            "8", "--val", "0", "--checkpoint", path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const std::string pid = std::to_string(first);
  // Once it holds the lock and has written a checkpoint, it is stopped (SIGSTOP keeps the lock):
  // a training run at full speed would slow the tests that run beside this one.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kTimeout);
  while ((read_text(lock) != pid + "\n" || !fs::exists(ck)) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(first, SIGSTOP);
  EXPECT_EQ(read_text(lock), pid + "\n") << read_text(log);
  EXPECT_TRUE(fs::exists(ck)) << read_text(log);

  const auto second = run_exe(quick_train("--checkpoint " + q(ck)), kTimeout);
  EXPECT_EQ(second.code, 1) << second.out;
  EXPECT_TRUE(contains(second.out, "--checkpoint " + ck.string() + ": another run (pid " + pid + ")"));
  EXPECT_TRUE(refused_before_work(second.out));
  // The same checkpoint named through --resume (new checkpoints go to it) is refused too.
  const auto resumed = run_exe("train --device cpu --resume " + q(ck), kTimeout);
  EXPECT_EQ(resumed.code, 1) << resumed.out;
  EXPECT_TRUE(contains(resumed.out, "--resume " + ck.string() + ": another run (pid " + pid + ")"));

  // SIGKILL: the kernel releases the lock; the next run takes it and removes the file at the end.
  ::kill(first, SIGKILL);
  int status = 0;
  ::waitpid(first, &status, 0);
  fs::remove(ck);
  const auto third = run_exe(quick_train("--checkpoint " + q(ck)), kTimeout);
  EXPECT_EQ(third.code, 0) << third.out;
  EXPECT_TRUE(fs::exists(ck));
  EXPECT_FALSE(fs::exists(lock));
}

// --- inputs -----------------------------------------------------------------------------------

TEST(SpecialInputs, FifoOrDeviceModelCheckpointAndImageAreRefusedAtOnce) {
  TempDir dir;
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const fs::path zero = dir / "zero";
  fs::create_symlink("/dev/zero", zero);
  const fs::path model = small_model(dir / "m.bin");
  const std::string not_regular = ": not a regular file (it is ";
  const std::vector<Case> cases = {
      {"eval --device cpu --model " + q(fifo), fifo.string() + not_regular + "a FIFO, expected an mnist_gpu model file)"},
      {"eval --device cpu --model " + q(zero),
       zero.string() + not_regular + "a character device, expected an mnist_gpu model file)"},
      {"predict --model " + q(fifo) + " " + q(model), fifo.string() + not_regular + "a FIFO"},
      {"train --device cpu --resume " + q(fifo), fifo.string() + not_regular + "a FIFO, expected an mnist_gpu checkpoint)"},
      {"train --device cpu --resume " + q(zero), zero.string() + not_regular + "a character device"},
      {"import --safetensors " + q(fifo) + " --out " + q(dir / "imported.bin"),
       fifo.string() + not_regular + "a FIFO, expected a safetensors file)"},
  };
  expect_refused(cases, 1);

  // predict: a FIFO among the images is reported at once, and the image after it is classified.
  std::vector<std::uint8_t> pixels(28 * 28, 0);
  for (int y = 6; y < 22; ++y)
    for (int x = 12; x < 16; ++x) pixels[static_cast<std::size_t>(y * 28 + x)] = 255;  // a "1"
  const fs::path image = dir / "one.png";
  write_grey_png(image, 28, 28, pixels.data());
  const auto r = run_exe("predict --model " + q(model) + " " + q(fifo) + " " + q(zero) + " " + q(image), kTimeout);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, fifo.string() + not_regular + "a FIFO, expected a PNG or JPEG image)"));
  EXPECT_TRUE(contains(r.out, zero.string() + not_regular + "a character device, expected a PNG or JPEG image)"));
  EXPECT_TRUE(contains(r.out, image.string() + ": "));
  EXPECT_TRUE(contains(r.out, "2 of 3 images could not be classified"));
}

TEST(SpecialInputs, ReadersRefuseAFifoWithoutOpeningIt) {
  TempDir dir;
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const auto refused = refusal_in_child;
  EXPECT_TRUE(contains(refused([&] { read_whole_file(fifo, 1 << 20, "a sweep state file"); }),
                       fifo.string() + ": not a regular file (it is a FIFO, expected a sweep state file)"));
  EXPECT_TRUE(contains(refused([&] { open_input_file(fifo, "an image"); }), "not a regular file"));
  EXPECT_TRUE(contains(refused([&] { load_model(fifo); }), "not a regular file"));
  EXPECT_TRUE(contains(refused([&] { read_checkpoint(fifo); }), "expected an mnist_gpu checkpoint"));
  EXPECT_TRUE(contains(refused([&] { read_idx(fifo, IdxExpect{1, {}}); }), "expected an IDX file"));
  EXPECT_TRUE(contains(refused([&] { read_image(fifo); }), "expected a PNG or JPEG image"));
  EXPECT_TRUE(contains(refused([&] { read_whole_file(dir.path(), 1 << 20); }), "it is a directory"));
}
