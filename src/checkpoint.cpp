// Checkpoint files: serialisation, validation, atomic writes.
#include "mnist_gpu/checkpoint.hpp"

#include <zlib.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu {
namespace {

using json = nlohmann::json;
constexpr char kMagic[8] = {'M', 'N', 'G', 'P', 'U', 'C', 'K', 'P'};
constexpr std::uint64_t kMaxFile = 8ull << 30;  // 8 GiB: far above any model this tool trains

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

json config_to_json(const TrainConfig& c) {
  return {{"inputs", c.model.inputs},
          {"hidden", c.model.hidden},
          {"outputs", c.model.outputs},
          {"activation", to_string(c.model.activation)},
          {"loss", to_string(c.model.loss)},
          {"optimizer", to_string(c.optimizer.kind)},
          {"lr", c.optimizer.lr},
          {"momentum", c.optimizer.momentum},
          {"nesterov", c.optimizer.nesterov},
          {"beta1", c.optimizer.beta1},
          {"beta2", c.optimizer.beta2},
          {"eps", c.optimizer.eps},
          {"l2", c.optimizer.l2},
          {"batch", c.batch},
          {"epochs", c.epochs},
          {"val", c.val},
          {"seed", c.seed},
          {"schedule", to_string(c.schedule)},
          {"dropout", c.optimizer.dropout},
          {"lr_step", c.lr_step},
          {"lr_factor", c.lr_factor},
          {"lr_patience", c.lr_patience},
          {"min_lr", c.min_lr},
          {"patience", c.patience},
          {"min_delta", c.min_delta},
          {"limit", c.limit},
          {"target", c.target}};
}

namespace {

// An integer field, range-checked: nlohmann's get<int>() casts a float such as 1e30 to int, which
// is undefined behaviour (found by fuzz_checkpoint), and wraps integers that do not fit.
template <class T>
T int_from(const json& j, const std::string& what) {
  static_assert(std::is_integral_v<T>);
  if (!j.is_number_integer()) throw Error(what + ": expected an integer, found " + j.dump());
  if (j.is_number_unsigned()) {
    const auto v = j.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) throw Error(what + ": integer " + j.dump() + " out of range");
    return static_cast<T>(v);
  }
  const auto v = j.get<std::int64_t>();
  if constexpr (std::is_unsigned_v<T>) {
    if (v < 0) throw Error(what + ": integer " + j.dump() + " out of range");
  } else if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
             v > static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
    throw Error(what + ": integer " + j.dump() + " out of range");
  }
  return static_cast<T>(v);
}

template <class E>
E enum_from(const std::string& s, std::initializer_list<E> values, const char* what) {
  for (E v : values)
    if (s == to_string(v)) return v;
  throw Error(std::string("unknown ") + what + " '" + s + "'");
}

TrainConfig config_from(const json& j) {
  TrainConfig c;
  c.model.inputs = int_from<int>(j.at("inputs"), "inputs");
  const json& hidden = j.at("hidden");
  if (!hidden.is_array()) throw Error("hidden: expected an array, found " + hidden.dump());
  c.model.hidden.clear();
  for (const json& w : hidden) c.model.hidden.push_back(int_from<int>(w, "hidden"));
  c.model.outputs = int_from<int>(j.at("outputs"), "outputs");
  c.model.activation = activation_from_name(j.at("activation").get<std::string>());
  c.model.loss = enum_from(j.at("loss").get<std::string>(), {Loss::xent, Loss::l2}, "loss");
  c.optimizer.kind = enum_from(j.at("optimizer").get<std::string>(),
                               {OptimizerKind::sgd, OptimizerKind::momentum, OptimizerKind::adam}, "optimizer");
  c.optimizer.lr = j.at("lr").get<float>();
  c.optimizer.momentum = j.at("momentum").get<float>();
  c.optimizer.nesterov = j.at("nesterov").get<bool>();
  c.optimizer.beta1 = j.at("beta1").get<float>();
  c.optimizer.beta2 = j.at("beta2").get<float>();
  c.optimizer.eps = j.at("eps").get<float>();
  c.optimizer.l2 = j.at("l2").get<float>();
  c.batch = int_from<int>(j.at("batch"), "batch");
  c.epochs = int_from<int>(j.at("epochs"), "epochs");
  c.val = int_from<int>(j.at("val"), "val");
  c.seed = int_from<std::uint64_t>(j.at("seed"), "seed");
  c.schedule = enum_from(j.at("schedule").get<std::string>(),
                         {Schedule::constant, Schedule::cosine, Schedule::step}, "schedule");
  // Added in version 2; a version-1 checkpoint has none of them (their defaults are "off").
  if (j.contains("dropout")) {
    c.optimizer.dropout = j.at("dropout").get<float>();
    c.lr_step = int_from<int>(j.at("lr_step"), "lr_step");
    c.lr_factor = j.at("lr_factor").get<float>();
    c.lr_patience = int_from<int>(j.at("lr_patience"), "lr_patience");
    c.min_lr = j.at("min_lr").get<float>();
    c.patience = int_from<int>(j.at("patience"), "patience");
    c.min_delta = j.at("min_delta").get<float>();
    c.limit = int_from<int>(j.at("limit"), "limit");
    c.target = j.at("target").get<double>();
  }
  return c;
}

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
  e.epoch = int_from<int>(m.at("epoch"), "epoch");
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
  const json header = {{"config", config_to_json(ck.config)},
                       {"step", ck.state.step},
                       {"done", done},
                       {"partial",
                        {{"loss_sum", p.loss_sum}, {"correct", p.correct}, {"samples", p.samples}, {"batches", p.batches}}},
                       {"partial_s", ck.progress.partial_s}};
  const std::string h = header.dump();
  std::vector<std::uint8_t> out(kMagic, kMagic + 8);
  put<std::uint32_t>(out, kCheckpointVersion);
  put<std::uint64_t>(out, h.size());
  out.insert(out.end(), h.begin(), h.end());
  put<std::uint64_t>(out, ck.state.params.size());
  const std::vector<float> none;
  const std::vector<float>& s1 = ck.state.optimizer.size() > 0 ? ck.state.optimizer[0].values : none;
  const std::vector<float>& s2 = ck.state.optimizer.size() > 1 ? ck.state.optimizer[1].values : none;
  put<std::uint64_t>(out, s1.size());
  put<std::uint64_t>(out, s2.size());
  put<std::uint64_t>(out, ck.progress.best_params.size());
  put_floats(out, ck.state.params);
  put_floats(out, s1);
  put_floats(out, s2);
  put_floats(out, ck.progress.best_params);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(crc32(0L, out.data(), static_cast<uInt>(out.size()))));
  write_file_atomically(path, out);
}

Checkpoint read_checkpoint(const std::filesystem::path& path) {
  return parse_checkpoint(read_whole_file(path, kMaxFile, "an mnist_gpu checkpoint"), path.string());
}

Checkpoint parse_checkpoint(const std::vector<std::uint8_t>& b, const std::string& name) {
  auto fail = [&](const std::string& what) -> Error { return Error(name + ": " + what); };
  // Version 1 has three array counts; version 2 adds the best epoch's parameters (early stopping).
  const std::size_t fixed_v1 = 8 + 4 + 8 + 3 * 8 + 4;
  if (b.size() < 8 || std::memcmp(b.data(), kMagic, 8) != 0)
    throw fail("not an mnist_gpu checkpoint (no MNGPUCKP magic)");
  if (b.size() < fixed_v1) throw fail("truncated (" + std::to_string(b.size()) + " bytes)");
  std::size_t at = 8;
  auto get_u32 = [&] { std::uint32_t v; std::memcpy(&v, b.data() + at, 4); at += 4; return v; };
  auto get_u64 = [&] { std::uint64_t v; std::memcpy(&v, b.data() + at, 8); at += 8; return v; };
  const std::uint32_t version = get_u32();
  if (version < 1 || version > kCheckpointVersion)
    throw fail("checkpoint format version " + std::to_string(version) + ", this build reads versions 1 to " +
               std::to_string(kCheckpointVersion) + (version > kCheckpointVersion ? " (written by a newer mnist_gpu)" : ""));
  const std::size_t fixed = fixed_v1 + (version >= 2 ? 8 : 0);
  if (b.size() < fixed) throw fail("truncated (" + std::to_string(b.size()) + " bytes)");
  std::uint32_t stored_crc;
  std::memcpy(&stored_crc, b.data() + b.size() - 4, 4);
  if (static_cast<std::uint32_t>(crc32(0L, b.data(), static_cast<uInt>(b.size() - 4))) != stored_crc)
    throw fail("checksum mismatch: the file is corrupt or truncated");
  const std::uint64_t header_bytes = get_u64();
  if (header_bytes > b.size() - fixed) throw fail("header length " + std::to_string(header_bytes) + " runs past the end");
  Checkpoint ck;
  json header;
  try {
    header = json::parse(b.begin() + static_cast<std::ptrdiff_t>(at),
                         b.begin() + static_cast<std::ptrdiff_t>(at + header_bytes));
    at += header_bytes;
    ck.config = config_from(header.at("config"));
    check_config(ck.config);
    ck.state.step = int_from<long long>(header.at("step"), "step");
    for (const auto& m : header.at("done")) ck.progress.done.push_back(epoch_from_json(m));
    const json& p = header.at("partial");
    ck.progress.partial.loss_sum = p.at("loss_sum").get<double>();
    ck.progress.partial.correct = int_from<unsigned long long>(p.at("correct"), "correct");
    ck.progress.partial.samples = int_from<long long>(p.at("samples"), "samples");
    ck.progress.partial.batches = int_from<long long>(p.at("batches"), "batches");
    ck.progress.partial_s = header.at("partial_s").get<double>();
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

  const std::uint64_t n_params = get_u64(), n_s1 = get_u64(), n_s2 = get_u64();
  const std::uint64_t n_best = version >= 2 ? get_u64() : 0;
  const std::uint64_t expect = ParamLayout(ck.config.model).size;
  const bool needs_s1 = ck.config.optimizer.kind != OptimizerKind::sgd;
  const bool needs_s2 = ck.config.optimizer.kind == OptimizerKind::adam;
  if (n_params != expect || n_s1 != (needs_s1 ? expect : 0) || n_s2 != (needs_s2 ? expect : 0) ||
      (n_best != 0 && n_best != expect))
    throw fail("array sizes (" + std::to_string(n_params) + ", " + std::to_string(n_s1) + ", " + std::to_string(n_s2) +
               ", " + std::to_string(n_best) + ") do not match the model's " + std::to_string(expect) +
               " parameters and its optimizer");
  if (b.size() - 4 - at != (n_params + n_s1 + n_s2 + n_best) * sizeof(float))
    throw fail("file size does not match its arrays (truncated or trailing bytes)");
  auto take = [&](std::uint64_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    // An empty vector's data() may be null, and memcpy to null is undefined even for 0 bytes
    // (sgd checkpoints have no optimizer state).
    if (!v.empty()) std::memcpy(v.data(), b.data() + at, v.size() * sizeof(float));
    at += v.size() * sizeof(float);
    return v;
  };
  ck.state.params = take(n_params);
  const std::vector<std::string> names = optimizer_state_names(ck.config.optimizer.kind);
  for (std::size_t i = 0; i < names.size(); ++i) ck.state.optimizer.push_back({names[i], take(i == 0 ? n_s1 : n_s2)});
  ck.progress.best_params = take(n_best);
  return ck;
}

}  // namespace mnist_gpu
