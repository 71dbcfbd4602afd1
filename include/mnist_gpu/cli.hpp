// The command line: flag definitions, strict value parsing (each refusal names the flag and what
// it accepts), and the entry point that maps errors to exit codes (0 ok, 1 runtime, 2 usage).
#pragma once
#include <chrono>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/flag_values.hpp"

namespace CLI {
class App;
}

namespace mnist_gpu {

class Backend;
struct MnistFiles;

/// The `train` flags as typed by the user, before validation: one text per flag of the settings
/// table (settings.hpp), its default until the flag is given.
struct TrainArgs {
  TrainArgs();
  std::map<std::string, std::string> text;  ///< flag -> value as typed (the default when not given)
  std::set<std::string> given;              ///< the flags given (on the command line, or by set())
  /// Gives `flag` the value `value`, as if typed.
  void set(const std::string& flag, const std::string& value);
  /// The text of a flag of the settings table (std::out_of_range for another name).
  const std::string& at(const std::string& flag) const { return text.at(flag); }
};

/// Declares the model and optimizer flags (shared by `train` and `verify`) on `app`.
void add_model_options(CLI::App& app, TrainArgs& args);

/// Declares the `train` flags on `app`, bound to `args`.
void add_train_options(CLI::App& app, TrainArgs& args);

/// `args` with the recipe of --recipe (recipe.hpp), when given, applied: each of its settings whose
/// flag was not given is set (and counts as given); the flags given keep their values. UsageError
/// for an unknown recipe (listing the known ones), Error naming the file and key for a bad one.
TrainArgs with_recipe(const TrainArgs& args);

/// Validates and converts (the recipe of --recipe applied first, with_recipe); throws UsageError
/// naming the flag and what it accepts. Unless --resume
/// is given (its checkpoint's settings are checked after they are merged), given flags that do
/// nothing in the result (check_inert_settings) are refused, or warned about in `warnings`.
TrainConfig to_train_config(const TrainArgs& args, std::vector<std::string>* warnings = nullptr);

/// Parses `train` flags (no program or command name) into a config; throws UsageError for any
/// unknown flag or bad value.
TrainConfig parse_train_flags(const std::vector<std::string>& flags);

/// CLI11 takes the next word as a flag's value even when it is another flag ("--model --json"):
/// throws UsageError naming the flag whose value is such a word.
void refuse_flag_values(std::initializer_list<std::pair<const char*, const std::string*>> values);

/// make_backend (backend_factory.hpp), logged: the GPU chosen, or `auto`'s fallback to the CPU as
/// a one-line notice naming `work` ("training on the CPU"); `cuda` without a usable GPU throws
/// Error. (cli_log.cpp)
std::unique_ptr<Backend> choose_backend(const TrainConfig& cfg, const char* work = "training");

/// An evaluation's progress line on stderr, drawn only when stderr is a terminal and the
/// evaluation has run for half a second (a short one would flicker), at most ten times a second;
/// cleared at the end. Call it as a ProgressFn (rows done, rows total). (cli_log.cpp)
class EvalProgressLine {
 public:
  explicit EvalProgressLine(std::string what);
  ~EvalProgressLine();
  EvalProgressLine(const EvalProgressLine&) = delete;
  EvalProgressLine& operator=(const EvalProgressLine&) = delete;
  void operator()(long long done, long long total);
  void clear();

 private:
  std::string what_;
  bool tty_, drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_{};
};

/// Logs what loading a data directory noted: NAME.gz read where NAME is there too, and the
/// warnings (unknown digests).
void log_data_notes(const MnistFiles& files);

/// The `bench` flags: the model flags plus the measurement's own.
struct BenchArgs {
  TrainArgs model;
  std::string device = "auto", batches = "32,64,128,256,512,1024,4096", samples = "32768", json;
  std::string data_path = "both", cuda_graph = "both";  ///< GPU rows: each value, or both
};
void add_bench_options(CLI::App& app, BenchArgs& args);
/// Runs `bench`: a table on stdout, JSON to --json; returns the exit code.
int run_bench_command(const BenchArgs& args);

/// For a command line `app` refused (args: the words after the program's name): a hint naming
/// the command or flag nearest to a misspelt one ("'trian' is not a command; did you mean
/// 'train'?"), or "" when none is near.
std::string suggest_near_name(CLI::App& app, const std::vector<std::string>& args);

/// The whole program: returns the process exit code. Logs to stderr.
int run_cli(int argc, const char* const* argv);

}  // namespace mnist_gpu
