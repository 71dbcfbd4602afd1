// The GEMM autotune cache file (tune_cache.hpp): key text, file name and location, the round
// trip, and every refusal (corrupt, truncated, wrong types or blob length, bad times, foreign,
// newer, not a regular file, too big), each naming the file; saving is atomic and never fatal.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/tune_cache.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
using mnist_gpu::test::TempDir;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

TuneDevice h200() { return TuneDevice{"NVIDIA H200", 9, 0, 130001}; }

GemmKey key(int m, int n, int k, const std::string& epilogue = "default") {
  GemmKey g;
  g.device = h200();
  g.m = m, g.n = n, g.k = k;
  g.trans_a = false, g.trans_b = true;
  g.epilogue = epilogue;
  return g;
}

TuneEntry entry(std::uint64_t seed, double us = 7.5, int candidates = 8) {
  TuneEntry e;
  for (std::size_t i = 0; i < e.algo.size(); ++i) e.algo[i] = seed * 0x9e3779b97f4a7c15ull + i;
  e.algo[7] = ~0ull;  // all 64 bits survive
  e.median_us = us;
  e.candidates = candidates;
  return e;
}

// A valid cache file's JSON with two entries, for the tests to spoil.
json valid_json() {
  TuneCache c(h200());
  c.put(key(256, 512, 784, "relu_aux_bias"), entry(1));
  c.put(key(10, 256, 256, "bias"), entry(2, 3.25, 4));
  return json::parse(c.to_json_text());
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// load() refuses `text` with an Error naming the file and containing `what`.
void expect_refused(const std::string& text, const std::string& what, const TuneDevice& dev = h200()) {
  TempDir dir;
  const fs::path p = dir / "cache.json";
  write_text(p, text);
  try {
    TuneCache::load(p, dev);
    ADD_FAILURE() << "accepted: " << text.substr(0, 300);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(p.string() + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "'" << msg << "' lacks '" << what << "'";
  }
  // A run opening it gets a fresh cache and one warning line naming the file.
  const OpenedTuneCache o = open_tune_cache(dev, TuneCacheEnv{p.string(), "", ""});
  EXPECT_EQ(o.cache.size(), 0u);
  ASSERT_TRUE(o.warning.has_value());
  EXPECT_NE(o.warning->find(p.string()), std::string::npos) << *o.warning;
  EXPECT_EQ(o.warning->find('\n'), std::string::npos) << *o.warning;
}

json with(json j, const json::json_pointer& at, const json& value) {
  j[at] = value;
  return j;
}

const std::string kEntry = "/entries/m=256 n=512 k=784 op=NT fp32 relu_aux_bias";

}  // namespace

TEST(TuneCache, KeyText) {
  GemmKey g = key(256, 512, 784, "relu_aux_bias");
  EXPECT_EQ(g.gemm_text(), "m=256 n=512 k=784 op=NT fp32 relu_aux_bias");
  EXPECT_EQ(g.text(), "NVIDIA H200|cc9.0|lt130001|m=256 n=512 k=784 op=NT fp32 relu_aux_bias");
  g.trans_a = true, g.trans_b = false, g.precision = "bf16";
  EXPECT_EQ(g.gemm_text(), "m=256 n=512 k=784 op=TN bf16 relu_aux_bias");
  EXPECT_EQ(h200().text(), "NVIDIA H200, cc 9.0, cuBLASLt 130001");
}

TEST(TuneCache, FileName) {
  EXPECT_EQ(tune_cache_file_name(h200()), "nvidia_h200-sm90-lt130001.json");
  EXPECT_EQ(tune_cache_file_name({"NVIDIA GeForce RTX 4090 / ../x", 8, 9, 120000}),
            "nvidia_geforce_rtx_4090_x-sm89-lt120000.json");
  EXPECT_EQ(tune_cache_file_name({"../..", 7, 5, 1}), "gpu-sm75-lt1.json");
  EXPECT_EQ(tune_cache_file_name({std::string(500, 'a'), 9, 0, 1}), std::string(64, 'a') + "-sm90-lt1.json");
}

TEST(TuneCache, PathResolution) {
  const std::string name = tune_cache_file_name(h200());
  EXPECT_EQ(tune_cache_path(h200(), {"", "/x/cache", "/home/u"}), fs::path("/x/cache/mnist_gpu") / name);
  EXPECT_EQ(tune_cache_path(h200(), {"", "", "/home/u"}), fs::path("/home/u/.cache/mnist_gpu") / name);
  // The XDG spec: a relative $XDG_CACHE_HOME is invalid and ignored.
  EXPECT_EQ(tune_cache_path(h200(), {"", "rel/cache", "/home/u"}), fs::path("/home/u/.cache/mnist_gpu") / name);
  EXPECT_EQ(tune_cache_path(h200(), {"/t/my.json", "/x/cache", "/home/u"}), fs::path("/t/my.json"));
  EXPECT_TRUE(tune_cache_path(h200(), {"", "", ""}).empty());
  // No location: nothing is read, nothing written, no warning.
  OpenedTuneCache o = open_tune_cache(h200(), {"", "", ""});
  o.cache.put(key(1, 2, 3), entry(1));
  EXPECT_FALSE(o.warning);
  EXPECT_FALSE(save_tune_cache(o));
}

TEST(TuneCache, RoundTrip) {
  TempDir dir;
  const fs::path p = dir / "deep" / "er" / "c.json";  // save creates the folders
  TuneCache c(h200());
  EXPECT_FALSE(c.changed());
  c.put(key(256, 512, 784, "relu_aux_bias"), entry(1));
  c.put(key(10, 256, 256), entry(2, 0.125, 1));
  c.put(key(10, 256, 256), entry(3, 2.5, 3));  // replaces
  EXPECT_TRUE(c.changed());
  c.save(p);
  const TuneCache back = TuneCache::load(p, h200());
  EXPECT_FALSE(back.changed());
  ASSERT_EQ(back.size(), 2u);
  ASSERT_NE(back.find(key(256, 512, 784, "relu_aux_bias")), nullptr);
  EXPECT_EQ(*back.find(key(256, 512, 784, "relu_aux_bias")), entry(1));
  EXPECT_EQ(*back.find(key(10, 256, 256)), entry(3, 2.5, 3));
  EXPECT_EQ(back.find(key(10, 256, 256, "bias")), nullptr);
  GemmKey other = key(10, 256, 256);
  other.device.lt_version = 130002;
  EXPECT_EQ(back.find(other), nullptr);
  EXPECT_EQ(back.to_json_text(), c.to_json_text());
}

TEST(TuneCache, PutRefusesForeignKeysAndBadEntries) {
  TuneCache c(h200());
  GemmKey other = key(1, 2, 3);
  other.device.gpu = "NVIDIA A100";
  EXPECT_THROW(c.put(other, entry(1)), Error);
  EXPECT_THROW(c.put(key(1, 2, 3), entry(1, -1.0)), Error);
  EXPECT_THROW(c.put(key(1, 2, 3), entry(1, std::nan(""))), Error);
  EXPECT_THROW(c.put(key(1, 2, 3), entry(1, std::numeric_limits<double>::infinity())), Error);
  EXPECT_THROW(c.put(key(1, 2, 3), entry(1, 1.0, 0)), Error);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_FALSE(c.changed());
}

TEST(TuneCache, RefusesCorruptJson) {
  const std::string good = valid_json().dump();
  expect_refused("{\"format\": \"mnist_gpu GEMM tune cache\", \"vers", "corrupt or truncated JSON");
  expect_refused(good.substr(0, good.size() / 2), "corrupt or truncated JSON");  // truncated
  expect_refused(good.substr(0, good.size() - 1), "corrupt or truncated JSON");  // last brace lost
  expect_refused("", "corrupt or truncated JSON");
  expect_refused(std::string("\x1f\x8b\x08\x00", 4), "corrupt or truncated JSON");
  expect_refused("[1, 2, 3]", "not a tune cache");
  expect_refused("{\"format\": \"mnist_gpu checkpoint\"}", "not a tune cache");
}

TEST(TuneCache, RefusesWrongTypes) {
  const json j = valid_json();
  expect_refused(with(j, json::json_pointer("/version"), "1").dump(), "version: expected an integer");
  expect_refused(with(j, json::json_pointer("/version"), 1.5).dump(), "version: expected an integer");
  expect_refused(with(j, json::json_pointer("/gpu"), 200).dump(), "gpu: expected a name");
  expect_refused(with(j, json::json_pointer("/cc_major"), "9").dump(), "cc_major: expected an integer");
  expect_refused(with(j, json::json_pointer("/entries"), json::array()).dump(), "entries: expected an object");
  expect_refused(with(j, json::json_pointer(kEntry), 5).dump(), "expected an object");
  expect_refused(with(j, json::json_pointer(kEntry + "/median_us"), "7.5").dump(), "median_us: expected a number");
  expect_refused(with(j, json::json_pointer(kEntry + "/candidates"), 2.5).dump(), "candidates: expected an integer");
  expect_refused(with(j, json::json_pointer(kEntry + "/algo"), "00").dump(), "'algo' must be an array of 8");
  expect_refused(with(j, json::json_pointer(kEntry + "/algo/3"), 12).dump(), "algo[3] is 12");
  json missing = j;
  missing[json::json_pointer(kEntry)].erase("candidates");
  expect_refused(missing.dump(), "missing 'candidates'");
  json no_entries = j;
  no_entries.erase("entries");
  expect_refused(no_entries.dump(), "missing 'entries'");
}

TEST(TuneCache, RefusesWrongBlobLength) {
  const json j = valid_json();
  json seven = j, nine = j;
  seven[json::json_pointer(kEntry + "/algo")].erase(7);
  nine[json::json_pointer(kEntry + "/algo")].push_back("0000000000000000");
  expect_refused(seven.dump(), "found 7 items");
  expect_refused(nine.dump(), "found 9 items");
  expect_refused(with(j, json::json_pointer(kEntry + "/algo/0"), "000000000000000").dump(), "expected 16 hex digits");
  expect_refused(with(j, json::json_pointer(kEntry + "/algo/0"), "00000000000000000").dump(), "expected 16 hex digits");
  expect_refused(with(j, json::json_pointer(kEntry + "/algo/0"), "000000000000000g").dump(), "expected 16 hex digits");
}

TEST(TuneCache, RefusesBadTimes) {
  const json j = valid_json();
  expect_refused(with(j, json::json_pointer(kEntry + "/median_us"), -3.0).dump(), "is not a time");
  expect_refused(with(j, json::json_pointer(kEntry + "/median_us"), 0.0).dump(), "is not a time");
  // JSON has no NaN: nlohmann writes one as null, and some writers as a bare NaN.
  expect_refused(with(j, json::json_pointer(kEntry + "/median_us"), std::nan("")).dump(), "median_us: expected a number");
  std::string bare = j.dump();
  const std::string at = "\"median_us\":7.5";
  ASSERT_NE(bare.find(at), std::string::npos);
  bare.replace(bare.find(at), at.size(), "\"median_us\":NaN");
  expect_refused(bare, "corrupt or truncated JSON");
  expect_refused(with(j, json::json_pointer(kEntry + "/median_us"), std::numeric_limits<double>::infinity()).dump(),
                 "median_us: expected a number");
  expect_refused(with(j, json::json_pointer(kEntry + "/candidates"), 0).dump(), "candidates 0 out of range");
  expect_refused(with(j, json::json_pointer(kEntry + "/candidates"), -2).dump(), "candidates -2 out of range");
}

TEST(TuneCache, RefusesForeignAndNewer) {
  const std::string good = valid_json().dump();
  TuneDevice a100{"NVIDIA A100-SXM4-80GB", 8, 0, 130001};
  expect_refused(good, "made for NVIDIA H200, cc 9.0, cuBLASLt 130001, not for this NVIDIA A100", a100);
  TuneDevice newer_lib = h200();
  newer_lib.lt_version = 130100;
  expect_refused(good, "not for this NVIDIA H200, cc 9.0, cuBLASLt 130100", newer_lib);
  TuneDevice other_cc = h200();
  other_cc.cc_minor = 1;
  expect_refused(good, "not for this NVIDIA H200, cc 9.1", other_cc);
  expect_refused(with(valid_json(), json::json_pointer("/version"), kTuneCacheVersion + 1).dump(),
                 "format version 2 is newer than this mnist_gpu reads (1)");
  expect_refused(with(valid_json(), json::json_pointer("/version"), 0).dump(), "format version 0 is not a version");
}

TEST(TuneCache, RefusesSpecialAndOversizedFiles) {
  TempDir dir;
  const fs::path fifo = dir / "fifo.json", folder = dir / "folder.json", big = dir / "big.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  fs::create_directory(folder);
  {
    // Valid JSON, only too big: the size is refused before anything is parsed.
    json j = valid_json();
    j["padding"] = std::string(kTuneCacheMaxBytes, ' ');
    write_text(big, j.dump());
  }
  for (const fs::path& p : {fifo, folder, big}) {
    EXPECT_THROW(TuneCache::load(p, h200()), Error) << p;  // a FIFO must not block (the test would hang)
    const OpenedTuneCache o = open_tune_cache(h200(), {p.string(), "", ""});
    ASSERT_TRUE(o.warning) << p;
    EXPECT_NE(o.warning->find(p.string()), std::string::npos) << *o.warning;
    EXPECT_EQ(o.cache.size(), 0u);
  }
  const OpenedTuneCache o = open_tune_cache(h200(), {folder.string(), "", ""});
  EXPECT_NE(o.warning->find("not a regular file"), std::string::npos) << *o.warning;
  const OpenedTuneCache b = open_tune_cache(h200(), {big.string(), "", ""});
  EXPECT_NE(b.warning->find("larger than"), std::string::npos) << *b.warning;
}

TEST(TuneCache, OpenMissingIsEmptyWithoutWarning) {
  TempDir dir;
  const OpenedTuneCache o = open_tune_cache(h200(), {"", dir.path().string(), ""});
  EXPECT_EQ(o.path, dir.path() / "mnist_gpu" / tune_cache_file_name(h200()));
  EXPECT_FALSE(o.warning);
  EXPECT_EQ(o.cache.size(), 0u);
  EXPECT_FALSE(fs::exists(dir.path() / "mnist_gpu"));  // opening creates nothing
}

TEST(TuneCache, SaveIsAtomicAndReplacesARefusedFile) {
  TempDir dir;
  const TuneCacheEnv env{"", dir.path().string(), ""};
  OpenedTuneCache o = open_tune_cache(h200(), env);
  EXPECT_FALSE(save_tune_cache(o));  // unchanged: nothing written
  EXPECT_FALSE(fs::exists(o.path));
  o.cache.put(key(256, 512, 784), entry(4));
  EXPECT_FALSE(save_tune_cache(o));
  // Only the cache file is in its folder: no temporary file left behind.
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(o.path.parent_path())) files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0], o.path);
  EXPECT_EQ(*TuneCache::load(o.path, h200()).find(key(256, 512, 784)), entry(4));

  // A corrupt file is refused on open and replaced by the next save.
  write_text(o.path, "{corrupt");
  OpenedTuneCache again = open_tune_cache(h200(), env);
  ASSERT_TRUE(again.warning);
  again.cache.put(key(1, 2, 3), entry(5));
  EXPECT_FALSE(save_tune_cache(again));
  EXPECT_EQ(TuneCache::load(o.path, h200()).size(), 1u);
}

TEST(TuneCache, UnwritableFolderIsAWarning) {
  TempDir dir;
  write_text(dir / "file", "x");  // a file where the cache folder would go: fails even as root
  OpenedTuneCache o = open_tune_cache(h200(), {"", (dir / "file").string(), ""});
  EXPECT_FALSE(o.warning);
  o.cache.put(key(1, 2, 3), entry(1));
  const std::optional<std::string> w = save_tune_cache(o);
  ASSERT_TRUE(w);
  EXPECT_NE(w->find((dir / "file" / "mnist_gpu").string()), std::string::npos) << *w;
  EXPECT_NE(w->find("not kept"), std::string::npos) << *w;
  EXPECT_THROW(o.cache.save(o.path), Error);
}

TEST(TuneCache, LookupOrTuneTunesOnce) {
  TuneCache c(h200());
  int tuned = 0;
  const auto tune = [&] {
    ++tuned;
    return entry(9, 4.0, 6);
  };
  const TuneLookup first = lookup_or_tune(c, key(64, 64, 64), tune);
  EXPECT_FALSE(first.hit);
  EXPECT_EQ(first.entry, entry(9, 4.0, 6));
  const TuneLookup second = lookup_or_tune(c, key(64, 64, 64), tune);
  EXPECT_TRUE(second.hit);
  EXPECT_EQ(second.entry, first.entry);
  EXPECT_EQ(tuned, 1);
  lookup_or_tune(c, key(64, 64, 65), tune);
  EXPECT_EQ(tuned, 2);
}
