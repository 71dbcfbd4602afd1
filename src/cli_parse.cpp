// The train flags declared from the settings table (settings.hpp) and converted to a TrainConfig;
// the near-name hints for misspelt commands and flags.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/recipe.hpp"
#include "mnist_gpu/settings.hpp"

namespace mnist_gpu {
namespace {

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

TrainArgs::TrainArgs() {
  for (const Setting& s : train_settings())
    if (!s.flag.empty()) text[s.flag] = s.default_text.value_or("");
}

void TrainArgs::set(const std::string& flag, const std::string& value) {
  text.at(flag) = value;
  given.insert(flag);
}

namespace {

// Declares the flags of one scope of the settings table on `app`, bound to `a`.
void add_setting_options(CLI::App& app, TrainArgs& a, SettingScope scope) {
  for (const Setting& s : train_settings()) {
    if (s.flag.empty() || s.scope != scope) continue;
    const std::string flag = s.flag;
    if (s.is_switch) {
      app.add_flag_callback(flag, [&a, flag] { a.set(flag, "on"); }, s.help);
      continue;
    }
    CLI::Option* o = app.add_option(flag, a.text.at(flag), s.help);
    o->each([&a, flag](const std::string&) { a.given.insert(flag); });
    if (s.default_text && s.help_shows_default) o->capture_default_str();
  }
}

}  // namespace

void add_model_options(CLI::App& app, TrainArgs& a) { add_setting_options(app, a, SettingScope::model); }

void add_train_options(CLI::App& app, TrainArgs& a) {
  add_model_options(app, a);
  add_setting_options(app, a, SettingScope::train);
}

TrainArgs with_recipe(const TrainArgs& args) {
  TrainArgs a = args;
  if (!a.given.count("--recipe")) return a;
  const Recipe r = find_recipe(a.at("--recipe"), recipes_dir());
  for (const auto& [flag, value] : r.settings)
    if (!a.given.count(flag)) a.set(flag, value);  // a flag typed on the command line wins
  return a;
}

TrainConfig to_train_config(const TrainArgs& args, std::vector<std::string>* warnings) {
  const TrainArgs a = with_recipe(args);
  // CLI11 takes the next word as a flag's value even when it is another flag ("--batch --hidden
  // 10"): refuse that here, naming the flag whose value is missing.
  for (const auto& [flag, value] : a.text)
    if (value.rfind("--", 0) == 0) throw UsageError(flag + ": expected a value, got the flag '" + value + "'");
  TrainConfig c;
  for (const Setting& s : train_settings()) {
    if (s.flag.empty()) continue;
    if (!a.given.count(s.flag) && !s.default_text) {
      if (s.unset) s.unset(c);  // e.g. --lr: the optimizer's default rate (the optimizer comes first)
      continue;
    }
    s.parse(a.at(s.flag), c);
  }
  // A resumed run's flags are checked once merged with its checkpoint's settings (run_train).
  if (!a.given.count("--resume")) {
    std::vector<std::string> w = check_inert_settings(c, a.given);
    if (warnings) warnings->insert(warnings->end(), w.begin(), w.end());
  }
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
