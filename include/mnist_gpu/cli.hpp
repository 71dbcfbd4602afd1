// The command line: flag definitions, strict value parsing (each refusal names the flag and what
// it accepts), and the entry point that maps errors to exit codes (0 ok, 1 runtime, 2 usage).
#pragma once
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mnist_gpu/config.hpp"

namespace CLI {
class App;
}

namespace mnist_gpu {

class Backend;
struct MnistFiles;

/// The `train` flags as typed by the user, before validation.
struct TrainArgs {
  std::string data, device = "auto", batch = "128", hidden = "512,256", activation = "relu",
                    loss = "xent", optimizer = "adam", momentum = "0.9", l2 = "0",
                    schedule = "cosine", epochs = "10", val = "5000", seed = "1", metrics;
  std::optional<std::string> lr;  ///< absent: the optimizer's default; given empty: refused
  std::string checkpoint, resume;
  std::string save;  ///< --save FILE: the trained model
  std::string dropout = "0", lr_step = "5", lr_factor = "0.5", lr_patience = "0", min_lr = "0", patience = "0",
              min_delta = "1e-4", limit = "0", target = "0";
  std::string report;  ///< --report DIR: report.html and its images
  std::string data_path = "streamed", cuda_graph = "on";  ///< the CUDA backend's CudaConfig
  bool nesterov = false;
};

/// Declares the model and optimizer flags (shared by `train` and `verify`) on `app`.
void add_model_options(CLI::App& app, TrainArgs& args);

/// Declares the `train` flags on `app`, bound to `args`.
void add_train_options(CLI::App& app, TrainArgs& args);

/// Validates and converts; throws UsageError naming the flag and what it accepts.
TrainConfig to_train_config(const TrainArgs& args);

/// Parses `train` flags (no program or command name) into a config; throws UsageError for any
/// unknown flag or bad value.
TrainConfig parse_train_flags(const std::vector<std::string>& flags);

/// CLI11 takes the next word as a flag's value even when it is another flag ("--model --json"):
/// throws UsageError naming the flag whose value is such a word.
void refuse_flag_values(std::initializer_list<std::pair<const char*, const std::string*>> values);

/// "512,256" -> {512, 256}; "" -> {} (softmax regression). Throws UsageError (--hidden ...).
std::vector<int> parse_hidden(const std::string& text);

/// make_backend (backend_factory.hpp), logged: the GPU chosen, or `auto`'s fallback to the CPU as
/// a one-line notice naming `work` ("training on the CPU"); `cuda` without a usable GPU throws
/// Error. (cli_log.cpp)
std::unique_ptr<Backend> choose_backend(const TrainConfig& cfg, const char* work = "training");

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
