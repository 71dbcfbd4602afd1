// run_cli(): the mnist_gpu program. Parses the command, picks the device, loads and splits the
// data, trains, and reports: human progress to stderr (spdlog), JSON lines to --metrics.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <new>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>

#include "mnist_gpu/backend.hpp"
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
#include "mnist_gpu/report.hpp"
#include "mnist_gpu/resume.hpp"
#include "mnist_gpu/settings.hpp"
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

// The process's peak resident set so far (Linux reports ru_maxrss in KiB).
std::uint64_t peak_host_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_maxrss) * 1024u;
}

// A metrics file of JSON lines, each written whole and flushed, so that a crash loses at most the
// line being written. On resume it is rewritten with the checkpoint's epochs (so that an epoch
// whose line was written before a crash but whose checkpoint was not is not listed twice), then
// appended to.
class MetricsFile {
 public:
  MetricsFile(const std::string& path, const std::vector<EpochMetrics>& history) : path_(path) {
    if (path.empty()) return;
    out_.open(path, std::ios::out | std::ios::trunc);
    if (!out_) throw Error("--metrics: cannot write '" + path + "' (" + std::strerror(errno) + ")");
    for (const auto& m : history) write(epoch_to_json(m));
  }
  void write(const json& line) {
    if (path_.empty()) return;
    out_ << line.dump() << '\n';
    out_.flush();
    if (!out_) throw Error(path_ + ": write failed (" + std::strerror(errno) + ")");
  }

 private:
  std::string path_;
  std::ofstream out_;
};

// Logs each epoch, draws a progress bar within the epoch when stderr is a terminal, and writes
// the metrics file.
class CliObserver final : public TrainObserver {
 public:
  using ProgressSink = std::function<void(const TrainProgress&)>;
  CliObserver(int epochs, MetricsFile& metrics, ProgressSink checkpoint)
      : epochs_(epochs), metrics_(metrics), checkpoint_(std::move(checkpoint)), tty_(isatty(2) != 0) {}

  void on_progress(const TrainProgress& p) override {
    if (checkpoint_) checkpoint_(p);
  }

  void on_batch(int epoch, long long done, long long total) override {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done != total && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int width = 30;
    const int filled = static_cast<int>(width * done / std::max(1LL, total));
    std::fprintf(stderr, "\r  epoch %d/%d [%s%s] %3lld%%", epoch, epochs_, std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), 100 * done / std::max(1LL, total));
    std::fflush(stderr);
    drawn_ = true;
  }

  void on_epoch(const EpochMetrics& m) override {
    if (drawn_) {
      std::fprintf(stderr, "\r%60s\r", "");
      drawn_ = false;
    }
    std::string val = "val -";
    if (!std::isnan(m.val_acc)) val = fmt::format("val {:.2f}% (loss {:.4f})", 100 * m.val_acc, m.val_loss);
    spdlog::info("epoch {:>3}/{}  loss {:.4f}  train {:.2f}%  {}  lr {:.3g}  {:.2f} s  {:.0f} samples/s", m.epoch,
                 epochs_, m.train_loss, 100 * m.train_acc, val, m.lr, m.epoch_s, m.samples_per_s);
    metrics_.write(epoch_to_json(m));
  }

 private:
  int epochs_;
  MetricsFile& metrics_;
  ProgressSink checkpoint_;
  bool tty_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace

std::unique_ptr<Backend> choose_backend(const TrainConfig& cfg, const char* work) {
  if (cfg.device != DeviceChoice::cpu) {
    const DeviceProbe probe = probe_device();
    if (probe.usable) {
      spdlog::info("device: {} (compute capability {}.{}, {:.1f} GiB)", probe.name, probe.compute_major,
                   probe.compute_minor, static_cast<double>(probe.total_bytes) / (1024.0 * 1024.0 * 1024.0));
      return make_cuda_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed, cfg.cuda);
    }
    if (cfg.device == DeviceChoice::cuda) throw Error("--device cuda: no usable GPU: " + probe.reason);
    spdlog::info("notice: no usable GPU ({}); {} on the CPU", probe.reason, work);
  }
  return make_cpu_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed);
}

void log_data_notes(const MnistFiles& files) {
  for (const auto& s : files.shadowed)
    spdlog::info("notice: {} holds both {} and {}; reading {}", s.used.parent_path().string(),
                 s.used.filename().string(), s.ignored.filename().string(), s.used.filename().string());
  for (const auto& w : files.warnings) spdlog::warn("warning: {}", w);
}

namespace {

// Every output of `train`, checked before any work: no two the same file, and each one a place
// where a regular file can be written (not a device, FIFO or directory; an existing, writable
// folder; a name the file system accepts). `checkpoint_flag` names where the checkpoint path came from.
void check_train_outputs(const TrainConfig& cfg, const char* checkpoint_flag) {
  std::vector<std::pair<std::string, std::filesystem::path>> outputs = {
      {"--metrics", cfg.metrics_path}, {checkpoint_flag, cfg.checkpoint_path}, {"--save", cfg.save_path}};
  if (!cfg.report_path.empty()) {
    outputs.emplace_back("--report", cfg.report_path);
    for (const auto& file : report_files(cfg.report_path)) outputs.emplace_back("--report", file);
  }
  check_distinct_paths(outputs);
  if (!cfg.metrics_path.empty()) check_file_writable(cfg.metrics_path, "write the --metrics file");
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

int run_train(const TrainConfig& flags, const std::set<std::string>& given) {
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
  check_train_outputs(cfg, checkpoint_flag);
  std::optional<FileLock> checkpoint_lock;
  if (!cfg.checkpoint_path.empty()) checkpoint_lock = lock_checkpoint(cfg.checkpoint_path, checkpoint_flag);
  MetricsFile metrics(cfg.metrics_path, resume.progress.done);
  std::unique_ptr<Backend> backend = choose_backend(cfg);  // a missing GPU fails before loading data
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
  const std::filesystem::path dir = resolve_data_dir(cfg.data_dir);
  MnistFiles files = load_mnist_dir(dir, cfg.model.inputs);
  log_data_notes(files);
  const TrainSplit split = make_train_split(files.train, cfg.val, cfg.limit, cfg.seed);
  const Dataset& train_set = split.train;
  const Dataset& val_set = split.val;
  spdlog::info("data: {} from {} ({} train, {} validation, {} test)", files.dataset_name, dir.string(),
               train_set.count, val_set.count, files.test.count);

  const ParamLayout layout(cfg.model);
  spdlog::info("model: {}-{}{}10, {}, {} loss, {} parameters; {} lr {} batch {}; seed {}; device {}",
               cfg.model.inputs, join(cfg.model.hidden, "-"), cfg.model.hidden.empty() ? "" : "-",
               to_string(cfg.model.activation), to_string(cfg.model.loss), layout.size,
               to_string(cfg.optimizer.kind), cfg.optimizer.lr, cfg.batch, cfg.seed, backend->describe());

  auto save = [&](const std::string& path, const TrainProgress& p) {
    write_checkpoint(path, Checkpoint{cfg, backend->get_state(), p});
  };
  CliObserver::ProgressSink sink;
  if (!cfg.checkpoint_path.empty()) sink = [&](const TrainProgress& p) { save(cfg.checkpoint_path, p); };
  CliObserver observer(cfg.epochs, metrics, sink);
  TrainOptions options;
  options.resume = resume.progress;
  int sig = 0;
  const TrainResult r = [&] {
    const StopOnSignals stop;  // SIGINT/SIGTERM: stop after the current step and save
    options.stop = stop.flag();
    TrainResult res = train(cfg, TrainData{train_set, val_set, files.test}, *backend, observer, options);
    sig = stop.signal();
    return res;
  }();

  if (r.stopped) {
    const std::string path = cfg.checkpoint_path.empty() ? "mnist_gpu-interrupted.ckpt" : cfg.checkpoint_path;
    std::fprintf(stderr, "\n");
    save(path, r.progress);
    spdlog::info("stopped by {} in epoch {} after batch {}; checkpoint written to {}", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                 r.progress.done.size() + 1, r.progress.partial.batches, path);
    spdlog::info("resume with: mnist_gpu train --resume {}{}", path,
                 cfg.data_dir.empty() ? "" : " --data " + cfg.data_dir);
    return 128 + (sig ? sig : SIGINT);
  }

  const double mib = 1024.0 * 1024.0;
  if (backend->device() == "cuda") {
    spdlog::info("memory: peak host {:.0f} MiB resident; device {:.1f} MiB in mnist_gpu's buffers (with cuBLAS's "
                 "workspace; the CUDA context not counted)",
                 static_cast<double>(peak_host_bytes()) / mib, static_cast<double>(backend->peak_device_bytes()) / mib);
    if (backend->kernels_per_step() > 0)
      spdlog::info("gpu step: {} data, {} kernels per step replayed as one CUDA graph launch", to_string(cfg.cuda.data),
                   backend->kernels_per_step());
    else
      spdlog::info("gpu step: {} data, kernel by kernel (--cuda-graph {})", to_string(cfg.cuda.data),
                   cfg.cuda.graph ? "on, no full batch trained" : "off");
  } else
    spdlog::info("memory: peak host {:.0f} MiB resident", static_cast<double>(peak_host_bytes()) / mib);
  if (cfg.target > 0) {
    if (std::isnan(r.train_s_to_target))
      spdlog::info("time to {:.2f}% test accuracy: not reached in {} epochs", 100 * cfg.target, r.epochs.size());
    else
      spdlog::info("time to {:.2f}% test accuracy: {:.2f} s of training", 100 * cfg.target, r.train_s_to_target);
  }
  if (r.stopped_early)
    spdlog::info("early stopping after epoch {}: no better validation loss for {} epochs", r.epochs.size(),
                 cfg.patience);
  if (r.restored_best)
    spdlog::info("testing the best epoch's weights: epoch {} (validation loss {:.4f}, accuracy {:.2f}%)", r.best_epoch,
                 r.epochs[static_cast<std::size_t>(r.best_epoch - 1)].val_loss,
                 100 * r.epochs[static_cast<std::size_t>(r.best_epoch - 1)].val_acc);
  const auto errors = r.test.per_class_errors();
  spdlog::info("test: accuracy {:.2f}% ({} of {} wrong), loss {:.4f}; training {:.1f} s", 100 * r.test.acc,
               std::lround((1 - r.test.acc) * static_cast<double>(r.test.count)), r.test.count, r.test.loss,
               r.train_s);
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
                 {"target", cfg.target},
                 {"train_s_to_target", std::isnan(r.train_s_to_target) ? json(nullptr) : json(r.train_s_to_target)},
                 {"best_epoch", r.best_epoch},
                 {"stopped_early", r.stopped_early},
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
  if (!cfg.save_path.empty()) {
    save_model(cfg.save_path, cfg.model, backend->get_params());
    spdlog::info("model saved to {}", cfg.save_path);
  }
  if (!cfg.report_path.empty()) {
    ReportInput report;
    report.cfg = cfg;
    report.device_name = backend->describe();
    report.dataset_name = files.dataset_name;
    report.epochs = r.epochs;
    report.test = r.test;
    report.train_s = r.train_s;
    report.test_set = &files.test;
    report.best_epoch = r.restored_best ? r.best_epoch : 0;  // the epoch whose weights were tested
    report.continued = continuation;
    // The gallery needs per-sample predictions: the final parameters re-run on the CPU (any backend).
    report.test_predictions = predict_dataset(cfg.model, backend->get_params(), files.test, cfg.batch);
    write_train_report(cfg.report_path, report);
    spdlog::info("report written to {}", (std::filesystem::path(cfg.report_path) / "report.html").string());
  }
  return 0;
}

// `verify`: GPU vs CPU on one step of each activation x loss; exit 1 naming the worst tensor.
int run_verify(const TrainConfig& cfg) {
  const std::filesystem::path dir = resolve_data_dir(cfg.data_dir);
  const MnistFiles files = load_mnist_dir(dir, cfg.model.inputs);
  log_data_notes(files);
  const VerifyReport report = verify_gpu(cfg.model, cfg.optimizer, files.train, cfg.batch, cfg.seed);
  for (const auto& c : report.checks)
    spdlog::info("{:<4} {:<60} worst error {:.3g}x the {} tolerance (atol {:g}, rtol {:g})", c.cmp.ok ? "ok" : "FAIL",
                 c.tensor, c.cmp.ratio, c.tol.name, c.tol.atol, c.tol.rtol);
  const VerifyCheck* worst = report.worst();
  if (!report.ok()) {
    spdlog::error("verify: GPU ({}) and CPU disagree; {}", report.device,
                  worst ? worst->cmp.describe(worst->tensor) : std::string("no checks ran"));
    return 1;
  }
  spdlog::info("verify: {} checks passed on {}; worst: {} at {:.3g}x its tolerance", report.checks.size(),
               report.device, worst->tensor, worst->cmp.ratio);
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
      const TrainConfig flags = to_train_config(train_args, &warnings);
      for (const std::string& w : warnings) spdlog::warn("{}", w);
      return run_train(flags, train_args.given);
    }
    if (verify_cmd->parsed()) {
      for (const char* flag : {"--activation", "--loss"})  // verify checks each of them in turn
        if (verify_args.given.count(flag))
          throw UsageError(std::string(flag) + ": verify checks every activation and loss in turn; " + flag +
                           " does nothing here");
      return run_verify(to_train_config(verify_args));
    }
    if (eval_cmd->parsed()) return run_eval(eval_args);
    if (predict_cmd->parsed()) return run_predict(predict_args);
    if (export_cmd->parsed()) return run_export(export_args);
    if (import_cmd->parsed()) return run_import(import_args);
    if (bench_cmd->parsed()) return run_bench_command(bench_args);
    if (sweep_cmd->parsed()) return run_sweep_command(sweep_args);
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
