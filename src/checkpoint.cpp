// Checkpoint files: serialisation, validation, atomic writes.
#include "mnist_gpu/checkpoint.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/json_int.hpp"
#include "mnist_gpu/settings.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu {
namespace {

using json = nlohmann::json;
constexpr char kMagic[8] = {'M', 'N', 'G', 'P', 'U', 'C', 'K', 'P'};
constexpr std::uint64_t kMaxFile = 8ull << 30;  // 8 GiB: far above any model this tool trains
const std::string kOptimizerPrefix = "optimizer/";  // format 3 names optimizer tensors "optimizer/NAME"

template <class T>
void put(std::vector<std::uint8_t>& out, T v) {
  std::uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

void put_floats(std::vector<std::uint8_t>& out, const std::vector<float>& v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(v.data());
  out.insert(out.end(), p, p + v.size() * sizeof(float));
}

json nan_to_null(double v) { return std::isnan(v) ? json(nullptr) : json(v); }
double null_to_nan(const json& j) { return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>(); }

}  // namespace

namespace {

// Sizes a corrupt or forged header might carry, refused before anything is sized from them.
void check_config(const TrainConfig& c) {
  auto in = [](long long v, long long lo, long long hi) { return v >= lo && v <= hi; };
  bool ok = in(c.model.inputs, 1, 1 << 20) && in(c.model.outputs, 1, 1 << 16) && c.model.hidden.size() <= static_cast<std::size_t>(kMaxHiddenLayers) &&
            in(c.batch, 1, 1 << 16) && in(c.epochs, 1, 100000) && in(c.val, 0, 1 << 30) &&
            in(c.lr_step, 1, 100000) && in(c.lr_patience, 0, 100000) && in(c.patience, 0, 100000) && in(c.limit, 0, 1 << 30) &&
            c.optimizer.dropout >= 0.0f && c.optimizer.dropout < 1.0f && c.target >= 0 && c.target <= 1;
  for (int w : c.model.hidden) ok = ok && in(w, 1, 1 << 16);
  if (!ok) throw Error("absurd sizes in the configuration");
}

}  // namespace

json epoch_to_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch},
          {"train_loss", m.train_loss},
          {"train_acc", m.train_acc},
          {"val_loss", nan_to_null(m.val_loss)},
          {"val_acc", nan_to_null(m.val_acc)},
          {"lr", m.lr},
          {"epoch_s", m.epoch_s},
          {"samples_per_s", m.samples_per_s},
          {"test_acc", nan_to_null(m.test_acc)}};
}

EpochMetrics epoch_from_json(const json& m) {
  EpochMetrics e;
  e.epoch = json_int<int>(m.at("epoch"), "epoch");
  e.train_loss = m.at("train_loss").get<double>();
  e.train_acc = m.at("train_acc").get<double>();
  e.val_loss = null_to_nan(m.at("val_loss"));
  e.val_acc = null_to_nan(m.at("val_acc"));
  e.lr = m.at("lr").get<double>();
  e.epoch_s = m.at("epoch_s").get<double>();
  e.samples_per_s = m.at("samples_per_s").get<double>();
  if (m.contains("test_acc")) e.test_acc = null_to_nan(m.at("test_acc"));  // version 2
  return e;
}

void write_checkpoint(const std::filesystem::path& path, const Checkpoint& ck) {
  json done = json::array();
  for (const auto& m : ck.progress.done) done.push_back(epoch_to_json(m));
  const EpochSums& p = ck.progress.partial;
  json header = {{"config", config_to_json(ck.config)},
                       {"step", ck.state.step},
                       {"done", done},
                       {"partial",
                        {{"loss_sum", p.loss_sum}, {"correct", p.correct}, {"samples", p.samples}, {"batches", p.batches}}},
                       {"partial_s", ck.progress.partial_s}};
  // Format 3: the arrays by name, listed in the header in the order their floats follow it.
  std::vector<std::pair<std::string, const std::vector<float>*>> arrays = {{"params", &ck.state.params}};
  for (const NamedTensor& t : ck.state.optimizer) arrays.emplace_back(kOptimizerPrefix + t.name, &t.values);
  arrays.emplace_back("best", &ck.progress.best_params);
  json list = json::array();
  for (const auto& [name, values] : arrays) list.push_back({{"name", name}, {"count", values->size()}});
  header["arrays"] = list;
  const std::string h = header.dump();
  std::vector<std::uint8_t> out(kMagic, kMagic + 8);
  put<std::uint32_t>(out, kCheckpointVersion);
  put<std::uint64_t>(out, h.size());
  out.insert(out.end(), h.begin(), h.end());
  for (const auto& [name, values] : arrays) put_floats(out, *values);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(crc32(0L, out.data(), static_cast<uInt>(out.size()))));
  write_file_atomically(path, out);
}

Checkpoint read_checkpoint(const std::filesystem::path& path) {
  return parse_checkpoint(read_whole_file(path, kMaxFile, "an mnist_gpu checkpoint"), path.string());
}

Checkpoint parse_checkpoint(const std::vector<std::uint8_t>& b, const std::string& name) {
  auto fail = [&](const std::string& what) -> Error { return Error(name + ": " + what); };
  if (b.size() < 8 || std::memcmp(b.data(), kMagic, 8) != 0)
    throw fail("not an mnist_gpu checkpoint (no MNGPUCKP magic)");
  if (b.size() < 12) throw fail("truncated (" + std::to_string(b.size()) + " bytes)");
  std::size_t at = 8;
  auto get_u32 = [&] { std::uint32_t v; std::memcpy(&v, b.data() + at, 4); at += 4; return v; };
  auto get_u64 = [&] { std::uint64_t v; std::memcpy(&v, b.data() + at, 8); at += 8; return v; };
  const std::uint32_t version = get_u32();
  if (version < 1 || version > kCheckpointVersion)
    throw fail("checkpoint format version " + std::to_string(version) + ", this build reads versions 1 to " +
               std::to_string(kCheckpointVersion) + (version > kCheckpointVersion ? " (written by a newer mnist_gpu)" : ""));
  // The bytes besides the header and the floats: magic, version, header length, the array counts
  // (versions 1 and 2: three, and n_best from version 2; version 3 lists them in the header), CRC.
  const std::size_t counts = version == 1 ? 3 : version == 2 ? 4 : 0;
  const std::size_t fixed = 8 + 4 + 8 + counts * 8 + 4;
  if (b.size() < fixed) throw fail("truncated (" + std::to_string(b.size()) + " bytes)");
  std::uint32_t stored_crc;
  std::memcpy(&stored_crc, b.data() + b.size() - 4, 4);
  if (static_cast<std::uint32_t>(crc32(0L, b.data(), static_cast<uInt>(b.size() - 4))) != stored_crc)
    throw fail("checksum mismatch: the file is corrupt or truncated");
  const std::uint64_t header_bytes = get_u64();
  if (header_bytes > b.size() - fixed) throw fail("header length " + std::to_string(header_bytes) + " runs past the end");
  Checkpoint ck;
  json header;
  // The arrays in file order: (name, count). Names: "params", "optimizer/NAME", "best".
  std::vector<std::pair<std::string, std::uint64_t>> arrays;
  try {
    header = json::parse(b.begin() + static_cast<std::ptrdiff_t>(at),
                         b.begin() + static_cast<std::ptrdiff_t>(at + header_bytes));
    at += header_bytes;
    ck.config = config_from_json(header.at("config"), version);
    check_config(ck.config);
    ck.state.step = json_int<long long>(header.at("step"), "step");
    for (const auto& m : header.at("done")) ck.progress.done.push_back(epoch_from_json(m));
    const json& p = header.at("partial");
    ck.progress.partial.loss_sum = p.at("loss_sum").get<double>();
    ck.progress.partial.correct = json_int<unsigned long long>(p.at("correct"), "correct");
    ck.progress.partial.samples = json_int<long long>(p.at("samples"), "samples");
    ck.progress.partial.batches = json_int<long long>(p.at("batches"), "batches");
    ck.progress.partial_s = header.at("partial_s").get<double>();
    if (version >= 3) {
      const json& list = header.at("arrays");
      if (!list.is_array()) throw Error("arrays: expected a list, found " + list.dump());
      for (const json& a : list)
        arrays.emplace_back(a.at("name").get<std::string>(), json_int<std::uint64_t>(a.at("count"), "count"));
    }
  } catch (const json::exception& e) {
    throw fail(std::string("malformed header (") + e.what() + ")");
  } catch (const Error& e) {
    throw fail(e.what());
  }
  if (ck.progress.done.size() > static_cast<std::size_t>(ck.config.epochs) || ck.state.step < 0 ||
      ck.progress.partial.batches < 0)
    throw fail("inconsistent progress (more epochs done than configured, or negative counts)");
  for (std::size_t i = 0; i < ck.progress.done.size(); ++i)
    if (ck.progress.done[i].epoch != static_cast<int>(i) + 1) throw fail("inconsistent progress (epoch numbers)");

  const std::vector<std::string> names = optimizer_state_names(ck.config.optimizer.kind);
  if (version <= 2) {  // three or four counts, then params, s1, s2 (the optimizer's tensors in order), best
    const std::uint64_t n_params = get_u64(), n_s1 = get_u64(), n_s2 = get_u64();
    const std::uint64_t n_best = version >= 2 ? get_u64() : 0;
    arrays = {{"params", n_params}};
    const std::uint64_t s[2] = {n_s1, n_s2};
    for (std::size_t i = 0; i < 2; ++i)
      if (i < names.size() || s[i] != 0)
        arrays.emplace_back(i < names.size() ? kOptimizerPrefix + names[i] : "s" + std::to_string(i + 1), s[i]);
    arrays.emplace_back("best", n_best);
  }
  // Every array named once and sized as the model and its optimizer imply, before allocating.
  const std::uint64_t expect = ParamLayout(ck.config.model).size;
  std::vector<std::string> wanted = {"params", "best"};
  for (const std::string& n : names) wanted.push_back(kOptimizerPrefix + n);
  std::uint64_t total = 0;
  std::string listed;
  for (std::size_t i = 0; i < arrays.size(); ++i) {
    const auto& [array, count] = arrays[i];
    listed += (i ? ", " : "") + array + " " + std::to_string(count);
    const auto w = std::find(wanted.begin(), wanted.end(), array);
    const bool ok = w != wanted.end() && (count == expect || (array == "best" && count == 0));
    if (!ok) {
      std::string want = "params";
      for (const std::string& n : names) want += ", " + kOptimizerPrefix + n;
      throw fail("arrays (" + listed + ") do not match the model's " + std::to_string(expect) +
                 " parameters and its optimizer (" + to_string(ck.config.optimizer.kind) + ": " + want +
                 ", and best 0 or " + std::to_string(expect) + ")");
    }
    wanted.erase(w);  // each name once
    total += count;
  }
  wanted.erase(std::remove(wanted.begin(), wanted.end(), "best"), wanted.end());  // optional
  if (!wanted.empty())
    throw fail("the arrays lack " + wanted[0] + " (the model's " + std::to_string(expect) + " parameters, optimizer " +
               to_string(ck.config.optimizer.kind) + ")");
  if (b.size() - 4 - at != total * sizeof(float))
    throw fail("file size does not match its arrays (truncated or trailing bytes)");
  ck.state.optimizer.resize(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) ck.state.optimizer[i].name = names[i];
  for (const auto& [array, count] : arrays) {
    std::vector<float> v(static_cast<std::size_t>(count));
    // An empty vector's data() may be null, and memcpy to null is undefined even for 0 bytes
    // (sgd checkpoints have no optimizer state).
    if (!v.empty()) std::memcpy(v.data(), b.data() + at, v.size() * sizeof(float));
    at += v.size() * sizeof(float);
    if (array == "params") ck.state.params = std::move(v);
    else if (array == "best") ck.progress.best_params = std::move(v);
    else
      for (NamedTensor& t : ck.state.optimizer)
        if (kOptimizerPrefix + t.name == array) t.values = std::move(v);
  }
  return ck;
}

}  // namespace mnist_gpu
