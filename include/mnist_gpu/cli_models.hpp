// The saved-model commands: `eval` (test accuracy, per-class errors, confusion matrix of a saved
// model) and `predict` (classify PNG/JPEG images of digits).
#pragma once
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace mnist_gpu {

/// The `eval` flags as typed by the user, before validation.
struct EvalArgs {
  std::string model, data, device = "auto", batch = "1000", json;
  std::string predictions;  ///< --predictions FILE: one JSON line per test image (CPU forward pass)
};

/// The `predict` flags and image files as typed by the user.
struct PredictArgs {
  std::string model, show;
  bool json = false;
  double min_prob = 0.7;  ///< below this probability a prediction is flagged as low confidence
  std::vector<std::string> images;
};

/// Declares the `eval` flags on `app`, bound to `args`.
void add_eval_options(CLI::App& app, EvalArgs& args);

/// Declares the `predict` flags and the IMAGE... positionals on `app`, bound to `args`.
void add_predict_options(CLI::App& app, PredictArgs& args);

/// `eval`: loads the model into the --device backend, evaluates it on the test set, logs the
/// accuracy and a confusion table to stderr and writes JSON to --json. Returns the exit code;
/// throws UsageError / Error like the other commands.
int run_eval(const EvalArgs& args);

/// `predict`: one line per image on stdout (`FILE: DIGIT (PROB%)`, or a JSON object with
/// --json); an image that cannot be read or has no ink is logged and makes the exit code 1,
/// the others are still classified.
int run_predict(const PredictArgs& args);

}  // namespace mnist_gpu
