// `mnist_gpu sweep`: the grid, one training run per point on one copy of the data, the tables
// and the report page rewritten after each run, and --resume for a sweep that was interrupted.
#include "mnist_gpu/cli_sweep.hpp"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <ctime>
#include <optional>
#include <csignal>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/file_lock.hpp"
#include "mnist_gpu/report.hpp"
#include "mnist_gpu/run_record.hpp"
#include "mnist_gpu/settings.hpp"
#include "mnist_gpu/stop_signal.hpp"
#include "mnist_gpu/sweep.hpp"
#include "mnist_gpu/train.hpp"

namespace mnist_gpu {
namespace {

using json = nlohmann::json;

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    items.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

template <class T>
void refuse_repeats(const char* flag, const std::vector<T>& values, const std::vector<std::string>& texts) {
  for (std::size_t i = 0; i < values.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (values[i] == values[j]) throw UsageError(std::string(flag) + ": '" + texts[i] + "' is given twice");
}

// Each axis value is checked by the train flags' own parser, so the refusals read the same.
SweepGrid parse_grid(const SweepArgs& a) {
  SweepGrid g;
  TrainArgs probe = a.base;
  for (const std::string& h : a.hidden) {
    if (h.rfind("--", 0) == 0) throw UsageError("--hidden: expected a value, got the flag '" + h + "'");
    g.hidden.push_back(parse_hidden(h));
  }
  refuse_repeats("--hidden", g.hidden, a.hidden);
  const std::vector<std::string> acts = split_commas(a.activations), losses = split_commas(a.losses),
                                 batches = split_commas(a.batches);
  for (const std::string& s : acts) {
    probe.set("--activation", s);
    g.activations.push_back(to_train_config(probe).model.activation);
  }
  refuse_repeats("--activation", g.activations, acts);
  probe = a.base;
  for (const std::string& s : losses) {
    probe.set("--loss", s);
    g.losses.push_back(to_train_config(probe).model.loss);
  }
  refuse_repeats("--loss", g.losses, losses);
  probe = a.base;
  for (const std::string& s : batches) {
    probe.set("--batch", s);
    g.batches.push_back(to_train_config(probe).batch);
  }
  refuse_repeats("--batch", g.batches, batches);
  return g;
}

TrainConfig point_config(const SweepArgs& a, const SweepPoint& p, std::vector<std::string>* warnings = nullptr) {
  TrainArgs args = a.base;
  args.set("--hidden", hidden_text(p.hidden));
  args.set("--activation", to_string(p.activation));
  args.set("--loss", to_string(p.loss));
  args.set("--batch", std::to_string(p.batch));
  return to_train_config(args, warnings);  // also checks the combination (e.g. --dropout with no hidden layer)
}

// The first shared setting whose stored value differs from this sweep's, named as a flag with both
// values as typed; "" when they agree.
std::string settings_difference(const json& now, const json& stored) {
  if (!stored.is_object()) return "settings " + stored.dump();
  for (const Setting& s : train_settings()) {  // in --help order: --optimizer before the --lr it implies
    if (s.key.empty() || !now.contains(s.key)) continue;
    if (!stored.contains(s.key)) return s.name() + " (not recorded)";
    if (stored.at(s.key) == now.at(s.key)) continue;
    return s.name() + " " + show_json_value(s, now.at(s.key)) + " differs from the sweep's " +
           show_json_value(s, stored.at(s.key));
  }
  for (const auto& [key, value] : stored.items())
    if (!now.contains(key)) return key + " (recorded by another version of mnist_gpu)";
  return "";
}

// The settings every run shares: a --resume must find the same ones in sweep.json.
json shared_settings(const TrainConfig& c) {
  json j = config_to_json(c);
  for (const char* axis : {"hidden", "activation", "loss", "batch"}) j.erase(axis);
  return j;
}

json nan_null(double v) { return std::isnan(v) ? json(nullptr) : json(v); }
double null_nan(const json& j) { return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>(); }

json row_json(const SweepRow& r) {
  json epochs = json::array();
  for (const EpochMetrics& m : r.epochs) epochs.push_back(epoch_to_json(m));
  return {{"label", r.point.label()},          {"test_acc", r.test_acc},
          {"test_loss", r.test_loss},          {"best_val_acc", nan_null(r.best_val_acc)},
          {"best_val_epoch", r.best_val_epoch}, {"train_s", r.train_s},
          {"samples_per_s", r.samples_per_s},  {"stopped_early", r.stopped_early},
          {"epochs", epochs}};
}

SweepRow row_from_json(const json& j, const SweepPoint& p) {
  SweepRow r;
  r.point = p;
  r.test_acc = j.at("test_acc").get<double>();
  r.test_loss = j.at("test_loss").get<double>();
  r.best_val_acc = null_nan(j.at("best_val_acc"));
  r.best_val_epoch = j.at("best_val_epoch").get<int>();
  r.train_s = j.at("train_s").get<double>();
  r.samples_per_s = j.at("samples_per_s").get<double>();
  r.stopped_early = j.at("stopped_early").get<bool>();
  for (const json& e : j.at("epochs")) r.epochs.push_back(epoch_from_json(e));
  return r;
}

std::vector<std::uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

void write_outputs(const std::filesystem::path& out, const json& settings, const std::vector<SweepRow>& rows,
                   std::size_t total, const ReportStamp& stamp) {
  json state = {{"version", 1}, {"settings", settings}, {"rows", json::array()}};
  for (const SweepRow& r : rows) state["rows"].push_back(row_json(r));
  write_file_atomically(out / "sweep.json", bytes(state.dump(1) + "\n"));
  write_file_atomically(out / "results.csv", bytes(sweep_csv(rows)));
  write_file_atomically(out / "results.md", bytes(sweep_markdown(rows)));
  std::vector<SweepRunSummary> runs;
  for (const SweepRow& r : rows) {
    SweepRunSummary s;
    s.label = r.point.label();
    s.epochs = r.epochs;
    s.test_acc = r.test_acc;
    s.test_loss = r.test_loss;
    s.train_s = r.train_s;
    s.samples_per_s = r.samples_per_s;
    s.best_epoch = r.best_val_epoch;
    s.best_val_acc = r.best_val_acc;
    runs.push_back(s);
  }
  const std::string title = "mnist_gpu sweep: " + std::to_string(rows.size()) + " of " + std::to_string(total) + " runs";
  write_sweep_report(out / "report.html", title, runs, stamp);
}

// Logs one line per epoch, prefixed with the run.
class SweepObserver final : public TrainObserver {
 public:
  SweepObserver(std::string prefix, int epochs) : prefix_(std::move(prefix)), epochs_(epochs) {}
  void on_epoch(const EpochMetrics& m) override {
    const std::string val =
        std::isnan(m.val_acc) ? std::string("val -") : fmt::format("val {:.2f}%", 100 * m.val_acc);
    spdlog::info("{} epoch {}/{}  loss {:.4f}  train {:.2f}%  {}  {:.2f} s", prefix_, m.epoch, epochs_, m.train_loss,
                 100 * m.train_acc, val, m.epoch_s);
  }

 private:
  std::string prefix_;
  int epochs_;
};

}  // namespace

void add_sweep_options(CLI::App& app, SweepArgs& a) {
  add_train_options(app, a.base);
  // The axes replace the single-valued model flags; per-run files make no sense for a grid.
  for (const char* name : {"--hidden", "--activation", "--loss", "--batch", "--checkpoint", "--resume", "--save",
                           "--metrics", "--report", "--init-from", "--timings"})
    if (CLI::Option* o = app.get_option_no_throw(name)) app.remove_option(o);
  app.add_option("--hidden", a.hidden,
                 "an architecture to compare, e.g. 512,256 (repeat the flag for each; \"\" for none)")
      ->capture_default_str();
  app.add_option("--activation", a.activations, "activations to compare, comma-separated, of " + activation_names(","))->capture_default_str();
  app.add_option("--loss", a.losses, "losses to compare, e.g. xent,l2")->capture_default_str();
  app.add_option("--batch", a.batches, "batch sizes to compare, e.g. 32,256")->capture_default_str();
  app.add_option("--out", a.out, "folder for results.md, results.csv, report.html and sweep.json")
      ->capture_default_str();
  app.add_flag("--resume", a.resume, "continue the sweep in --out: runs already there are kept, not retrained");
}

int run_sweep_command(const SweepArgs& a) {
  for (const auto& [flag, value] : {std::pair<const char*, const std::string*>{"--activation", &a.activations},
                                    {"--loss", &a.losses}, {"--batch", &a.batches}, {"--out", &a.out}})
    if (value->rfind("--", 0) == 0) throw UsageError(std::string(flag) + ": expected a value, got the flag '" + *value + "'");
  if (a.out.empty()) throw UsageError("--out: expected a folder, got ''");
  const SweepGrid grid = parse_grid(a);
  const std::vector<SweepPoint> points = grid.points();
  std::vector<TrainConfig> configs;
  std::vector<std::string> warnings;
  for (const SweepPoint& p : points)  // every refusal before any training
    configs.push_back(point_config(a, p, configs.empty() ? &warnings : nullptr));
  for (const std::string& w : warnings) spdlog::warn("{}", w);
  const json settings = shared_settings(configs.front());

  const std::filesystem::path out(a.out);
  // The folder is made (and removed again if the sweep ends before writing into it), then locked
  // like a checkpoint, so that two sweeps never write into one folder.
  MadeDirs made(out, "the output folder");
  const std::filesystem::path lock_path = out / "sweep.lock";
  long holder = 0;
  std::optional<FileLock> lock = FileLock::try_acquire(lock_path, holder);
  if (!lock)
    throw Error("--out " + a.out + ": another sweep (" +
                (holder > 0 ? "pid " + std::to_string(holder) : std::string("pid unknown")) +
                ") is writing into this folder (it holds " + lock_path.string() +
                "); wait for it to end, or choose another --out");
  const ReportStamp stamp{a.command_line, utc_iso8601(std::time(nullptr))};
  std::vector<SweepRow> rows;
  if (std::filesystem::exists(out / "sweep.json")) {
    if (!a.resume)
      throw UsageError("--out: " + a.out + " already holds a sweep (sweep.json); add --resume to continue it, or "
                       "choose another --out");
    const std::vector<std::uint8_t> b = read_whole_file(out / "sweep.json", 1ull << 30, "a sweep state file");
    try {
      const json state = json::parse(b.begin(), b.end());
      const std::string differs = settings_difference(settings, state.at("settings"));
      if (!differs.empty())
        throw UsageError("--resume: " + differs + " (" + (out / "sweep.json").string() +
                         "); resume with the sweep's flags, or choose another --out");
      for (const json& r : state.at("rows")) {
        const std::string label = r.at("label").get<std::string>();
        for (const SweepPoint& p : points)
          if (p.label() == label) rows.push_back(row_from_json(r, p));
      }
    } catch (const json::exception& e) {
      throw Error((out / "sweep.json").string() + ": not a sweep state file (" + e.what() + ")");
    } catch (const Error& e) {
      throw Error((out / "sweep.json").string() + ": not a sweep state file (" + e.what() + ")");
    }
    spdlog::info("continuing the sweep in {}: {} of {} runs already done", a.out, rows.size(), points.size());
  } else if (a.resume) {
    throw UsageError("--resume: " + a.out + " holds no sweep (no sweep.json)");
  }
  write_outputs(out, settings, rows, points.size(), stamp);  // an unwritable folder fails before training
  made.keep();

  const TrainConfig& first = configs.front();
  const MnistFiles files = load_mnist_dir(resolve_data_dir(first.data_dir), first.model.inputs);
  log_data_notes(files);
  const TrainSplit split = make_train_split(files.train, first.val, first.limit, first.seed);
  spdlog::info("sweep: {} runs of {} epochs, seed {}, on {} ({} train, {} validation, {} test images); results in {}",
               points.size(), first.epochs, first.seed, files.dataset_name, split.train.count, split.val.count,
               files.test.count, a.out);

  DeviceChoice device = first.device;
  const StopOnSignals stop;  // SIGINT/SIGTERM: abandon the current run, keep the finished ones
  auto stopped = [&](std::size_t i) {
    spdlog::info("sweep stopped by {} at run {} of {}; {} keeps the {} finished runs; continue with the same "
                 "command and --resume",
                 stop.signal() == SIGTERM ? "SIGTERM" : "SIGINT", i + 1, points.size(), a.out, rows.size());
    return 128 + (stop.signal() ? stop.signal() : SIGINT);
  };
  for (std::size_t i = 0; i < points.size(); ++i) {
    const std::string label = points[i].label();
    bool done = false;
    for (const SweepRow& r : rows) done = done || r.point.label() == label;
    if (done) continue;
    if (stop.requested()) return stopped(i);
    TrainConfig cfg = configs[i];
    cfg.device = device;
    std::unique_ptr<Backend> backend = choose_backend(cfg);
    if (device == DeviceChoice::automatic && backend->device() == "cpu") device = DeviceChoice::cpu;  // one notice
    const std::string prefix = fmt::format("[{}/{} {}]", i + 1, points.size(), label);
    SweepObserver observer(prefix, cfg.epochs);
    TrainOptions options;
    options.stop = stop.flag();
    const TrainResult r = train(cfg, TrainData{split.train, split.val, files.test}, *backend, observer, options);
    if (r.stopped) return stopped(i);
    SweepRow row = make_sweep_row(points[i], r);
    spdlog::info("{} test {:.2f}%, best val {:.2f}% (epoch {}), {:.1f} s", prefix, 100 * row.test_acc,
                 100 * row.best_val_acc, row.best_val_epoch, row.train_s);
    rows.push_back(std::move(row));
    // Grid order in the tables, whatever order the runs finished in (a resume fills gaps).
    std::vector<SweepRow> ordered;
    for (const SweepPoint& p : points)
      for (const SweepRow& x : rows)
        if (x.point.label() == p.label()) ordered.push_back(x);
    rows = std::move(ordered);
    write_outputs(out, settings, rows, points.size(), stamp);
  }
  spdlog::info("sweep done: {} runs; table in {}, report in {}", rows.size(), (out / "results.md").string(),
               (out / "report.html").string());
  std::fputs(sweep_markdown(rows).c_str(), stdout);
  return 0;
}

}  // namespace mnist_gpu
