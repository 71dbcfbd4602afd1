// Flag definitions and strict parsing of their values for the mnist_gpu command line.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu {
namespace {

[[noreturn]] void refuse(const std::string& flag, const std::string& expected, const std::string& got) {
  throw UsageError(flag + ": expected " + expected + ", got '" + got + "'");
}

// A whole-string decimal integer in [lo, hi].
long long parse_int(const std::string& flag, const std::string& text, long long lo, long long hi,
                    const std::string& expected) {
  if (text.empty() || text.find_first_not_of("+-0123456789") != std::string::npos) refuse(flag, expected, text);
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size() || v < lo || v > hi) refuse(flag, expected, text);
  return v;
}

// A whole-string finite float in [lo, hi] (lo exclusive when lo_open).
float parse_float(const std::string& flag, const std::string& text, double lo, bool lo_open,
                  double hi, bool hi_open, const std::string& expected) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  const bool whole = !text.empty() && end == text.c_str() + text.size() && !std::isspace(static_cast<unsigned char>(text[0]));
  if (!whole || errno == ERANGE || !std::isfinite(v) || v < lo || (lo_open && v == lo) || v > hi ||
      (hi_open && v == hi))
    refuse(flag, expected, text);
  // The value is used as a float: one that rounds onto an open bound (1e-50 to 0, 0.999999999 to
  // 1) is refused, and so is a positive one below the smallest normal float (1e-45), whose
  // products in the updates round to 0.
  const float f = static_cast<float>(v);
  const auto refuse_rounded = [&](const std::string& why) {
    throw UsageError(flag + ": expected " + expected + ", got '" + text + "', which " + why);
  };
  if ((lo_open && f == static_cast<float>(lo)) || (hi_open && f == static_cast<float>(hi))) {
    char rounded[32];
    std::snprintf(rounded, sizeof rounded, "%g", static_cast<double>(f));
    refuse_rounded("rounds to " + std::string(rounded) + " in single precision (float32)");
  }
  if (lo_open && lo == 0.0 && f < std::numeric_limits<float>::min())
    refuse_rounded("is below the smallest normal single-precision (float32) number, 1.17549e-38");
  return f;
}

template <class E>
E parse_choice(const std::string& flag, const std::string& text,
               std::initializer_list<std::pair<const char*, E>> choices) {
  std::string names;
  for (const auto& [name, value] : choices) {
    if (text == name) return value;
    names += names.empty() ? "" : " | ";
    names += name;
  }
  refuse(flag, "one of " + names, text);
}

constexpr int kMaxBatch = 65536;

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
// neighbours each cost 1 ("trian" is 1 from "train").
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// The name in `names` nearest to `word` when it is near enough to be a slip (at most 2 edits,
// and fewer than a third of the word); "" otherwise.
std::string nearest(const std::string& word, const std::vector<std::string>& names) {
  std::string best;
  std::size_t best_d = 3;
  for (const std::string& n : names) {
    const std::size_t d = edit_distance(word, n);
    if (d < best_d && 3 * d < word.size()) best = n, best_d = d;
  }
  return best;
}

}  // namespace

void refuse_flag_values(std::initializer_list<std::pair<const char*, const std::string*>> values) {
  for (const auto& [flag, value] : values)
    if (value->rfind("--", 0) == 0)
      throw UsageError(std::string(flag) + ": expected a value, got the flag '" + *value + "'");
}

std::string suggest_near_name(CLI::App& app, const std::vector<std::string>& args) {
  if (args.empty()) return "";
  std::vector<std::string> commands;
  CLI::App* command = nullptr;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    commands.push_back(sub->get_name());
    if (sub->get_name() == args[0]) command = sub;
  }
  if (!command) {
    if (args[0].rfind('-', 0) == 0) return "";
    const std::string near = nearest(args[0], commands);
    return near.empty() ? "" : "'" + args[0] + "' is not a command; did you mean '" + near + "'?";
  }
  std::vector<std::string> flags;
  for (const CLI::Option* o : command->get_options())
    for (const std::string& name : o->get_lnames()) flags.push_back("--" + name);
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string flag = args[i].substr(0, args[i].find('='));
    if (flag.rfind("--", 0) != 0 || flag == "--" || command->get_option_no_throw(flag)) continue;
    const std::string near = nearest(flag, flags);
    if (!near.empty()) return "'" + flag + "' is not a " + args[0] + " flag; did you mean '" + near + "'?";
  }
  return "";
}

std::vector<int> parse_hidden(const std::string& text) {
  std::vector<int> widths;
  if (text.empty()) return widths;
  const std::string expected =
      "a comma-separated list of at most " + std::to_string(kMaxHiddenLayers) + " layer widths in 1.." +
      std::to_string(kMaxLayerWidth) + " such as 512,256 (or \"\" for no hidden layer)";
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) refuse("--hidden", expected + "; width " + std::to_string(widths.size() + 1) + " is empty", text);
    if (item.find_first_not_of("0123456789") != std::string::npos)
      refuse("--hidden", expected + "; '" + item + "' is not a positive integer", text);
    const long long w = parse_int("--hidden", item, 1, kMaxLayerWidth, expected);
    widths.push_back(static_cast<int>(w));
    if (widths.size() > static_cast<std::size_t>(kMaxHiddenLayers))
      refuse("--hidden",
             expected + "; this list has " + std::to_string(std::count(text.begin(), text.end(), ',') + 1) +
                 " (a model file holds at most " + std::to_string(kMaxHiddenLayers) + " hidden layers)",
             text);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return widths;
}

void add_model_options(CLI::App& app, TrainArgs& a) {
  app.add_option("--data", a.data, "MNIST-format directory (default: $MNIST_GPU_DATA, else the bundled data/mnist)");
  app.add_option("--batch", a.batch, "mini-batch size, 1.." + std::to_string(kMaxBatch))->capture_default_str();
  app.add_option("--hidden", a.hidden, "hidden layer widths, e.g. 512,256 (\"\" for softmax regression)")->capture_default_str();
  app.add_option("--activation", a.activation, activation_names(" | "))->capture_default_str();
  app.add_option("--loss", a.loss, "xent (softmax cross-entropy) | l2 (squared error to one-hot)")->capture_default_str();
  app.add_option("--optimizer", a.optimizer, "sgd | momentum | adam")->capture_default_str();
  app.add_option("--lr", a.lr, "learning rate > 0 (default: sgd 0.1, momentum 0.05, adam 0.002)");
  app.add_option("--momentum", a.momentum, "momentum in [0, 1) (optimizer momentum)")->capture_default_str();
  app.add_flag("--nesterov", a.nesterov, "Nesterov momentum (optimizer momentum)");
  app.add_option("--l2", a.l2, "L2 regularisation on the weights, >= 0")->capture_default_str();
  app.add_option("--dropout", a.dropout, "probability of dropping each hidden unit while training, in [0, 1)")
      ->capture_default_str();
  app.add_option("--seed", a.seed, "seed of the initialisation, split and shuffles")->capture_default_str();
}

void add_train_options(CLI::App& app, TrainArgs& a) {
  add_model_options(app, a);
  app.add_option("--device", a.device, "auto | cpu | cuda (auto: a usable GPU, else the CPU)")->capture_default_str();
  app.add_option("--data-path", a.data_path,
                 "GPU: streamed (batches gathered on the host, copied from pinned memory while the previous one "
                 "trains) | resident (the training set copied to the GPU once, batches gathered there)")
      ->capture_default_str();
  app.add_option("--cuda-graph", a.cuda_graph,
                 "GPU: on (each full-batch step replayed from one captured CUDA graph) | off (kernel by kernel)")
      ->capture_default_str();
  app.add_option("--schedule", a.schedule,
                 "learning-rate schedule: constant | cosine (to 0 over the epochs) | step (x --lr-factor every --lr-step epochs)")
      ->capture_default_str();
  app.add_option("--lr-step", a.lr_step, "step schedule: epochs between cuts, >= 1")->capture_default_str();
  app.add_option("--lr-factor", a.lr_factor, "rate multiplier of a step or plateau cut, in (0, 1)")->capture_default_str();
  app.add_option("--lr-patience", a.lr_patience,
                 "cut the rate by --lr-factor after this many epochs without a better validation loss (0: off)")
      ->capture_default_str();
  app.add_option("--min-lr", a.min_lr, "plateau cuts never take the rate below this, >= 0")->capture_default_str();
  app.add_option("--patience", a.patience,
                 "early stopping: stop after this many epochs without a better validation loss and test the best "
                 "epoch's weights (0: off)")
      ->capture_default_str();
  app.add_option("--min-delta", a.min_delta,
                 "relative improvement that counts as better: loss < best * (1 - min-delta), in [0, 1)")
      ->capture_default_str();
  app.add_option("--epochs", a.epochs, "epochs, >= 1")->capture_default_str();
  app.add_option("--val", a.val, "training images held out for validation, 0..59999")->capture_default_str();
  app.add_option("--limit", a.limit,
                 "train on this many images of the training split only, for quick searches (0: all)")
      ->capture_default_str();
  app.add_option("--target", a.target,
                 "test accuracy (e.g. 0.98) whose time to reach is reported; tests after every epoch (0: off)")
      ->capture_default_str();
  app.add_option("--metrics", a.metrics, "write JSON lines (one per epoch, then a summary) to this file (- for stdout)");
  app.add_option("--checkpoint", a.checkpoint,
                 "write a checkpoint here after every epoch and on SIGINT/SIGTERM (atomically)");
  app.add_option("--resume", a.resume,
                 "continue the run saved in this checkpoint (its settings are used; flags given must agree)");
  app.add_option("--save", a.save, "write the trained model to this file (atomically; for eval and predict)");
  app.add_option("--report", a.report,
                 "write DIR/report.html (curves, confusion heat map, misclassified digits) and its images to DIR");
}

TrainConfig to_train_config(const TrainArgs& a) {
  // CLI11 takes the next word as a flag's value even when it is another flag ("--batch --hidden
  // 10"): refuse that here, naming the flag whose value is missing.
  const std::pair<const char*, const std::string*> values[] = {
      {"--data", &a.data},     {"--device", &a.device},     {"--batch", &a.batch},       {"--hidden", &a.hidden},
      {"--activation", &a.activation}, {"--loss", &a.loss}, {"--optimizer", &a.optimizer},
      {"--momentum", &a.momentum}, {"--l2", &a.l2},          {"--schedule", &a.schedule}, {"--epochs", &a.epochs},
      {"--val", &a.val},       {"--seed", &a.seed},         {"--metrics", &a.metrics},
      {"--checkpoint", &a.checkpoint}, {"--resume", &a.resume},   {"--save", &a.save},
      {"--dropout", &a.dropout}, {"--lr-step", &a.lr_step}, {"--lr-factor", &a.lr_factor},
      {"--lr-patience", &a.lr_patience}, {"--min-lr", &a.min_lr}, {"--patience", &a.patience},
      {"--min-delta", &a.min_delta}, {"--limit", &a.limit}, {"--target", &a.target},   {"--lr", a.lr ? &*a.lr : nullptr},
      {"--data-path", &a.data_path}, {"--cuda-graph", &a.cuda_graph}};
  for (const auto& [flag, value] : values)
    if (value && value->rfind("--", 0) == 0)
      throw UsageError(std::string(flag) + ": expected a value, got the flag '" + *value + "'");
  TrainConfig c;
  c.data_dir = a.data;
  c.device = parse_choice<DeviceChoice>("--device", a.device,
                                        {{"auto", DeviceChoice::automatic}, {"cpu", DeviceChoice::cpu},
                                         {"cuda", DeviceChoice::cuda}});
  c.cuda.data = parse_choice<DataPath>("--data-path", a.data_path,
                                      {{"streamed", DataPath::streamed}, {"resident", DataPath::resident}});
  c.cuda.graph = parse_choice<bool>("--cuda-graph", a.cuda_graph, {{"on", true}, {"off", false}});
  c.batch = static_cast<int>(parse_int("--batch", a.batch, 1, kMaxBatch,
                                       "a whole number of images in 1.." + std::to_string(kMaxBatch)));
  c.model.hidden = parse_hidden(a.hidden);
  const ActivationInfo* act = find_activation(a.activation);
  if (!act) refuse("--activation", "one of " + activation_names(" | "), a.activation);
  c.model.activation = act->value;
  c.model.loss = parse_choice<Loss>("--loss", a.loss, {{"xent", Loss::xent}, {"l2", Loss::l2}});
  c.optimizer.kind = parse_choice<OptimizerKind>(
      "--optimizer", a.optimizer,
      {{"sgd", OptimizerKind::sgd}, {"momentum", OptimizerKind::momentum}, {"adam", OptimizerKind::adam}});
  c.optimizer.lr = !a.lr ? default_lr(c.optimizer.kind)
                        : parse_float("--lr", *a.lr, 0.0, true, 1e6, false, "a number > 0 and at most 1e6");
  c.optimizer.momentum = parse_float("--momentum", a.momentum, 0.0, false, 1.0, true,
                                     "a finite number in [0, 1)");
  c.optimizer.nesterov = a.nesterov;
  c.optimizer.l2 = parse_float("--l2", a.l2, 0.0, false, 1e6, false, "a number in [0, 1e6]");
  c.optimizer.dropout = parse_float("--dropout", a.dropout, 0.0, false, 1.0, true, "a probability in [0, 1)");
  c.schedule = parse_choice<Schedule>(
      "--schedule", a.schedule,
      {{"constant", Schedule::constant}, {"cosine", Schedule::cosine}, {"step", Schedule::step}});
  c.lr_step = static_cast<int>(parse_int("--lr-step", a.lr_step, 1, 100000, "a whole number of epochs in 1..100000"));
  c.lr_factor = parse_float("--lr-factor", a.lr_factor, 0.0, true, 1.0, true, "a factor in (0, 1)");
  c.lr_patience = static_cast<int>(
      parse_int("--lr-patience", a.lr_patience, 0, 100000, "a whole number of epochs in 0..100000 (0: off)"));
  c.min_lr = parse_float("--min-lr", a.min_lr, 0.0, false, 1e6, false, "a number in [0, 1e6]");
  c.patience = static_cast<int>(
      parse_int("--patience", a.patience, 0, 100000, "a whole number of epochs in 0..100000 (0: off)"));
  c.min_delta = parse_float("--min-delta", a.min_delta, 0.0, false, 1.0, true, "a relative threshold in [0, 1)");
  c.epochs = static_cast<int>(parse_int("--epochs", a.epochs, 1, 100000, "a whole number of epochs in 1..100000"));
  c.val = static_cast<int>(parse_int("--val", a.val, 0, 59999, "a whole number of images in 0..59999"));
  c.target = parse_float("--target", a.target, 0.0, false, 1.0, false, "a test accuracy in [0, 1] such as 0.98");
  c.limit = static_cast<int>(parse_int("--limit", a.limit, 0, 1 << 30, "a whole number of images (0: all)"));
  if (a.seed.empty() || a.seed.find_first_not_of("0123456789") != std::string::npos)
    refuse("--seed", "an integer in 0..18446744073709551615", a.seed);
  errno = 0;
  const unsigned long long seed = std::strtoull(a.seed.c_str(), nullptr, 10);
  if (errno == ERANGE) refuse("--seed", "an integer in 0..18446744073709551615", a.seed);
  c.seed = seed;
  c.metrics_path = a.metrics;
  c.checkpoint_path = a.checkpoint;
  c.save_path = a.save;
  if (a.report.rfind("--", 0) == 0) throw UsageError("--report: expected a value, got the flag '" + a.report + "'");
  c.report_path = a.report;
  c.resume_path = a.resume;
  if (c.patience > 0 && c.val == 0)
    throw UsageError("--patience: early stopping watches the validation loss; it needs --val > 0");
  if (c.lr_patience > 0 && c.val == 0)
    throw UsageError("--lr-patience: plateau cuts watch the validation loss; they need --val > 0");
  if (c.optimizer.dropout > 0 && c.model.hidden.empty())
    throw UsageError("--dropout: drops hidden units, and --hidden is empty (no hidden layer)");
  if (a.nesterov && c.optimizer.kind != OptimizerKind::momentum)
    throw UsageError("--nesterov: applies to --optimizer momentum only, not '" + a.optimizer + "'");
  return c;
}

TrainConfig parse_train_flags(const std::vector<std::string>& flags) {
  CLI::App app{"train"};
  TrainArgs args;
  add_train_options(app, args);
  std::vector<std::string> reversed(flags.rbegin(), flags.rend());  // CLI11 takes them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }
  return to_train_config(args);
}

}  // namespace mnist_gpu
