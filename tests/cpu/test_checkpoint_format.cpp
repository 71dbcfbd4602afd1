// Checkpoint format 3 (optimizer tensors by name) against versions 1 and 2, and the runs that
// start from saved state: a resumed run continued for more epochs, and --init-from a saved model.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/train.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Bytes = std::vector<std::uint8_t>;

namespace {

const std::string kFixtures = MNIST_GPU_SOURCE_DIR "/tests/data/";

template <class T>
void put(Bytes& out, T v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

void put_floats(Bytes& out, const std::vector<float>& v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(v.data());
  out.insert(out.end(), p, p + v.size() * sizeof(float));
}

// MAGIC, version, header, (counts), floats, CRC: the layout of every version.
Bytes file_bytes(std::uint32_t version, const json& header, const std::vector<std::uint64_t>& counts,
                 const std::vector<const std::vector<float>*>& arrays) {
  const std::string h = header.dump();
  Bytes out = {'M', 'N', 'G', 'P', 'U', 'C', 'K', 'P'};
  put<std::uint32_t>(out, version);
  put<std::uint64_t>(out, h.size());
  out.insert(out.end(), h.begin(), h.end());
  for (std::uint64_t n : counts) put<std::uint64_t>(out, n);
  for (const auto* a : arrays) put_floats(out, *a);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(crc32(0L, out.data(), static_cast<uInt>(out.size()))));
  return out;
}

json header_of(const Bytes& b) {
  std::uint64_t len;
  std::memcpy(&len, b.data() + 12, 8);
  return json::parse(b.begin() + 20, b.begin() + 20 + static_cast<std::ptrdiff_t>(len));
}

std::uint32_t version_of(const Bytes& b) {
  std::uint32_t v;
  std::memcpy(&v, b.data() + 8, 4);
  return v;
}

std::string parse_error(const Bytes& b) {
  try {
    parse_checkpoint(b, "ck");
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

void expect_same(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(config_to_json(a.config), config_to_json(b.config));
  EXPECT_EQ(a.state.params, b.state.params);
  EXPECT_EQ(a.state.optimizer, b.state.optimizer);
  EXPECT_EQ(a.state.step, b.state.step);
  ASSERT_EQ(a.progress.done.size(), b.progress.done.size());
  for (std::size_t i = 0; i < a.progress.done.size(); ++i) {
    json x = epoch_to_json(a.progress.done[i]), y = epoch_to_json(b.progress.done[i]);
    for (const char* timing : {"epoch_s", "samples_per_s"}) x.erase(timing), y.erase(timing);
    EXPECT_EQ(x.dump(), y.dump());
  }
  EXPECT_EQ(a.progress.partial.batches, b.progress.partial.batches);
  EXPECT_EQ(a.progress.best_params, b.progress.best_params);
}

// The lines of a --metrics file without the timing fields (which differ between runs).
std::vector<json> metrics_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line);
    for (const char* k : {"epoch_s", "samples_per_s", "train_s", "peak_host_bytes", "train_s_to_target"}) j.erase(k);
    lines.push_back(j);
  }
  return lines;
}

std::string data_flag() { return " --device cpu --data '" + test::data_dir() + "'"; }

}  // namespace

TEST(CheckpointFormat, VersionTwoFixturesReadAndRewriteAsVersionThreeUnchanged) {
  test::TempDir dir;
  for (const char* name : {"v2_adam_h8.ckpt", "v2_momentum_h6.ckpt"}) {
    SCOPED_TRACE(name);
    const Bytes v2 = read_whole_file(kFixtures + name, 1ull << 30);
    ASSERT_EQ(version_of(v2), 2u);
    const Checkpoint ck = read_checkpoint(kFixtures + name);
    const std::vector<std::string> names = optimizer_state_names(ck.config.optimizer.kind);
    ASSERT_EQ(ck.state.optimizer.size(), names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
      EXPECT_EQ(ck.state.optimizer[i].name, names[i]);
      EXPECT_EQ(ck.state.optimizer[i].values.size(), ck.state.params.size());
    }
    write_checkpoint(dir / "v3.ckpt", ck);
    const Bytes v3 = read_whole_file(dir / "v3.ckpt", 1ull << 30);
    EXPECT_EQ(version_of(v3), kCheckpointVersion);  // written in the current layout (3 and 4 share it)
    json arrays = header_of(v3).at("arrays");
    std::vector<std::string> listed;
    for (const json& a : arrays) listed.push_back(a.at("name").get<std::string>());
    std::vector<std::string> want = {"params"};
    for (const std::string& n : names) want.push_back("optimizer/" + n);
    want.push_back("best");
    EXPECT_EQ(listed, want);
    expect_same(read_checkpoint(dir / "v3.ckpt"), ck);
  }
  // The momentum fixture kept early stopping's best parameters.
  EXPECT_FALSE(read_checkpoint(kFixtures + std::string("v2_momentum_h6.ckpt")).progress.best_params.empty());
}

TEST(CheckpointFormat, ResumingVersionTwoAndVersionThreeGivesBitIdenticalRuns) {
  test::TempDir dir;
  for (const char* name : {"v2_adam_h8.ckpt", "v2_momentum_h6.ckpt"}) {
    SCOPED_TRACE(name);
    fs::copy_file(kFixtures + name, dir / "v2.ckpt", fs::copy_options::overwrite_existing);
    const Checkpoint ck = read_checkpoint(dir / "v2.ckpt");
    write_checkpoint(dir / "v3.ckpt", ck);
    for (const char* v : {"v2", "v3"}) {
      const auto r = test::run_exe("train --resume " + (dir / (std::string(v) + ".ckpt")).string() + " --epochs 3 --metrics " +
                                   (dir / (std::string(v) + ".jsonl")).string() + data_flag());
      ASSERT_EQ(r.code, 0) << r.out;
    }
    const std::vector<json> a = metrics_lines(dir / "v2.jsonl"), b = metrics_lines(dir / "v3.jsonl");
    ASSERT_EQ(a.size(), 4u);  // 3 epochs and the summary
    EXPECT_EQ(a, b);
    // Both continued the same run, and wrote the current version.
    EXPECT_EQ(version_of(read_whole_file(dir / "v2.ckpt", 1ull << 30)), kCheckpointVersion);
    expect_same(read_checkpoint(dir / "v2.ckpt"), read_checkpoint(dir / "v3.ckpt"));
  }
}

TEST(CheckpointFormat, VersionOneBytesStillRead) {
  Checkpoint ck;
  ck.config.model.inputs = 5;
  ck.config.model.hidden = {3};
  ck.config.optimizer.kind = OptimizerKind::momentum;
  ck.config.epochs = 3;
  const std::size_t n = ParamLayout(ck.config.model).size;
  std::vector<float> params(n, 0.5f), velocity(n, -0.25f), none;
  json config = config_to_json(ck.config);
  for (const char* v2_key : {"dropout", "lr_step", "lr_factor", "lr_patience", "min_lr", "patience", "min_delta", "limit",
                             "target"})
    config.erase(v2_key);
  const json header = {{"config", config},
                       {"step", 7},
                       {"done", json::array()},
                       {"partial", {{"loss_sum", 0.0}, {"correct", 0}, {"samples", 0}, {"batches", 0}}},
                       {"partial_s", 0.0}};
  const Checkpoint back = parse_checkpoint(file_bytes(1, header, {n, n, 0}, {&params, &velocity}), "v1");
  EXPECT_EQ(back.state.params, params);
  ASSERT_EQ(back.state.optimizer.size(), 1u);
  EXPECT_EQ(back.state.optimizer[0].name, "velocity");
  EXPECT_EQ(back.state.optimizer[0].values, velocity);
  EXPECT_EQ(back.state.step, 7);
  EXPECT_TRUE(back.progress.best_params.empty());
  EXPECT_EQ(config_to_json(back.config), config_to_json(ck.config));  // the version-2 settings at their defaults
  // The same bytes with version 2 lack its settings and its fourth count.
  EXPECT_NE(parse_error(file_bytes(2, header, {n, n, 0, 0}, {&params, &velocity})).find("no \"dropout\""),
            std::string::npos);
}

TEST(CheckpointFormat, VersionThreeReadsTensorsByNameInAnyOrderAndRefusesStrangers) {
  Checkpoint ck;
  ck.config.model.inputs = 4;
  ck.config.model.hidden = {2};
  ck.config.optimizer.kind = OptimizerKind::adam;
  const std::size_t n = ParamLayout(ck.config.model).size;
  std::vector<float> params(n, 1.0f), m(n, 2.0f), v(n, 3.0f), best(n, 4.0f), none;
  json header = {{"config", config_to_json(ck.config)},
                 {"step", 1},
                 {"done", json::array()},
                 {"partial", {{"loss_sum", 0.0}, {"correct", 0}, {"samples", 0}, {"batches", 0}}},
                 {"partial_s", 0.0}};
  auto listing = [](std::vector<std::pair<std::string, std::size_t>> arrays) {
    json l = json::array();
    for (const auto& [name, count] : arrays) l.push_back({{"name", name}, {"count", count}});
    return l;
  };
  // v before m, best before params: each array is found by its name.
  header["arrays"] = listing({{"optimizer/v", n}, {"best", n}, {"optimizer/m", n}, {"params", n}});
  const Checkpoint back = parse_checkpoint(file_bytes(3, header, {}, {&v, &best, &m, &params}), "ck");
  EXPECT_EQ(back.state.params, params);
  ASSERT_EQ(back.state.optimizer.size(), 2u);
  EXPECT_EQ(back.state.optimizer[0], (NamedTensor{"m", m}));
  EXPECT_EQ(back.state.optimizer[1], (NamedTensor{"v", v}));
  EXPECT_EQ(back.progress.best_params, best);

  header["arrays"] = listing({{"params", n}, {"optimizer/m", n}, {"optimizer/velocity", n}});
  EXPECT_NE(parse_error(file_bytes(3, header, {}, {&params, &m, &v})).find("arrays (params " + std::to_string(n) +
                                                                          ", optimizer/m " + std::to_string(n) +
                                                                          ", optimizer/velocity"),
            std::string::npos);
  header["arrays"] = listing({{"params", n}, {"optimizer/m", n}, {"optimizer/m", n}});
  EXPECT_NE(parse_error(file_bytes(3, header, {}, {&params, &m, &m})).find("do not match the model's"), std::string::npos);
  header["arrays"] = listing({{"params", n}, {"optimizer/m", n}});
  EXPECT_NE(parse_error(file_bytes(3, header, {}, {&params, &m})).find("the arrays lack optimizer/v"), std::string::npos);
  header["arrays"] = listing({{"params", n}, {"optimizer/m", n}, {"optimizer/v", n - 1}});
  EXPECT_NE(parse_error(file_bytes(3, header, {}, {&params, &m, &v})).find("do not match the model's"), std::string::npos);
  header["arrays"] = listing({{"params", n}, {"optimizer/m", n}, {"optimizer/v", n}});
  EXPECT_NE(parse_error(file_bytes(3, header, {}, {&params, &m})).find("does not match its arrays"), std::string::npos);
  header.erase("arrays");
  EXPECT_NE(parse_error(file_bytes(3, header, {}, {&params, &m, &v})).find("malformed header"), std::string::npos);
}

// --- continuing a run, and starting from a saved model -------------------------------------------

TEST(Continue, ResumeWithMoreEpochsKeepsTheFirstEpochsAndRecomputesTheSchedule) {
  test::TempDir dir;
  const std::string ck = (dir / "c.ckpt").string();
  const std::string run = " --hidden 16 --limit 2000 --val 500 --seed 4" + data_flag();
  auto r = test::run_exe("train --epochs 2 --checkpoint " + ck + " --metrics " + (dir / "a.jsonl").string() + run);
  ASSERT_EQ(r.code, 0) << r.out;
  fs::copy_file(ck, dir / "c2.ckpt");

  // Fewer epochs than done: refused, naming --epochs and what was done.
  r = test::run_exe("train --resume " + ck + " --epochs 1" + data_flag());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--epochs: the checkpoint " + ck + " has 2 epochs done; --epochs 1 would end before them"),
            std::string::npos)
      << r.out;

  r = test::run_exe("train --resume " + ck + " --epochs 3 --metrics " + (dir / "b.jsonl").string() + " --report " +
                    (dir / "report").string() + data_flag());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resuming at epoch 3 of 3 (was 2): the cosine schedule is recomputed for 3 epochs"),
            std::string::npos)
      << r.out;
  const std::vector<json> a = metrics_lines(dir / "a.jsonl"), b = metrics_lines(dir / "b.jsonl");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(a[0], b[0]);
  EXPECT_EQ(a[1], b[1]);
  EXPECT_EQ(b[2].at("epoch"), 3);
  // Epoch 3 trains at the cosine rate of a 3-epoch run.
  Checkpoint done = read_checkpoint(ck);
  EXPECT_EQ(done.config.epochs, 3);
  EXPECT_EQ(b[2].at("lr").get<double>(), static_cast<double>(epoch_lr(done.config, 3)));
  EXPECT_EQ(b[3].at("epochs"), 3);
  EXPECT_EQ(b[3].at("continued"), "resuming at epoch 3 of 3 (was 2): the cosine schedule is recomputed for 3 epochs");
  EXPECT_TRUE(a[2].at("continued").is_null());
  // The report's settings say so too.
  std::ifstream page(dir / "report" / "report.html");
  const std::string html((std::istreambuf_iterator<char>(page)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("3 of 3 (resuming at epoch 3 of 3 (was 2): the cosine schedule is recomputed for 3 epochs)"),
            std::string::npos);

  // A result flag given with the checkpoint's own value is accepted.
  r = test::run_exe("train --resume " + (dir / "c2.ckpt").string() + " --epochs 3 --lr 0.002" + data_flag());
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST(Continue, InitFromASavedModelStartsFromItsParametersAndChecksTheArchitecture) {
  test::TempDir dir;
  const std::string model = (dir / "m.mgpu").string();
  const std::string run = " --limit 2000 --val 500 --seed 4" + data_flag();
  auto r = test::run_exe("train --hidden 16 --epochs 2 --save " + model + " --metrics " + (dir / "a.jsonl").string() + run);
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_exe("train --hidden 16 --epochs 1 --init-from " + model + " --metrics " + (dir / "b.jsonl").string() + run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("starting from the parameters of " + model), std::string::npos) << r.out;
  const std::vector<json> a = metrics_lines(dir / "a.jsonl"), b = metrics_lines(dir / "b.jsonl");
  ASSERT_EQ(b.size(), 2u);
  // Its first epoch starts where the saved model ended: better than the first run's first epoch.
  EXPECT_GT(b[0].at("train_acc").get<double>(), a[0].at("train_acc").get<double>());
  EXPECT_GT(b[0].at("val_acc").get<double>(), a[0].at("val_acc").get<double>());
  EXPECT_EQ(b[1].at("init_from"), model);

  r = test::run_exe("train --hidden 32 --epochs 1 --init-from " + model + run);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--init-from " + model + ": the model's hidden layers are 16, not --hidden 32; give --hidden 16"),
            std::string::npos)
      << r.out;
  r = test::run_exe("train --hidden 16 --activation tanh --epochs 1 --init-from " + model + run);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("the model's activation is relu, not --activation tanh; give --activation relu"), std::string::npos)
      << r.out;
  r = test::run_exe("train --hidden 16 --epochs 1 --init-from " + (dir / "none.mgpu").string() + run);
  EXPECT_EQ(r.code, 1) << r.out;
}

// The fuzzer's seed checkpoints (versions 1 and 3) are valid files, so that mutations start from
// both layouts.
TEST(CheckpointFormat, FuzzSeedsOfEveryVersionRead) {
  const fs::path corpus = MNIST_GPU_SOURCE_DIR "/fuzz/corpus/fuzz_checkpoint";
  for (const char* kind : {"adam", "momentum", "sgd"}) {
    SCOPED_TRACE(kind);
    const Checkpoint v1 = read_checkpoint(corpus / ("ckpt_" + std::string(kind) + ".ckpt"));
    const Bytes b3 = read_whole_file(corpus / ("ckpt_" + std::string(kind) + "_v3.ckpt"), 1ull << 20);
    EXPECT_EQ(version_of(b3), 3u);
    expect_same(parse_checkpoint(b3, "v3"), v1);
  }
}
