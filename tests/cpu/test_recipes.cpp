// Recipes (recipe.hpp): loading, refusals naming the file and the key, an unknown name listing the
// known ones, the override order (flags given win), the table and the `recipes` command, a run
// that names its recipe, and every shipped recipe file.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/recipe.hpp"
#include "mnist_gpu/settings.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
namespace fs = std::filesystem;
using Flags = std::vector<std::string>;
using mnist_gpu::test::usage_error;

// --- recipes ------------------------------------------------------------------------------------

namespace {

// A recipes folder of its own, named by $MNIST_GPU_RECIPES for this test process.
class Recipes : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("MNIST_GPU_RECIPES", dir_.path().c_str(), 1); }
  void TearDown() override { ::unsetenv("MNIST_GPU_RECIPES"); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / (name + ".json")) << text; }
  fs::path file(const std::string& name) const { return dir_.path() / (name + ".json"); }
  test::TempDir dir_;
};

const char* kGood = R"({"name": "small", "settings": {"hidden": "64", "optimizer": "momentum", "lr": 0.05,
  "nesterov": true, "lr-patience": 2, "min_lr": 0.001, "epochs": 4},
  "source": {"citation": "A. Author 2001", "reported": "97% test accuracy"},
  "measured": [{"machine": "2-core CPU", "commit": "abc1234", "device": "cpu", "train_seconds": 12.3,
                "test_acc": 0.9712, "date": "2026-12-01"}],
  "needs_gpu": false})";

}  // namespace

TEST_F(Recipes, GoodFileReadsEveryFieldAndBothKeyForms) {
  write("small", kGood);
  const Recipe r = read_recipe(file("small"));
  EXPECT_EQ(r.name, "small");
  // In key order (JSON objects are unordered; the order does not matter: the table's order applies).
  const std::vector<std::pair<std::string, std::string>> want{{"--epochs", "4"},      {"--hidden", "64"},
                                                              {"--lr", "0.05"},       {"--lr-patience", "2"},
                                                              {"--min-lr", "0.001"},  {"--nesterov", "on"},
                                                              {"--optimizer", "momentum"}};
  EXPECT_EQ(r.settings, want);
  EXPECT_EQ(r.citation, "A. Author 2001");
  EXPECT_EQ(r.reported, "97% test accuracy");
  ASSERT_EQ(r.measured.size(), 1u);
  EXPECT_EQ(r.measured[0].test_acc, 0.9712);
  EXPECT_EQ(r.measured[0].train_seconds, 12.3);
  EXPECT_FALSE(r.needs_gpu);
}

TEST_F(Recipes, BadFilesAreRefusedNamingTheFileAndTheKey) {
  write("unknown", R"({"name": "unknown", "settings": {"hiden": "64"}, "source": {"citation": "c", "reported": "r"}})");
  std::string e = usage_error([&] { read_recipe(file("unknown")); });
  EXPECT_NE(e.find(file("unknown").string()), std::string::npos) << e;
  EXPECT_NE(e.find("\"hiden\""), std::string::npos) << e;
  // A runtime setting is not a recipe's to choose.
  write("device", R"({"name": "device", "settings": {"device": "cpu"}, "source": {"citation": "c", "reported": "r"}})");
  e = usage_error([&] { read_recipe(file("device")); });
  EXPECT_NE(e.find("\"device\""), std::string::npos) << e;
  // A value its setting refuses: the file, the key and the setting's own message.
  write("badvalue", R"({"name": "badvalue", "settings": {"lr": -1}, "source": {"citation": "c", "reported": "r"}})");
  e = usage_error([&] { read_recipe(file("badvalue")); });
  EXPECT_NE(e.find(file("badvalue").string()), std::string::npos) << e;
  EXPECT_NE(e.find("\"lr\""), std::string::npos) << e;
  EXPECT_NE(e.find("--lr: expected"), std::string::npos) << e;
  write("broken", R"({"name": "broken", "settings": {)");
  e = usage_error([&] { read_recipe(file("broken")); });
  EXPECT_NE(e.find(file("broken").string()), std::string::npos) << e;
  EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;
  write("misnamed", R"({"name": "other", "settings": {}, "source": {"citation": "c", "reported": "r"}})");
  e = usage_error([&] { read_recipe(file("misnamed")); });
  EXPECT_NE(e.find("\"name\""), std::string::npos) << e;
  write("nosource", R"({"name": "nosource", "settings": {}})");
  e = usage_error([&] { read_recipe(file("nosource")); });
  EXPECT_NE(e.find("\"source\""), std::string::npos) << e;
  write("extra", R"({"name": "extra", "settings": {}, "source": {"citation": "c", "reported": "r"}, "setings": {}})");
  e = usage_error([&] { read_recipe(file("extra")); });
  EXPECT_NE(e.find("\"setings\""), std::string::npos) << e;
}

TEST_F(Recipes, UnknownNameListsTheKnownOnes) {
  write("small", kGood);
  write("another", R"({"name": "another", "settings": {}, "source": {"citation": "c", "reported": "r"}})");
  const std::string e = usage_error([&] { find_recipe("smal", recipes_dir()); });
  EXPECT_NE(e.find("no recipe 'smal'"), std::string::npos) << e;
  EXPECT_NE(e.find("the recipes are: another, small"), std::string::npos) << e;
  EXPECT_NE(usage_error([&] { find_recipe("../small", recipes_dir()); }).find("no recipe"), std::string::npos);
  EXPECT_EQ(find_recipe("small", recipes_dir()).name, "small");
}

TEST_F(Recipes, FlagsGivenOverrideTheRecipeWhereverTyped) {
  write("small", kGood);
  // Given after --recipe, and before it: the typed value wins either way (the recipe counts as
  // typed first).
  for (const auto& flags : {Flags{"--recipe", "small", "--lr", "0.01"}, Flags{"--lr", "0.01", "--recipe", "small"}}) {
    const TrainConfig c = parse_train_flags(flags);
    EXPECT_EQ(c.optimizer.lr, 0.01f);
    EXPECT_EQ(c.model.hidden, std::vector<int>{64});
    EXPECT_EQ(c.optimizer.kind, OptimizerKind::momentum);
    EXPECT_TRUE(c.optimizer.nesterov);
    EXPECT_EQ(c.lr_patience, 2);
    EXPECT_EQ(c.epochs, 4);
    EXPECT_EQ(c.recipe, "small");
  }
  // with_recipe marks the recipe's flags as given (so --resume checks them like typed ones).
  TrainArgs a;
  a.set("--recipe", "small");
  a.set("--epochs", "9");
  const TrainArgs w = with_recipe(a);
  EXPECT_TRUE(w.given.count("--hidden"));
  EXPECT_EQ(w.at("--epochs"), "9");
  EXPECT_EQ(w.at("--hidden"), "64");
}

TEST_F(Recipes, TableShowsMeasuredOwedAndNotMeasured) {
  write("small", kGood);
  write("big", R"({"name": "big", "settings": {"hidden": "1024,1024"}, "needs_gpu": true,
    "source": {"citation": "B. Author 2014", "reported": "1.06% test error"},
    "measured": [{"machine": "2-core CPU", "commit": "abc1234", "device": "cpu", "train_seconds": 600,
                  "test_acc": 0.98, "date": "2026-12-01"}]})");
  write("plain", R"({"name": "plain", "settings": {}, "source": {"citation": "C 2020", "reported": "92%"}})");
  const std::string t = recipes_table(read_recipes(recipes_dir()), false);
  EXPECT_EQ(t.rfind("name", 0), 0u) << t;
  for (const char* want : {"small", "A. Author 2001", "97% test accuracy", "97.12% in 12 s (2-core CPU)",
                           "mnist_gpu train --recipe small", "98.00% in 600 s (2-core CPU); owed (GPU)", "not measured",
                           "C 2020"})
    EXPECT_NE(t.find(want), std::string::npos) << want << " not in\n" << t;
  // Sorted by name: big, plain, small.
  EXPECT_LT(t.find("big"), t.find("plain"));
  EXPECT_LT(t.find("plain"), t.find("small "));
  const std::string md = recipes_table(read_recipes(recipes_dir()), true);
  EXPECT_NE(md.find("| small | A. Author 2001 | 97% test accuracy |"), std::string::npos) << md;
  // The command prints the same table.
  const auto r = test::run_exe("recipes");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("97.12% in 12 s (2-core CPU)"), std::string::npos) << r.out;
  const auto bad = test::run_exe("train --recipe nope");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("the recipes are: big, plain, small"), std::string::npos) << bad.out;
}

TEST_F(Recipes, TrainLogsTheRecipeAndItsSettingsReachTheCheckpoint) {
  write("tiny", R"({"name": "tiny", "settings": {"hidden": "8", "epochs": 1, "limit": 500, "val": 100,
    "optimizer": "rmsprop", "max-norm": 3}, "source": {"citation": "c", "reported": "r"}})");
  const auto r = test::run_exe("train --device cpu --data " + test::data_dir() + " --recipe tiny --batch 50 --checkpoint " +
                               (dir_ / "ck").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("recipe: tiny"), std::string::npos) << r.out;
  const Checkpoint ck = read_checkpoint(dir_ / "ck");
  EXPECT_EQ(ck.config.model.hidden, std::vector<int>{8});
  EXPECT_EQ(ck.config.optimizer.kind, OptimizerKind::rmsprop);
  EXPECT_EQ(ck.config.optimizer.max_norm, 3.0f);
  EXPECT_EQ(ck.config.batch, 50);
}

// A recipe that needs a GPU, trained on the CPU: a warning with its recorded CPU times (else that
// it has none) and how to keep or cap the run; nothing for a GPU run or a recipe that needs none.
TEST(RecipeCpuWarning, SaysHowLongAndHowToKeepOrCap) {
  Recipe r;
  r.name = "big";
  r.needs_gpu = true;
  r.measured = {{"2-core CPU", "abc1234", "cpu", 8413.7, 0.987, "2026-12-01"},
                {"H200", "def5678", "cuda", 42, 0.99, "2026-12-02"}};
  const std::string w = recipe_cpu_warning(r, "cpu", false);
  for (const char* want : {"recipe big needs a GPU to train in minutes, and this run is on the CPU",
                           "with its own settings it trained 8414 s (2.3 h) on 2-core CPU, 98.70%",
                           "Add --checkpoint FILE", "--time-limit SECONDS"})
    EXPECT_NE(w.find(want), std::string::npos) << want << " not in: " << w;
  EXPECT_EQ(w.find("H200"), std::string::npos) << "only the CPU rows: " << w;
  const std::string kept = recipe_cpu_warning(r, "cpu", true);
  EXPECT_NE(kept.find("The checkpoint keeps every epoch: stop with Ctrl-C and --resume it later"), std::string::npos)
      << kept;
  EXPECT_EQ(kept.find("Add --checkpoint"), std::string::npos) << kept;
  EXPECT_EQ(recipe_cpu_warning(r, "cpu", true, 600), kept) << "a checkpoint says the same with a time limit";
  const std::string capped = recipe_cpu_warning(r, "cpu", false, 600);
  EXPECT_NE(capped.find("--time-limit ends it after the epoch that passes 600 s; add --checkpoint FILE to continue "
                        "it later with --resume FILE"),
            std::string::npos)
      << capped;
  EXPECT_EQ(capped.find("--time-limit SECONDS"), std::string::npos) << "no advice to add what was given: " << capped;
  r.measured.erase(r.measured.begin());
  EXPECT_NE(recipe_cpu_warning(r, "cpu", false).find("it has never been trained to the end on a CPU"),
            std::string::npos);
  EXPECT_EQ(recipe_cpu_warning(r, "cuda", false), "");
  r.needs_gpu = false;
  EXPECT_EQ(recipe_cpu_warning(r, "cpu", false), "");
}

TEST_F(Recipes, TrainOnTheCpuWarnsOnlyForARecipeThatNeedsAGpu) {
  const std::string settings = R"("settings": {"hidden": "8", "epochs": 1, "limit": 200, "val": 0},
    "source": {"citation": "c", "reported": "r"})";
  write("gpuonly", R"({"name": "gpuonly", )" + settings + R"(, "needs_gpu": true})");
  write("cpuok", R"({"name": "cpuok", )" + settings + "}");
  const std::string run = "train --device cpu --data " + test::data_dir() + " --batch 50 --recipe ";
  auto r = test::run_exe(run + "gpuonly");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: recipe gpuonly needs a GPU to train in minutes, and this run is on the CPU: it has "
                       "never been trained to the end on a CPU"),
            std::string::npos)
      << r.out;
  r = test::run_exe(run + "cpuok");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("needs a GPU"), std::string::npos) << r.out;
}

// Every shipped recipe file parses, names only settings that exist with valid values, and its
// settings together make a valid run (no flag that would do nothing, refused as inert).
TEST(ShippedRecipes, EveryFileParsesAndItsSettingsAreValid) {
  const fs::path dir = fs::path(MNIST_GPU_SOURCE_DIR) / "recipes";
  const std::vector<Recipe> all = read_recipes(dir);
  EXPECT_GE(all.size(), 7u) << "the five seed systems, Keras's mnist_mlp and Srivastava 2014";
  for (const Recipe& r : all) {
    SCOPED_TRACE(r.file.string());
    EXPECT_FALSE(r.citation.empty());
    EXPECT_FALSE(r.reported.empty());
    Flags flags;
    for (const auto& [flag, value] : r.settings) {
      const Setting* s = find_setting(flag);
      ASSERT_NE(s, nullptr) << flag;
      if (!s->is_switch) flags.insert(flags.end(), {flag, value});
      else if (value == "on") flags.push_back(flag);  // a switch is typed alone
    }
    EXPECT_EQ(usage_error([&] { parse_train_flags(flags); }), "(accepted)");
    for (const RecipeMeasurement& m : r.measured) {
      EXPECT_FALSE(m.commit.empty());
      EXPECT_GT(m.train_seconds, 0);
    }
    if (!r.needs_gpu) {
      EXPECT_FALSE(r.measured.empty()) << "a CPU recipe carries its measured row";
    }
  }
}
