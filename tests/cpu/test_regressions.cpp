// Regressions found by the sanitizer builds and the fuzzers (fuzz/), and the in-memory parse entry
// points they use (parse_idx, parse_checkpoint), which must agree with the file readers.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/idx.hpp"
#include "mnist_gpu/model.hpp"

using namespace mnist_gpu;
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / ("mnist_gpu_regr_" + std::to_string(::getpid()) + "_" + name);
}

Bytes slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

// A 4-3-2 MLP checkpoint for `kind` (sgd has no optimizer state: s1 and s2 are empty).
Checkpoint tiny_checkpoint(OptimizerKind kind) {
  Checkpoint ck;
  ck.config.model.inputs = 4;
  ck.config.model.hidden = {3};
  ck.config.model.outputs = 2;
  ck.config.optimizer.kind = kind;
  ck.config.epochs = 2;
  const std::size_t n = ParamLayout(ck.config.model).size;
  for (std::size_t i = 0; i < n; ++i) ck.state.params.push_back(0.5f * static_cast<float>(i));
  if (kind == OptimizerKind::momentum) ck.state.optimizer = {{"velocity", std::vector<float>(n, 0.25f)}};
  if (kind == OptimizerKind::adam)
    ck.state.optimizer = {{"m", std::vector<float>(n, 0.25f)}, {"v", std::vector<float>(n, 0.125f)}};
  ck.state.step = 3;
  return ck;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no Error thrown)";
}

// `ck` serialised, with its JSON header edited by `edit` and the length and CRC-32 made valid again:
// a forged file that only the header's contents can refuse.
Bytes forged(const Checkpoint& ck, const std::function<void(nlohmann::json&)>& edit) {
  const fs::path p = temp_file("forge.ckpt");
  write_checkpoint(p, ck);
  const Bytes b = slurp(p);
  fs::remove(p);
  std::uint64_t len;
  std::memcpy(&len, b.data() + 12, 8);
  nlohmann::json header = nlohmann::json::parse(b.begin() + 20, b.begin() + 20 + static_cast<std::ptrdiff_t>(len));
  edit(header);
  const std::string h = header.dump();
  Bytes out(b.begin(), b.begin() + 12);
  const std::uint64_t new_len = h.size();
  out.insert(out.end(), reinterpret_cast<const std::uint8_t*>(&new_len), reinterpret_cast<const std::uint8_t*>(&new_len) + 8);
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), b.begin() + 20 + static_cast<std::ptrdiff_t>(len), b.end() - 4);
  const auto crc = static_cast<std::uint32_t>(crc32(0L, out.data(), static_cast<uInt>(out.size())));
  out.insert(out.end(), reinterpret_cast<const std::uint8_t*>(&crc), reinterpret_cast<const std::uint8_t*>(&crc) + 4);
  return out;
}

}  // namespace

// fuzz_checkpoint, first run: reading an sgd checkpoint memcpy'd 0 bytes into the empty s1/s2
// vectors' null data(), undefined behaviour that UBSan reports (nonnull-attribute).
TEST(Regressions, SgdCheckpointWithEmptyOptimizerStateReadsBack) {
  const fs::path p = temp_file("sgd.ckpt");
  write_checkpoint(p, tiny_checkpoint(OptimizerKind::sgd));
  const Checkpoint back = read_checkpoint(p);
  fs::remove(p);
  EXPECT_EQ(back.state.params, tiny_checkpoint(OptimizerKind::sgd).state.params);
  EXPECT_TRUE(back.state.optimizer.empty());
  EXPECT_EQ(back.state.step, 3);
}

TEST(Regressions, ParseCheckpointAgreesWithReadCheckpoint) {
  const fs::path p = temp_file("adam.ckpt");
  write_checkpoint(p, tiny_checkpoint(OptimizerKind::adam));
  Bytes bytes = slurp(p);
  const Checkpoint from_file = read_checkpoint(p);
  const Checkpoint from_bytes = parse_checkpoint(bytes, "in-memory");
  EXPECT_EQ(from_file.state.params, from_bytes.state.params);
  EXPECT_EQ(from_file.state.optimizer, from_bytes.state.optimizer);
  // Errors start with the name given, as read_checkpoint's start with the path.
  bytes[bytes.size() / 2] ^= 1;
  EXPECT_EQ(message_of([&] { parse_checkpoint(bytes, "in-memory"); }).rfind("in-memory: checksum mismatch", 0), 0u);
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  EXPECT_EQ(message_of([&] { read_checkpoint(p); }).rfind(p.string() + ": checksum mismatch", 0), 0u);
  fs::remove(p);
  EXPECT_EQ(message_of([&] { parse_checkpoint({}, "empty"); }).rfind("empty: ", 0), 0u);
}

TEST(Regressions, ParseIdxAgreesWithReadIdx) {
  const Bytes labels = {0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9};
  const IdxExpect want{1, {}};
  const IdxArray a = parse_idx(labels.data(), labels.size(), "mem", want);
  EXPECT_EQ(a.dims, std::vector<std::uint32_t>{3});
  EXPECT_EQ(a.data, (Bytes{7, 0, 9}));
  const fs::path p = temp_file("labels.idx");
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(labels.data()), labels.size());
  const IdxArray b = read_idx(p, want);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.md5_data, b.md5_data);
  fs::remove(p);
  // Same checks, messages prefixed with the name.
  EXPECT_EQ(message_of([&] { parse_idx(labels.data(), labels.size() - 1, "mem", want); }).rfind("mem: truncated", 0), 0u);
  EXPECT_EQ(message_of([&] { parse_idx(labels.data(), 0, "mem", want); }).rfind("mem: empty file", 0), 0u);
  EXPECT_EQ(message_of([&] { parse_idx(labels.data(), labels.size(), "mem", IdxExpect{3, {28, 28}}); })
                .rfind("mem: has 1 dimensions, expected 3", 0),
            0u);
}

// fuzz_checkpoint (with the CRC fixed up): a float where the header holds an integer, e.g.
// "batch": 1e30, reached nlohmann's get<int>(), whose float-to-int cast of an out-of-range value
// is undefined behaviour (UBSan: float-cast-overflow). Integers are now type- and range-checked.
TEST(Regressions, CheckpointHeaderIntegersAreTypeAndRangeChecked) {
  const Checkpoint ck = tiny_checkpoint(OptimizerKind::sgd);
  EXPECT_NO_THROW(parse_checkpoint(forged(ck, [](nlohmann::json&) {}), "same"));
  const auto refusal = [&](const std::function<void(nlohmann::json&)>& edit) {
    return message_of([&] { parse_checkpoint(forged(ck, edit), "forged"); });
  };
  EXPECT_EQ(refusal([](nlohmann::json& h) { h["config"]["batch"] = 1e30; }),
            "forged: batch: expected an integer, found 1e+30");
  EXPECT_EQ(refusal([](nlohmann::json& h) { h["config"]["epochs"] = 2.5; }), "forged: epochs: expected an integer, found 2.5");
  EXPECT_EQ(refusal([](nlohmann::json& h) { h["config"]["inputs"] = 4294967296ull; }),
            "forged: inputs: integer 4294967296 out of range");
  EXPECT_EQ(refusal([](nlohmann::json& h) { h["config"]["seed"] = -1; }), "forged: seed: integer -1 out of range");
  EXPECT_EQ(refusal([](nlohmann::json& h) { h["config"]["hidden"] = {3.0}; }),
            "forged: hidden: expected an integer, found 3.0");
  EXPECT_EQ(refusal([](nlohmann::json& h) { h["config"]["hidden"] = {{"a", 3}}; }),
            "forged: hidden: expected an array, found {\"a\":3}");
  EXPECT_EQ(refusal([](nlohmann::json& h) { h["step"] = 1e300; }), "forged: step: expected an integer, found 1e+300");
}
