// Recipes: named sets of train settings that reproduce a published result, one small JSON file
// each in the recipes folder, with the source (citation, what it reported) and what mnist_gpu
// measured with it. `train --recipe NAME` applies one as if its flags were typed before the others
// (so a flag given on the command line wins); `mnist_gpu recipes` prints the table.
//
// File format (recipes/NAME.json):
//   {"name": "NAME",                       the file's stem
//    "settings": {"hidden": "512,512", "dropout": 0.2, "lr-patience": 3, "nesterov": true, ...},
//                                          a train flag without its dashes, or a setting's
//                                          checkpoint key; the value as typed (a string or a
//                                          number; true/false for a switch); result settings only
//    "source": {"citation": "...", "reported": "98.40% test accuracy"},
//    "measured": [{"machine", "commit", "device", "train_seconds", "test_acc", "date"}, ...],
//    "needs_gpu": false,
//    "notes": "..."}                       optional
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace mnist_gpu {

/// One measured run of a recipe.
struct RecipeMeasurement {
  std::string machine;        ///< "2-core CPU (cpp-kernels VM)", "H200"
  std::string commit;         ///< the mnist_gpu commit measured
  std::string device;         ///< "cpu" or "cuda"
  double train_seconds = 0;   ///< training time as the run logged it
  double test_acc = 0;        ///< test accuracy in [0, 1]
  std::string date;           ///< YYYY-MM-DD
};

struct Recipe {
  std::string name;
  std::filesystem::path file;
  /// (flag, value as typed) in key order: ("--hidden", "512,512"), ("--nesterov", "on").
  std::vector<std::pair<std::string, std::string>> settings;
  std::string citation, reported;
  std::vector<RecipeMeasurement> measured;
  bool needs_gpu = false;
  std::string notes;
};

/// The recipes folder: $MNIST_GPU_RECIPES when set, else the source tree's recipes/ (a path
/// compiled in: MNIST_GPU_RECIPES_DIR), which an installed binary can still read.
std::filesystem::path recipes_dir();

/// Reads and checks one recipe file. Error naming the file (and the key) when it cannot be read,
/// is not JSON, lacks a field, names a setting that is not a train result setting, or holds a
/// value that setting refuses.
Recipe read_recipe(const std::filesystem::path& file);

/// Every recipes/*.json in `dir`, sorted by name; Error naming the first bad file.
std::vector<Recipe> read_recipes(const std::filesystem::path& dir);

/// The recipe `name` from `dir`: UsageError listing the known names when there is none.
Recipe find_recipe(const std::string& name, const std::filesystem::path& dir);

/// What `train --recipe` warns when a recipe that needs a GPU (needs_gpu) trains on the CPU
/// (`device` "cpu"): how long its recorded CPU runs trained, else that none was run to the end on
/// a CPU, and how to keep or cap a long run, short of what the run does already (`has_checkpoint`:
/// it writes a checkpoint; `time_limit_s` > 0: it has a --time-limit). "" when the recipe does not
/// need a GPU or the device is not the CPU.
std::string recipe_cpu_warning(const Recipe& r, const std::string& device, bool has_checkpoint,
                               double time_limit_s = 0);

/// The table `mnist_gpu recipes` prints: name, source, reported, measured (accuracy and time, or
/// "owed (GPU)" / "not measured"), command; the source cut to 60 characters. `markdown`: as a
/// Markdown table (for the README), the source whole.
std::string recipes_table(const std::vector<Recipe>& recipes, bool markdown);

}  // namespace mnist_gpu
