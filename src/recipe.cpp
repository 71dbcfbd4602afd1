// Recipes (recipe.hpp): reading and checking recipe files against the settings table, finding one
// by name, and the recipes table.
#include "mnist_gpu/recipe.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <system_error>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/settings.hpp"

#ifndef MNIST_GPU_RECIPES_DIR
#define MNIST_GPU_RECIPES_DIR MNIST_GPU_SOURCE_DIR "/recipes"
#endif

namespace mnist_gpu {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::uint64_t kMaxRecipeBytes = 1 << 20;  // a recipe is a few hundred bytes

// The train result setting a recipe key names: "lr-patience" (the flag without its dashes) or
// "lr_patience" (its checkpoint key); nullptr when none.
const Setting* recipe_setting(const std::string& key) {
  for (const Setting& s : train_settings()) {
    if (s.flag.empty() || s.role != SettingRole::result) continue;
    if (s.flag == "--" + key || s.key == key) return &s;
  }
  return nullptr;
}

// A recipe value as typed: strings as they are, numbers as JSON writes them (0.001, 20), and
// true/false for a switch ("on"/"off").
std::string typed_value(const Setting& s, const json& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) {
    if (!s.is_switch) throw Error(where + ": expected a value as typed (a string or a number), found " + v.dump());
    return v.get<bool>() ? "on" : "off";
  }
  if (v.is_number()) return v.dump();
  throw Error(where + ": expected a value as typed (a string or a number), found " + v.dump());
}

std::string string_field(const json& j, const char* key, const std::string& file) {
  if (!j.contains(key) || !j.at(key).is_string())
    throw Error(file + ": \"" + key + "\": expected a string" + (j.contains(key) ? ", found " + j.at(key).dump() : ""));
  return j.at(key).get<std::string>();
}

double number_field(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j.at(key).is_number())
    throw Error(where + ": \"" + key + "\": expected a number" + (j.contains(key) ? ", found " + j.at(key).dump() : ""));
  return j.at(key).get<double>();
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// What mnist_gpu measured: "98.21% in 45 s (2-core CPU ...)" per row, then "owed (GPU)" for a
// recipe that needs the GPU and has no GPU row; "not measured" when nothing is.
std::string measured_text(const Recipe& r) {
  std::string out;
  bool gpu_row = false;
  for (const RecipeMeasurement& m : r.measured) {
    out += (out.empty() ? "" : "; ") + fixed(100 * m.test_acc, 2) + "% in " + fixed(m.train_seconds, 0) + " s (" +
           m.machine + ")";
    gpu_row = gpu_row || m.device == "cuda";
  }
  if (r.needs_gpu && !gpu_row) out += (out.empty() ? "" : "; ") + std::string("owed (GPU)");
  return out.empty() ? "not measured" : out;
}

}  // namespace

fs::path recipes_dir() {
  if (const char* env = std::getenv("MNIST_GPU_RECIPES"); env && *env) return fs::path(env);
  return fs::path(MNIST_GPU_RECIPES_DIR);
}

Recipe read_recipe(const fs::path& file) {
  const std::string f = file.string();
  const std::vector<std::uint8_t> bytes = read_whole_file(file, kMaxRecipeBytes, "an mnist_gpu recipe (JSON)");
  json j;
  try {
    j = json::parse(bytes.begin(), bytes.end());
  } catch (const json::parse_error& e) {
    throw Error(f + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(f + ": expected a JSON object, found " + j.dump().substr(0, 60));
  static const char* const known[] = {"name", "settings", "source", "measured", "needs_gpu", "notes"};
  for (const auto& [key, value] : j.items())
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) == std::end(known))
      throw Error(f + ": unknown field \"" + key + "\" (a recipe has name, settings, source, measured, needs_gpu, notes)");
  Recipe r;
  r.file = file;
  r.name = string_field(j, "name", f);
  if (r.name != file.stem().string())
    throw Error(f + ": \"name\" is '" + r.name + "'; it must be the file's name without .json ('" + file.stem().string() + "')");
  if (!j.contains("settings") || !j.at("settings").is_object())
    throw Error(f + ": \"settings\": expected an object of train settings");
  TrainConfig probe;  // each value is checked by its setting's own parser
  for (const auto& [key, value] : j.at("settings").items()) {
    const std::string where = f + ": setting \"" + key + "\"";
    const Setting* s = recipe_setting(key);
    if (!s)
      throw Error(where + ": not a train setting that shapes the result (use a flag's name without its dashes, "
                          "such as \"lr-patience\", or its checkpoint key, such as \"lr_patience\")");
    for (const auto& [flag, v] : r.settings)
      if (flag == s->flag) throw Error(where + ": " + s->flag + " is given twice");
    const std::string text = typed_value(*s, value, where);
    try {
      s->parse(text, probe);
    } catch (const std::exception& e) {
      throw Error(where + ": " + e.what());
    }
    r.settings.emplace_back(s->flag, text);
  }
  if (!j.contains("source") || !j.at("source").is_object())
    throw Error(f + ": \"source\": expected {\"citation\": ..., \"reported\": ...}");
  r.citation = string_field(j.at("source"), "citation", f + ": source");
  r.reported = string_field(j.at("source"), "reported", f + ": source");
  if (j.contains("measured")) {
    if (!j.at("measured").is_array()) throw Error(f + ": \"measured\": expected an array");
    for (const json& m : j.at("measured")) {
      const std::string where = f + ": measured";
      if (!m.is_object()) throw Error(where + ": expected an object, found " + m.dump());
      RecipeMeasurement x;
      x.machine = string_field(m, "machine", where);
      x.commit = string_field(m, "commit", where);
      x.device = string_field(m, "device", where);
      x.date = string_field(m, "date", where);
      x.train_seconds = number_field(m, "train_seconds", where);
      x.test_acc = number_field(m, "test_acc", where);
      if (x.device != "cpu" && x.device != "cuda") throw Error(where + ": \"device\": expected cpu or cuda, found " + x.device);
      if (!(x.test_acc >= 0 && x.test_acc <= 1)) throw Error(where + ": \"test_acc\": expected a fraction in [0, 1]");
      r.measured.push_back(x);
    }
  }
  if (j.contains("needs_gpu")) {
    if (!j.at("needs_gpu").is_boolean()) throw Error(f + ": \"needs_gpu\": expected true or false");
    r.needs_gpu = j.at("needs_gpu").get<bool>();
  }
  if (j.contains("notes")) r.notes = string_field(j, "notes", f);
  return r;
}

std::vector<Recipe> read_recipes(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(dir.string() + ": no recipes folder there (set $MNIST_GPU_RECIPES to the folder of recipe files)");
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".json") files.push_back(e.path());
  if (ec) throw Error(dir.string() + ": cannot list the recipes folder (" + ec.message() + ")");
  std::sort(files.begin(), files.end());
  std::vector<Recipe> out;
  for (const fs::path& f : files) out.push_back(read_recipe(f));
  return out;
}

Recipe find_recipe(const std::string& name, const fs::path& dir) {
  const bool plain = !name.empty() && name.find_first_of("/\\") == std::string::npos && name[0] != '.';
  std::error_code ec;
  if (plain && fs::is_regular_file(dir / (name + ".json"), ec)) return read_recipe(dir / (name + ".json"));
  std::string known;
  if (fs::is_directory(dir, ec))
    for (const Recipe& r : read_recipes(dir)) known += (known.empty() ? "" : ", ") + r.name;
  throw UsageError("--recipe: no recipe '" + name + "' in " + dir.string() +
                   (known.empty() ? std::string(" (no recipes there)") : "; the recipes are: " + known));
}

std::string recipe_cpu_warning(const Recipe& r, const std::string& device, bool has_checkpoint, double time_limit_s) {
  if (!r.needs_gpu || device != "cpu") return "";
  std::string out = "recipe " + r.name + " needs a GPU to train in minutes, and this run is on the CPU: ";
  std::string cpu_runs;
  for (const RecipeMeasurement& m : r.measured)
    if (m.device == "cpu")
      cpu_runs += (cpu_runs.empty() ? "" : "; ") + fixed(m.train_seconds, 0) + " s (" +
                  fixed(m.train_seconds / 3600, 1) + " h) on " + m.machine + ", " + fixed(100 * m.test_acc, 2) + "%";
  out += cpu_runs.empty() ? "it has never been trained to the end on a CPU; expect many hours (the progress line's "
                            "ETA says how many)"
                          : "with its own settings it trained " + cpu_runs;
  if (has_checkpoint)
    out += ". The checkpoint keeps every epoch: stop with Ctrl-C and --resume it later";
  else if (time_limit_s > 0)
    out += ". --time-limit ends it after the epoch that passes " + fixed(time_limit_s, 0) +
           " s; add --checkpoint FILE to continue it later with --resume FILE";
  else
    out += ". Add --checkpoint FILE to keep every epoch (then --resume FILE after a stop), or "
           "--time-limit SECONDS to end it after the epoch that passes the limit";
  return out;
}

std::string recipes_table(const std::vector<Recipe>& recipes, bool markdown) {
  const std::vector<std::string> head{"name", "source", "reported", "mnist_gpu measured", "command"};
  // The plain table keeps to a terminal's width: a long citation is cut (the file and the Markdown
  // table hold it whole).
  constexpr std::size_t kSourceWidth = 60;
  std::vector<std::vector<std::string>> rows;
  for (const Recipe& r : recipes) {
    std::string source = r.citation;
    if (!markdown && source.size() > kSourceWidth) source = source.substr(0, kSourceWidth - 3) + "...";
    rows.push_back({r.name, source, r.reported, measured_text(r), "mnist_gpu train --recipe " + r.name});
  }
  std::string out;
  if (markdown) {
    auto line = [&](const std::vector<std::string>& cells) {
      for (const std::string& c : cells) {
        std::string cell = c;
        for (std::size_t p = 0; (p = cell.find('|', p)) != std::string::npos; p += 2) cell.replace(p, 1, "\\|");
        out += "| " + cell + " ";
      }
      out += "|\n";
    };
    line(head);
    out += "|---|---|---|---|---|\n";
    for (const auto& row : rows) line(row);
    return out;
  }
  std::vector<std::size_t> width(head.size());
  for (std::size_t c = 0; c < head.size(); ++c) {
    width[c] = head[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (std::size_t c = 0; c < cells.size(); ++c)
      l += cells[c] + (c + 1 < cells.size() ? std::string(width[c] - cells[c].size() + 2, ' ') : "");
    out += l + "\n";
  };
  line(head);
  std::vector<std::string> rule;
  for (std::size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& row : rows) line(row);
  return out;
}

}  // namespace mnist_gpu
