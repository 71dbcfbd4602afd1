// run_cli(): the mnist_gpu program. Parses the command, picks the device, loads and splits the
// data, trains, and reports: human progress to stderr (spdlog), JSON lines to --metrics.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <new>
#include <optional>
#include <stdexcept>
#include <set>
#include <nlohmann/json.hpp>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/cli_interrupt.hpp"
#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/cli_export.hpp"
#include "mnist_gpu/cli_models.hpp"
#include "mnist_gpu/cli_sweep.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/file_lock.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/model_io.hpp"
#include "mnist_gpu/predict.hpp"
#include "mnist_gpu/progress_text.hpp"
#include "mnist_gpu/recipe.hpp"
#include "mnist_gpu/report.hpp"
#include "mnist_gpu/resume.hpp"
#include "mnist_gpu/settings.hpp"
#include "mnist_gpu/run_record.hpp"
#include "mnist_gpu/stop_signal.hpp"
#include "mnist_gpu/train.hpp"
#include "mnist_gpu/verify.hpp"

namespace mnist_gpu {
namespace {

using json = nlohmann::json;

std::string join(const std::vector<int>& v, const char* sep) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + std::to_string(v[i]);
  return s;
}

// --timings counts from here: the program's static initialisation, just before main.
const std::chrono::steady_clock::time_point kProgramStart = std::chrono::steady_clock::now();

// Seconds from the exec of this process to kProgramStart (loading the program and its shared
// libraries: cuBLAS alone is hundreds of MB), from /proc/self/stat's start time in clock ticks
// (10 ms resolution); NaN where that cannot be read.
double exec_to_main_s() {
  std::ifstream in("/proc/self/stat");
  std::string stat;
  std::getline(in, stat);
  const std::size_t paren = stat.rfind(')');
  timespec boot{};
  const long ticks = sysconf(_SC_CLK_TCK);
  if (paren == std::string::npos || ticks <= 0 || clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
    return std::nan("");
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)  // fields 3.. after "pid (comm)"; 22 is starttime
    if (i == 22) {
      const double started = std::strtod(field.c_str(), nullptr) / static_cast<double>(ticks);
      const double now = static_cast<double>(boot.tv_sec) + 1e-9 * static_cast<double>(boot.tv_nsec);
      const double since_main =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - kProgramStart).count();
      return std::max(0.0, now - started - since_main);
    }
  return std::nan("");
}

// --timings: the wall time of each phase of a run, logged as one line at the end.
class RunTimings {
 public:
  using clock = std::chrono::steady_clock;
  /// The phase that ends now (it began where the previous one ended).
  void end(const std::string& phase) {
    const clock::time_point now = clock::now();
    add(phase, std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }
  void add(const std::string& phase, double s) { parts_.emplace_back(phase, s); }
  double since_last() const { return std::chrono::duration<double>(clock::now() - last_).count(); }
  void restart() { last_ = clock::now(); }
  static double since_start() { return std::chrono::duration<double>(clock::now() - kProgramStart).count(); }
  std::string text(double exec_s) const {
    std::string t = "timings: ";
    if (!std::isnan(exec_s)) t += fmt::format("exec to main {:.3f} s, ", exec_s);
    for (const auto& [phase, sec] : parts_) t += fmt::format("{} {:.3f} s, ", phase, sec);
    t += fmt::format("total {:.3f} s since main", since_start());
    if (!std::isnan(exec_s)) t += fmt::format(" ({:.3f} s since exec)", since_start() + exec_s);
    return t;
  }

 private:
  clock::time_point last_ = kProgramStart;
  std::vector<std::pair<std::string, double>> parts_;
};

// The process's peak resident set so far (Linux reports ru_maxrss in KiB).
std::uint64_t peak_host_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_maxrss) * 1024u;
}

// A metrics file of JSON lines, each written whole and flushed, so that a crash loses at most the
// line being written. On resume it is rewritten with the checkpoint's epochs (so that an epoch
// whose line was written before a crash but whose checkpoint was not is not listed twice), then
// appended to. "-" is stdout (which then holds nothing else).
class MetricsFile {
 public:
  MetricsFile(const std::string& path, const std::vector<EpochMetrics>& history) : path_(path) {
    if (path.empty() || path == "-") {
      for (const auto& m : history) write(epoch_to_json(m));
      return;
    }
    out_.open(path, std::ios::out | std::ios::trunc);
    if (!out_) throw Error("--metrics: cannot write '" + path + "' (" + std::strerror(errno) + ")");
    for (const auto& m : history) write(epoch_to_json(m));
  }
  void write(const json& line) {
    if (path_.empty()) return;
    ++lines_;
    if (path_ == "-") {
      const std::string text = line.dump() + "\n";
      if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
        throw Error("--metrics -: writing to stdout failed (" + std::string(std::strerror(errno)) + ")");
      return;
    }
    out_ << line.dump() << '\n';
    out_.flush();
    if (!out_) throw Error(path_ + ": write failed (" + std::strerror(errno) + ")");
  }
  /// A file (not stdout) into which no line was written: removed, so that an interrupted run
  /// leaves no empty file. True when it removed one.
  bool remove_if_empty() {
    if (path_.empty() || path_ == "-" || lines_ > 0) return false;
    out_.close();
    std::error_code ec;
    return std::filesystem::remove(path_, ec);
  }
  int lines() const { return lines_; }

 private:
  std::string path_;
  std::ofstream out_;
  int lines_ = 0;
};

// Logs each epoch, draws a progress bar within the epoch when stderr is a terminal (with the
// running loss and accuracy, samples/s and the epoch's time left, from wall time) and one during
// an evaluation that takes a while, and writes the metrics file.
class CliObserver final : public TrainObserver {
 public:
  using ProgressSink = std::function<void(const TrainProgress&)>;
  using EvalSink = std::function<void(EvalKind)>;
  CliObserver(int epochs, int batch, MetricsFile& metrics, ProgressSink checkpoint, EvalSink eval_start)
      : epochs_(epochs),
        batch_(batch),
        metrics_(metrics),
        checkpoint_(std::move(checkpoint)),
        eval_start_(std::move(eval_start)),
        tty_(isatty(2) != 0) {}

  void on_progress(const TrainProgress& p) override {
    if (checkpoint_) checkpoint_(p);
  }

  void on_eval(EvalKind what, int epoch, long long done, long long total) override {
    if (done == 0) {
      if (eval_start_) eval_start_(what);
      eval_line_.emplace(what == EvalKind::test         ? std::string("final test")
                         : what == EvalKind::validation ? fmt::format("validation after epoch {}", epoch)
                                                        : fmt::format("test (--target) after epoch {}", epoch));
      return;
    }
    if (eval_line_) (*eval_line_)(done, total);
    if (done >= total) eval_line_.reset();
  }

  void on_batch(int epoch, long long done, long long total, const RunningSumsFn& running) override {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (epoch != epoch_) {  // the rate is measured from the epoch's first reported batch
      epoch_ = epoch;
      first_done_ = done;
      first_at_ = now;
    }
    if (done != total && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double s = std::chrono::duration<double>(now - first_at_).count();
    const long long batches = done - first_done_;
    const double rate = s > 0 && batches > 0 ? static_cast<double>(batches * batch_) / s : 0.0;
    const double eta = batches > 0 ? static_cast<double>(total - done) * s / static_cast<double>(batches) : 0.0;
    EpochSums sums;
    double loss = std::numeric_limits<double>::quiet_NaN(), acc = loss;
    if (running && running(sums) && sums.samples > 0) {
      loss = sums.loss_sum / static_cast<double>(sums.samples);
      acc = static_cast<double>(sums.correct) / static_cast<double>(sums.samples);
    }
    const std::string line = progress_text(epoch, epochs_, done, total, loss, acc, rate, eta);
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }

  void on_epoch(const EpochMetrics& m) override {
    clear_bar();
    std::string val = "val -";
    if (!std::isnan(m.val_acc)) val = fmt::format("val {:.2f}% (loss {:.4f})", 100 * m.val_acc, m.val_loss);
    spdlog::info("epoch {:>3}/{}  loss {:.4f}  train {:.2f}%  {}  lr {:.3g}  {:.2f} s  {:.0f} samples/s", m.epoch,
                 epochs_, m.train_loss, 100 * m.train_acc, val, m.lr, m.epoch_s, m.samples_per_s);
    metrics_.write(epoch_to_json(m));
  }

  /// Ends a drawn progress line, so that the next log line starts on its own.
  void clear_bar() {
    eval_line_.reset();
    if (!drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  int epochs_, batch_;
  MetricsFile& metrics_;
  ProgressSink checkpoint_;
  EvalSink eval_start_;
  bool tty_;
  bool drawn_ = false;
  int epoch_ = 0;
  long long first_done_ = 0;
  std::chrono::steady_clock::time_point first_at_{}, last_draw_{};
  std::optional<EvalProgressLine> eval_line_;
};

}  // namespace

namespace {

// Every output of `train`, checked before any work: no two the same file, and each one a place
// where a regular file can be written (not a device, FIFO or directory; an existing, writable
// folder; a name the file system accepts). `checkpoint_flag` names where the checkpoint path came from.
void check_train_outputs(const TrainConfig& cfg, const char* checkpoint_flag) {
  std::vector<std::pair<std::string, std::filesystem::path>> outputs = {
      {"--metrics", cfg.metrics_path == "-" ? std::string() : cfg.metrics_path},
      {checkpoint_flag, cfg.checkpoint_path},
      {"--save", cfg.save_path}};
  if (!cfg.report_path.empty()) {
    outputs.emplace_back("--report", cfg.report_path);
    for (const auto& file : report_files(cfg.report_path)) outputs.emplace_back("--report", file);
  }
  check_distinct_paths(outputs);
  if (!cfg.metrics_path.empty() && cfg.metrics_path != "-") check_file_writable(cfg.metrics_path, "write the --metrics file");
  if (!cfg.checkpoint_path.empty()) check_file_writable(cfg.checkpoint_path, "write the checkpoint");
  if (!cfg.save_path.empty()) check_model_writable(cfg.save_path);
  if (!cfg.report_path.empty()) check_report_dir(cfg.report_path);
}

// The checkpoint's lock (CHECKPOINT.lock beside the file it names): a second run writing the
// same checkpoint is refused, naming the first.
FileLock lock_checkpoint(const std::string& path, const char* flag) {
  const std::filesystem::path lock_path = output_target(path).string() + ".lock";
  long holder = 0;
  std::optional<FileLock> lock = FileLock::try_acquire(lock_path, holder);
  if (!lock)
    throw Error(std::string(flag) + " " + path + ": another run (" +
                (holder > 0 ? "pid " + std::to_string(holder) : std::string("pid unknown")) +
                ") is writing this checkpoint (it holds " + lock_path.string() +
                "); wait for it to end, or choose another " + flag);
  return std::move(*lock);
}

// What an interrupted `train` says and leaves: which phase the signal met, the outputs kept (each
// complete: every write is atomic or whole lines), those not written, and how to resume.
struct RunOutputs {
  std::string checkpoint;  ///< the checkpoint written, if any
  std::string metrics;     ///< the metrics file kept ("" when none or removed as empty)
  bool metrics_final = false;
  bool model_saved = false;
  bool report_written = false;
};

int report_interrupt(int sig, TrainPhase phase, const TrainConfig& cfg, const RunOutputs& out) {
  const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
  const bool complete = out.metrics_final || (phase == TrainPhase::metrics);
  spdlog::warn("interrupted: {} {}; {}", name, phase_doing(phase),
               complete ? "the run had finished, every output is complete"
               : phase == TrainPhase::load ? "stopped before training"
                                           : "stopped cleanly");
  std::vector<std::string> kept, missing;
  if (!out.checkpoint.empty()) kept.push_back("checkpoint " + out.checkpoint);
  if (!out.metrics.empty())
    kept.push_back(out.metrics == "-" ? std::string("metrics on stdout") + (out.metrics_final ? "" : " (epoch lines only)")
                                      : "metrics " + out.metrics + (out.metrics_final ? "" : " (epoch lines only, no summary line yet)"));
  else if (!cfg.metrics_path.empty())
    missing.push_back("--metrics " + cfg.metrics_path);
  if (out.model_saved) kept.push_back("model " + cfg.save_path);
  else if (!cfg.save_path.empty()) missing.push_back("--save " + cfg.save_path);
  if (out.report_written) kept.push_back("report " + (std::filesystem::path(cfg.report_path) / "report.html").string());
  else if (!cfg.report_path.empty()) missing.push_back("--report " + cfg.report_path);
  std::string list;
  for (const auto& k : kept) list += (list.empty() ? "" : ", ") + k;
  spdlog::info("kept: {}", list.empty() ? std::string("nothing (no file was written)") : list);
  if (!missing.empty()) {
    std::string m;
    for (const auto& k : missing) m += (m.empty() ? "" : ", ") + k;
    spdlog::info("not written: {}", m);
  }
  if (!complete) {
    const std::string from = !out.checkpoint.empty() ? out.checkpoint : cfg.resume_path;
    if (!from.empty())
      spdlog::info("resume with: {}", resume_command(cfg, from));
    else
      spdlog::info("nothing was trained; run the same command again to start over");
  }
  return 128 + sig;
}

int run_train(const TrainConfig& flags, const std::set<std::string>& given, const std::string& command_line) {
  // SIGINT/SIGTERM from here on: the phase under way ends (training after its current step, any
  // other phase after its work, every file write whole), then report_interrupt says what was
  // kept. A second signal ends the process at once (the default action).
  const StopOnSignals stop;
  // A resumed run takes every setting that shapes the result from its checkpoint.
  TrainConfig cfg = flags;
  Checkpoint resume;
  std::string continuation;
  if (!flags.resume_path.empty()) {
    if (!flags.init_from_path.empty())
      throw UsageError("--init-from: starts a new run from a saved model; --resume continues a checkpoint; give one");
    resume = read_checkpoint(flags.resume_path);
    ResumePlan plan = plan_resume(flags, given, resume);
    for (const std::string& w : plan.warnings) spdlog::warn("{}", w);
    cfg = plan.cfg;
    continuation = plan.continuation;
  }
  std::vector<float> init_params;  // --init-from: checked against the architecture before any work
  if (!cfg.init_from_path.empty()) init_params = init_params_from(cfg.init_from_path, cfg.model);
  const char* checkpoint_flag = flags.checkpoint_path.empty() ? "--resume" : "--checkpoint";
  std::optional<MadeDirs> report_dirs;  // an interrupted or failed run leaves no empty report folder
  if (!cfg.report_path.empty()) report_dirs.emplace(cfg.report_path, "the report directory");
  check_train_outputs(cfg, checkpoint_flag);
  std::optional<FileLock> checkpoint_lock;
  if (!cfg.checkpoint_path.empty()) {
    checkpoint_lock = lock_checkpoint(cfg.checkpoint_path, checkpoint_flag);
    spdlog::info("checkpoint: {} (written after every epoch)", cfg.checkpoint_path);
  }
  RunOutputs out;
  TrainPhase phase = TrainPhase::load;
  auto enter = [&](TrainPhase p) {
    phase = p;
    signal_self_if_asked(p);
  };
  // The data loads on other threads while the backend sets up (on a GPU the CUDA context and
  // cuBLAS take a few tenths of a second); a backend error (a missing GPU) is still the one
  // reported when both fail.
  RunTimings timings;
  timings.end("start-up");
  struct LoadedData {
    std::filesystem::path dir;
    MnistFiles files;
    double seconds = 0;
  };
  std::future<LoadedData> loading =
      std::async(std::launch::async, [data_dir = cfg.data_dir, inputs = cfg.model.inputs] {
        const auto t0 = std::chrono::steady_clock::now();
        LoadedData d;
        d.dir = resolve_data_dir(data_dir);
        d.files = load_mnist_dir(d.dir, inputs);
        d.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return d;
      });
  std::unique_ptr<Backend> backend = choose_backend(cfg);
  if (!cfg.resume_path.empty()) {
    backend->set_state(resume.state);
    spdlog::info("resuming {} after epoch {} (batch {} of the next)", cfg.resume_path, resume.progress.done.size(),
                 resume.progress.partial.batches);
    if (!continuation.empty()) spdlog::info("{}", continuation);
  }
  if (!init_params.empty()) {
    backend->set_params(init_params);
    spdlog::info("starting from the parameters of {} (the optimizer starts afresh)", cfg.init_from_path);
  }
  timings.end("backend setup");
  enter(TrainPhase::load);
  LoadedData loaded = loading.get();
  timings.end(fmt::format("data wait (loaded in {:.3f} s beside the backend setup)", loaded.seconds));
  const std::filesystem::path dir = loaded.dir;
  MnistFiles files = std::move(loaded.files);
  log_data_notes(files);
  const TrainSplit split = make_train_split(files.train, cfg.val, cfg.limit, cfg.seed);
  timings.end("train/validation split");
  const Dataset& train_set = split.train;
  const Dataset& val_set = split.val;
  spdlog::info("data: {} from {} ({} train, {} validation, {} test)", files.dataset_name, dir.string(),
               train_set.count, val_set.count, files.test.count);
  if (stop.requested()) return report_interrupt(stop.signal(), phase, cfg, out);

  const ParamLayout layout(cfg.model);
  spdlog::info("model: {}-{}{}10, {}, {} loss, {} parameters; {} lr {} batch {}; seed {}; device {}",
               cfg.model.inputs, join(cfg.model.hidden, "-"), cfg.model.hidden.empty() ? "" : "-",
               to_string(cfg.model.activation), to_string(cfg.model.loss), layout.size,
               to_string(cfg.optimizer.kind), cfg.optimizer.lr, cfg.batch, cfg.seed, backend->describe());

  if (!cfg.recipe.empty()) {
    spdlog::info("recipe: {} ({}; flags given override it): {}", cfg.recipe, (recipes_dir() / (cfg.recipe + ".json")).string(),
                 settings_as_flags(cfg));
    // The settings are applied already (or came from a checkpoint): a recipe file since moved or
    // broken only leaves the warning out.
    std::string slow;
    try {
      slow = recipe_cpu_warning(find_recipe(cfg.recipe, recipes_dir()), backend->device(), !cfg.checkpoint_path.empty(),
                                cfg.time_limit_s);
    } catch (const std::runtime_error&) {  // Error or UsageError from find_recipe/read_recipe
    }
    if (!slow.empty()) spdlog::warn("warning: {}", slow);
  }

  MetricsFile metrics(cfg.metrics_path, resume.progress.done);
  if (!cfg.metrics_path.empty()) out.metrics = cfg.metrics_path;
  if (cfg.metrics_path == "-") spdlog::info("metrics: stdout (one JSON line per epoch, then a summary line)");
  else if (!cfg.metrics_path.empty())
    spdlog::info("metrics: {} (one JSON line per epoch, then a summary line)", cfg.metrics_path);
  auto save = [&](const std::string& path, const TrainProgress& p) {
    write_checkpoint(path, Checkpoint{cfg, backend->get_state(), p});
    out.checkpoint = path;
  };
  // The final test follows the last epoch (or the one early stopping ends on): say so, it takes a
  // while. A validation pass is a phase of its own (the interrupt names it).
  bool asked_before_validation = false;  // the signal came before the last validation began
  auto eval_start = [&](EvalKind what) {
    if (what == EvalKind::validation) {
      asked_before_validation = stop.requested();
      enter(TrainPhase::validate);
    }
    if (what != EvalKind::test) return;
    enter(TrainPhase::test);
    spdlog::info("testing: evaluating {} test images", files.test.count);
  };
  CliObserver::ProgressSink sink;
  if (!cfg.checkpoint_path.empty()) sink = [&](const TrainProgress& p) { save(cfg.checkpoint_path, p); };
  CliObserver observer(cfg.epochs, cfg.batch, metrics, sink, eval_start);
  TrainOptions options;
  options.resume = resume.progress;
  options.stop = stop.flag();
  enter(TrainPhase::train);
  timings.end("run setup");
  const TrainResult r = train(cfg, TrainData{train_set, val_set, files.test}, *backend, observer, options);
  observer.clear_bar();
  for (const std::string& w : backend->take_warnings()) spdlog::warn("{}", w);
  // train() is the epochs (r.train_s, the first step's graph capture included; with --resume
  // also the epochs trained before) and the evaluations between and after them.
  double resumed_s = 0;
  for (const EpochMetrics& m : resume.progress.done) resumed_s += m.epoch_s;
  timings.add("training", r.train_s - resumed_s);
  timings.add("evaluation", timings.since_last() - (r.train_s - resumed_s));
  timings.restart();

  if (r.stopped || stop.requested()) {
    // Training stopped after a step, or the signal came during the final test (after the last
    // checkpoint): keep the progress in a checkpoint. One written after the last epoch is kept as
    // it is (after early stopping the backend now holds the best epoch's weights, not the last).
    if (r.stopped || cfg.checkpoint_path.empty())
      save(cfg.checkpoint_path.empty() ? "mnist_gpu-interrupted.ckpt" : cfg.checkpoint_path, r.progress);
    const std::size_t done = r.progress.done.size();
    const bool between = r.stopped && r.progress.partial.batches == 0 && done > 0;
    if (between)  // the signal came during the epoch's last step or its evaluations
      spdlog::info("stopped after epoch {} of {}, whole{}; {}; checkpoint written to {}", done, cfg.epochs,
                   val_set.count > 0 ? " (its validation included)" : "",
                   static_cast<int>(done) >= cfg.epochs ? "the final test is left" : "the next epoch is left",
                   out.checkpoint);
    else if (r.stopped)
      spdlog::info("stopped in epoch {} {}; checkpoint written to {}", done + 1,
                   r.progress.partial.batches > 0 ? "after batch " + std::to_string(r.progress.partial.batches)
                                                  : std::string("before its first batch"),
                   out.checkpoint);
    if (metrics.remove_if_empty()) out.metrics.clear();
    const TrainPhase where = !r.stopped                                                              ? phase
                             : between && phase == TrainPhase::validate && !asked_before_validation ? phase
                                                                                                     : TrainPhase::train;
    return report_interrupt(stop.signal() ? stop.signal() : SIGINT, where, cfg, out);
  }
  if (!cfg.checkpoint_path.empty()) out.checkpoint = cfg.checkpoint_path;

  const double mib = 1024.0 * 1024.0;
  if (backend->device() == "cuda") {
    spdlog::info("memory: peak host {:.0f} MiB resident; device {:.1f} MiB in mnist_gpu's buffers (with cuBLAS's "
                 "workspace; the CUDA context not counted)",
                 static_cast<double>(peak_host_bytes()) / mib, static_cast<double>(backend->peak_device_bytes()) / mib);
    if (backend->kernels_per_step() > 0)
      spdlog::info("gpu step: {} data, {} GEMMs at {}, {} kernels per step replayed as one CUDA graph launch",
                   to_string(cfg.cuda.data), to_string(effective_gemm(cfg.cuda, cfg.model.precision)),
                   to_string(cfg.model.precision), backend->kernels_per_step());
    else
      spdlog::info("gpu step: {} data, kernel by kernel (--cuda-graph {})", to_string(cfg.cuda.data),
                   cfg.cuda.graph ? "on, no full batch trained" : "off");
  } else
    spdlog::info("memory: peak host {:.0f} MiB resident", static_cast<double>(peak_host_bytes()) / mib);
  if (cfg.target > 0) {
    if (std::isnan(r.train_s_to_target))
      spdlog::info("time to {:.2f}% test accuracy: not reached in {} epoch{}", 100 * cfg.target, r.epochs.size(),
                   r.epochs.size() == 1 ? "" : "s");
    else
      spdlog::info("time to {:.2f}% test accuracy: {:.2f} s of training", 100 * cfg.target, r.train_s_to_target);
  }
  if (r.stopped_early)
    spdlog::info("early stopping after epoch {}: no better validation loss for {} epochs", r.epochs.size(),
                 cfg.patience);
  if (r.time_limited)
    spdlog::info("time limit: {} s of training reached after epoch {} of {}; testing now; {}",
                 float_text(static_cast<float>(cfg.time_limit_s)), r.epochs.size(), cfg.epochs,
                 cfg.checkpoint_path.empty()
                     ? std::string("to continue such a run later, give it --checkpoint FILE")
                     : fmt::format("`mnist_gpu train --resume {}` trains the other {}", cfg.checkpoint_path,
                                   cfg.epochs - static_cast<int>(r.epochs.size())));
  if (r.restored_best)
    spdlog::info("testing the best epoch's weights: epoch {} (validation loss {:.4f}, accuracy {:.2f}%)", r.best_epoch,
                 r.epochs[static_cast<std::size_t>(r.best_epoch - 1)].val_loss,
                 100 * r.epochs[static_cast<std::size_t>(r.best_epoch - 1)].val_acc);
  const auto errors = r.test.per_class_errors();
  spdlog::info("test: accuracy {:.2f}% ({} of {} wrong), loss {:.4f}; training {:.1f} s", 100 * r.test.acc,
               std::lround((1 - r.test.acc) * static_cast<double>(r.test.count)), r.test.count, r.test.loss,
               r.train_s);
  const double test_printed_s = RunTimings::since_start();

  // The outputs, each written whole; a signal is honoured after the one under way.
  enter(TrainPhase::save);
  if (!cfg.save_path.empty()) {
    save_model(cfg.save_path, cfg.model, backend->get_params());
    out.model_saved = true;
    spdlog::info("model saved to {}", cfg.save_path);
  }
  if (stop.requested()) return report_interrupt(stop.signal(), phase, cfg, out);
  enter(TrainPhase::report);
  if (!cfg.report_path.empty()) {
    ReportInput report;
    report.cfg = cfg;
    report.device_name = backend->describe();
    report.dataset_name = files.dataset_name;
    report.epochs = r.epochs;
    report.test = r.test;
    report.train_s = r.train_s;
    report.test_set = &files.test;
    report.train_set = &train_set;
    report.best_epoch = r.restored_best ? r.best_epoch : 0;  // the epoch whose weights were tested
    report.stamp = {command_line, utc_iso8601(std::time(nullptr))};
    report.continued = continuation;
    // The gallery needs per-sample predictions: the final parameters re-run on the CPU (any backend).
    report.test_predictions = predict_dataset(cfg.model, backend->get_params(), files.test, cfg.batch);
    write_train_report(cfg.report_path, report);
    report_dirs->keep();
    out.report_written = true;
    spdlog::info("report written to {}", (std::filesystem::path(cfg.report_path) / "report.html").string());
  }
  if (stop.requested()) return report_interrupt(stop.signal(), phase, cfg, out);
  enter(TrainPhase::metrics);
  json confusion = json::array();
  for (int t = 0; t < 10; ++t) {
    json row = json::array();
    for (int p = 0; p < 10; ++p) row.push_back(r.test.confusion[static_cast<std::size_t>(t * 10 + p)]);
    confusion.push_back(row);
  }
  metrics.write({{"final", true},
                 {"test_acc", r.test.acc},
                 {"test_loss", r.test.loss},
                 {"per_class_errors", errors},
                 {"confusion", confusion},
                 {"device", backend->device()},
                 {"device_name", backend->describe()},
                 {"seed", cfg.seed},
                 {"train_s", r.train_s},
                 {"epochs", cfg.epochs},
                 {"epochs_run", r.epochs.size()},
                 {"peak_host_bytes", peak_host_bytes()},
                 {"peak_device_bytes", backend->peak_device_bytes()},
                 {"data_path", backend->device() == "cuda" ? json(to_string(cfg.cuda.data)) : json(nullptr)},
                 {"cuda_graph", backend->device() == "cuda" ? json(cfg.cuda.graph) : json(nullptr)},
                 {"kernels_per_step", backend->kernels_per_step()},
                 {"precision", to_string(cfg.model.precision)},
                 {"gemm", backend->device() == "cuda" ? json(to_string(effective_gemm(cfg.cuda, cfg.model.precision)))
                                                      : json(nullptr)},
                 {"target", cfg.target},
                 {"train_s_to_target", std::isnan(r.train_s_to_target) ? json(nullptr) : json(r.train_s_to_target)},
                 {"best_epoch", r.best_epoch},
                 {"stopped_early", r.stopped_early},
                 {"time_limited", r.time_limited},
                 {"time_limit_s", cfg.time_limit_s > 0 ? json(cfg.time_limit_s) : json(nullptr)},
                 {"restored_best", r.restored_best},
                 {"dropout", cfg.optimizer.dropout},
                 {"schedule", to_string(cfg.schedule)},
                 {"batch", cfg.batch},
                 {"hidden", cfg.model.hidden},
                 {"activation", to_string(cfg.model.activation)},
                 {"loss", to_string(cfg.model.loss)},
                 {"optimizer", to_string(cfg.optimizer.kind)},
                 {"lr", cfg.optimizer.lr},
                 {"continued", continuation.empty() ? json(nullptr) : json(continuation)},
                 {"flags", settings_as_flags(cfg)},
                 {"init_from", cfg.init_from_path.empty() ? json(nullptr) : json(cfg.init_from_path)},
                 {"dataset", files.dataset_name}});
  out.metrics_final = !cfg.metrics_path.empty();
  if (stop.requested()) return report_interrupt(stop.signal(), phase, cfg, out);

  // Every file the run wrote, once more, and what it did not keep.
  std::vector<std::string> wrote;
  if (!out.checkpoint.empty()) wrote.push_back("checkpoint " + out.checkpoint);
  if (cfg.metrics_path == "-") wrote.push_back("metrics to stdout");
  else if (!cfg.metrics_path.empty()) wrote.push_back("metrics " + cfg.metrics_path);
  if (out.model_saved) wrote.push_back("model " + cfg.save_path);
  if (out.report_written)
    wrote.push_back("report " + (std::filesystem::path(cfg.report_path) / "report.html").string() +
                    " (with loss.svg, accuracy.svg, misclassified.png)");
  std::string list;
  for (const auto& w : wrote) list += (list.empty() ? "" : "; ") + w;
  spdlog::info("files written: {}", list.empty() ? std::string("none") : list);
  if (cfg.save_path.empty()) spdlog::info("the trained model was not kept (add --save FILE to keep it)");
  if (cfg.timings) {
    timings.end("outputs");
    const double exec_s = exec_to_main_s();
    spdlog::info("{}; test accuracy printed at {:.3f} s since main", timings.text(exec_s), test_printed_s);
  }
  return 0;
}

// `verify`: GPU vs CPU on one step of each activation x loss; exit 1 naming the worst tensor.
int run_verify(const TrainConfig& cfg) {
  const std::filesystem::path dir = resolve_data_dir(cfg.data_dir);
  const MnistFiles files = load_mnist_dir(dir, cfg.model.inputs);
  log_data_notes(files);
  const VerifyReport report = verify_gpu(cfg.model, cfg.optimizer, files.train, cfg.batch, cfg.seed, cfg.cuda.device,
                                         effective_gemm(cfg.cuda, cfg.model.precision));
  for (const auto& c : report.checks)
    spdlog::info("{:<4} {:<60} worst error {:.3g}x the {} tolerance (atol {:g}, rtol {:g})", c.cmp.ok ? "ok" : "FAIL",
                 c.tensor, c.cmp.ratio, c.tol.name, c.tol.atol, c.tol.rtol);
  const VerifyCheck* worst = report.worst();
  if (!report.ok()) {
    spdlog::error("verify: GPU ({}, precision {}, {}) and CPU disagree; {}", report.device, report.precision, report.gemm,
                  worst ? worst->cmp.describe(worst->tensor) : std::string("no checks ran"));
    return 1;
  }
  spdlog::info("verify: {} checks passed on {} (precision {}, {}); worst: {} at {:.3g}x its tolerance",
               report.checks.size(), report.device, report.precision, report.gemm, worst->tensor, worst->cmp.ratio);
  return 0;
}

void setup_logging() {
  auto logger = spdlog::stderr_color_st("mnist_gpu");
  logger->set_pattern("%^[%T]%$ %v");
  spdlog::set_default_logger(logger);
}

}  // namespace

int run_cli(int argc, const char* const* argv) {
  setup_logging();
  CLI::App app{"mnist_gpu: train multilayer perceptrons on MNIST-format data, on a GPU or the CPU",
               "mnist_gpu"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(MNIST_GPU_VERSION));
  // Each command: its flags bound to its own argument struct, declared by its add_*_options.
  auto command = [&app](const char* name, const char* help, auto& args, auto add_options) {
    CLI::App* cmd = app.add_subcommand(name, help);
    add_options(*cmd, args);
    return cmd;
  };
  TrainArgs train_args, verify_args;
  verify_args.text.at("--batch") = "256";
  BenchArgs bench_args;
  SweepArgs sweep_args;
  EvalArgs eval_args;
  PredictArgs predict_args;
  ExportArgs export_args;
  ImportArgs import_args;
  CLI::App* train_cmd = command("train", "train an MLP and report its test accuracy", train_args, add_train_options);
  CLI::App* bench_cmd =
      command("bench", "measure training and inference throughput across batch sizes on the CPU and the GPU",
              bench_args, add_bench_options);
  CLI::App* sweep_cmd =
      command("sweep", "train a grid of architectures, activations, losses and batch sizes and compare them",
              sweep_args, add_sweep_options);
  CLI::App* eval_cmd = command("eval", "evaluate a saved model on the test set (accuracy, confusion matrix)",
                               eval_args, add_eval_options);
  CLI::App* predict_cmd = command("predict", "classify PNG or JPEG images of digits with a saved model",
                                  predict_args, add_predict_options);
  CLI::App* export_cmd =
      command("export", "write a saved model as ONNX (for ONNX Runtime) or as a PyTorch state dict in safetensors",
              export_args, add_export_options);
  CLI::App* import_cmd =
      command("import", "turn a PyTorch nn.Sequential MLP saved as safetensors into a model for eval and predict",
              import_args, add_import_options);
  bool recipes_markdown = false;
  CLI::App* recipes_cmd = app.add_subcommand(
      "recipes", "list the recipes (train --recipe NAME): each one's source, reported result, mnist_gpu's measured "
                 "result and time, and the command (folder: $MNIST_GPU_RECIPES, else the source tree's recipes/)");
  recipes_cmd->add_flag("--markdown", recipes_markdown, "print the table as Markdown (as the README shows it)");
  CLI::App* verify_cmd = command(
      "verify", "check the GPU against the CPU: one training step of each activation and loss, tensor by tensor",
      verify_args, add_model_options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    spdlog::error("error: {}", e.what());
    const std::string hint = suggest_near_name(app, std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
    if (!hint.empty()) spdlog::error("{}", hint);
    std::fprintf(stderr, "Run 'mnist_gpu --help' or 'mnist_gpu train --help' for the flags.\n");
    return 2;
  }
  try {
    if (train_cmd->parsed()) {
      std::vector<std::string> warnings;
      const TrainArgs with = with_recipe(train_args);  // the recipe's flags count as given (--resume's check)
      const TrainConfig flags = to_train_config(with, &warnings);
      for (const std::string& w : warnings) spdlog::warn("{}", w);
      return run_train(flags, with.given, shell_command(std::vector<std::string>(argv, argv + argc)));
    }
    if (verify_cmd->parsed()) {
      for (const char* flag : {"--activation", "--loss"})  // verify checks each of them in turn
        if (verify_args.given.count(flag))
          throw UsageError(std::string(flag) + ": verify checks every activation and loss in turn; " + flag +
                           " does nothing here");
      return run_verify(to_train_config(verify_args));
    }
    if (recipes_cmd->parsed()) {
      const std::filesystem::path dir = recipes_dir();
      std::fputs(recipes_table(read_recipes(dir), recipes_markdown).c_str(), stdout);
      spdlog::info("recipes from {}", dir.string());
      return 0;
    }
    if (eval_cmd->parsed()) return run_eval(eval_args);
    if (predict_cmd->parsed()) return run_predict(predict_args);
    if (export_cmd->parsed()) return run_export(export_args);
    if (import_cmd->parsed()) return run_import(import_args);
    if (bench_cmd->parsed()) return run_bench_command(bench_args);
    if (sweep_cmd->parsed()) {
      sweep_args.command_line = shell_command(std::vector<std::string>(argv, argv + argc));
      return run_sweep_command(sweep_args);
    }
    return 2;
  } catch (const UsageError& e) {
    spdlog::error("error: {}", e.what());
    return 2;
  } catch (const Error& e) {
    spdlog::error("error: {}", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    spdlog::error("error: out of host memory (try a smaller --batch or --hidden)");
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("error: {}", e.what());
    return 1;
  }
}

}  // namespace mnist_gpu
