// The settings of a training run, one table: each setting's flag, help text and default as typed,
// how a typed value is checked and stored in a TrainConfig, how it is printed back as typed, and
// its key in a checkpoint's config JSON. The command-line parser, --resume's check, the checkpoint
// header and sweep --resume all read this table, so a setting cannot be missing from one of them.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

/// Which commands declare a setting's flag: `model` ones are shared by train, sweep, verify and
/// bench (add_model_options); `train` ones by train and sweep only.
enum class SettingScope { model, train };

/// What a setting is to a run.
enum class SettingRole {
  result,  ///< shapes the result: stored in a checkpoint, must agree on --resume
  runtime, ///< where or how fast the run goes (data, device, CUDA paths): not stored
  output,  ///< a file the run reads or writes (--metrics, --resume ...): not stored
  stored,  ///< no flag: fixed by the program (inputs, outputs, Adam's betas), stored only
};

struct Setting {
  std::string flag;  ///< "--lr"; empty for a stored-only setting
  std::string key;   ///< its key in the checkpoint's config JSON; empty: not stored
  std::string help;  ///< --help text
  /// The default as typed; nullopt when the default depends on other settings (--lr).
  std::optional<std::string> default_text;
  bool help_shows_default = true;  ///< --help prints [default]
  std::string example;             ///< a valid value other than the default, as typed (for tests)
  SettingScope scope = SettingScope::train;
  SettingRole role = SettingRole::result;
  bool is_switch = false;  ///< a flag without a value (--nesterov); typed "on" when given
  int stored_since = 1;    ///< the checkpoint format version that first stored it
  /// Checks `text` and stores it in the config; UsageError naming the flag and what it accepts.
  std::function<void(const std::string& text, TrainConfig&)> parse;
  /// Called instead of parse when the flag is not given and has no default_text (--lr).
  std::function<void(TrainConfig&)> unset;
  /// The value as a user would type it: "0.002", "512,256", "cosine", "on".
  std::function<std::string(const TrainConfig&)> show;
  std::function<nlohmann::json(const TrainConfig&)> to_json;
  /// Error naming the key when the JSON value has the wrong type or range.
  std::function<void(const nlohmann::json&, TrainConfig&)> from_json;
  /// "" when the setting acts in this configuration; otherwise the reason it does nothing.
  std::function<std::string(const TrainConfig&)> inert;
  bool refuse_inert = true;  ///< a given flag that does nothing: refused (true) or warned about
  /// The name a message uses: the flag, or the JSON key for a stored-only setting.
  std::string name() const { return flag.empty() ? key : flag; }
};

/// Every setting, in --help order.
const std::vector<Setting>& train_settings();

/// The setting with this flag (or, for a stored-only setting, key); nullptr when none.
const Setting* find_setting(const std::string& name);

/// The shortest decimal text that reads back as the same float: 0.002f -> "0.002", 1e-4f -> "1e-4".
std::string float_text(float v);

/// The stored settings of a config as a checkpoint header holds them (paths excluded).
nlohmann::json config_to_json(const TrainConfig& c);

/// Back from config_to_json's object; a key stored since a later format version than `version`
/// may be missing (its default is kept). Error naming the key for a missing or bad value.
TrainConfig config_from_json(const nlohmann::json& j, std::uint32_t version);

/// The value a stored JSON setting holds, printed as typed ("0.002"); the JSON text when it
/// cannot be read as that setting.
std::string show_json_value(const Setting& s, const nlohmann::json& value);

/// The result settings of `c` as train flags, as typed, leaving out those that do nothing in `c`
/// (--momentum with adam, --lr-step with cosine ...) and switches that are off:
/// "--batch 128 --hidden 512,256 ... --seed 1". `mnist_gpu train` with them trains the same run.
std::string settings_as_flags(const TrainConfig& c);

/// With --resume: the result settings whose flags were given (`given`) must agree with the
/// checkpoint's. Throws UsageError naming the first that differs, both values as typed:
/// "--resume: --lr 0.003 differs from the checkpoint's 0.002 (CK); ...". `--epochs` is left to
/// the caller (a run may be continued for more epochs).
void check_resume_settings(const TrainConfig& flags, const TrainConfig& ck, const std::set<std::string>& given,
                           const std::string& path);

/// The given flags that do nothing in `c` (momentum without --optimizer momentum, --lr-step
/// without --schedule step, --data-path with --device cpu ...): throws UsageError for the first
/// one the table refuses, and returns one warning line for each of the others.
std::vector<std::string> check_inert_settings(const TrainConfig& c, const std::set<std::string>& given);

}  // namespace mnist_gpu
