// The GEMM autotune cache (tune_cache.hpp): keys, the JSON file and its checks, where it lives.
#include "mnist_gpu/tune_cache.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>
#include <vector>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/json_int.hpp"

namespace mnist_gpu {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kFormat = "mnist_gpu GEMM tune cache";
constexpr int kMaxCandidates = 1000;  // cuBLASLt offers a few dozen at most

std::string cc_text(const TuneDevice& d) { return std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor); }

std::string word_hex(std::uint64_t w) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(w));
  return buf;
}

// 16 lower- or upper-case hex digits, else nullopt.
std::optional<std::uint64_t> hex_word(const std::string& s) {
  if (s.size() != 16) return std::nullopt;
  std::uint64_t w = 0;
  for (char ch : s) {
    int v;
    if (ch >= '0' && ch <= '9') v = ch - '0';
    else if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
    else if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
    else return std::nullopt;
    w = w << 4 | static_cast<std::uint64_t>(v);
  }
  return w;
}

// Why an entry cannot be stored, or "".
std::string entry_problem(const TuneEntry& e) {
  if (!std::isfinite(e.median_us) || e.median_us <= 0)
    return "median_us " + json(e.median_us).dump() + " is not a time (expected a finite number > 0)";
  if (e.candidates < 1 || e.candidates > kMaxCandidates)
    return "candidates " + std::to_string(e.candidates) + " out of range (expected 1.." +
           std::to_string(kMaxCandidates) + ")";
  return "";
}

TuneEntry entry_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected an object, found " + j.dump());
  TuneEntry e;
  const auto field = [&](const char* name) -> const json& {
    const auto it = j.find(name);
    if (it == j.end()) throw Error(where + ": missing '" + name + "'");
    return *it;
  };
  const json& algo = field("algo");
  if (!algo.is_array() || algo.size() != e.algo.size())
    throw Error(where + ": 'algo' must be an array of " + std::to_string(e.algo.size()) +
                " 16-digit hex words, found " + (algo.is_array() ? std::to_string(algo.size()) + " items" : algo.dump()));
  for (std::size_t i = 0; i < e.algo.size(); ++i) {
    const std::optional<std::uint64_t> w = algo[i].is_string() ? hex_word(algo[i].get<std::string>()) : std::nullopt;
    if (!w) throw Error(where + ": algo[" + std::to_string(i) + "] is " + algo[i].dump() + ", expected 16 hex digits");
    e.algo[i] = *w;
  }
  const json& us = field("median_us");
  if (!us.is_number()) throw Error(where + ": median_us: expected a number, found " + us.dump());
  e.median_us = us.get<double>();
  e.candidates = json_int<int>(field("candidates"), where + ": candidates");
  if (const std::string bad = entry_problem(e); !bad.empty()) throw Error(where + ": " + bad);
  return e;
}

std::string env_text(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

std::string TuneDevice::text() const {
  return gpu + ", cc " + cc_text(*this) + ", cuBLASLt " + std::to_string(lt_version);
}

std::string GemmKey::gemm_text() const {
  return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " op=" +
         (trans_a ? "T" : "N") + (trans_b ? "T" : "N") + " " + precision + " " + epilogue;
}

std::string GemmKey::text() const {
  return device.gpu + "|cc" + cc_text(device) + "|lt" + std::to_string(device.lt_version) + "|" + gemm_text();
}

const TuneEntry* TuneCache::find(const GemmKey& key) const {
  if (key.device != device_) return nullptr;
  const auto it = entries_.find(key.gemm_text());
  return it == entries_.end() ? nullptr : &it->second;
}

void TuneCache::put(const GemmKey& key, const TuneEntry& entry) {
  if (key.device != device_)
    throw Error("tune cache: key " + key.text() + " is not for this cache's device (" + device_.text() + ")");
  if (const std::string bad = entry_problem(entry); !bad.empty())
    throw Error("tune cache: entry for " + key.gemm_text() + ": " + bad);
  entries_[key.gemm_text()] = entry;
  changed_ = true;
}

std::string TuneCache::to_json_text() const {
  json entries = json::object();
  for (const auto& [gemm, e] : entries_) {
    json algo = json::array();
    for (std::uint64_t w : e.algo) algo.push_back(word_hex(w));
    entries[gemm] = {{"algo", algo}, {"median_us", e.median_us}, {"candidates", e.candidates}};
  }
  const json j = {{"format", kFormat},          {"version", kTuneCacheVersion},
                  {"gpu", device_.gpu},         {"cc_major", device_.cc_major},
                  {"cc_minor", device_.cc_minor}, {"cublaslt", device_.lt_version},
                  {"entries", entries}};
  return j.dump(1) + "\n";
}

TuneCache TuneCache::parse(const std::string& text, const TuneDevice& expect, const std::string& name) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(name + ": not a tune cache: corrupt or truncated JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("format") || j["format"] != kFormat)
    throw Error(name + ": not a tune cache (no \"format\": \"" + kFormat + "\")");
  const auto field = [&](const char* key) -> const json& {
    const auto it = j.find(key);
    if (it == j.end()) throw Error(name + ": missing '" + key + "'");
    return *it;
  };
  try {
    const int version = json_int<int>(field("version"), "version");
    if (version > kTuneCacheVersion)
      throw Error("format version " + std::to_string(version) + " is newer than this mnist_gpu reads (" +
                  std::to_string(kTuneCacheVersion) + ")");
    if (version < 1) throw Error("format version " + std::to_string(version) + " is not a version (expected >= 1)");
    TuneDevice dev;
    const json& gpu = field("gpu");
    if (!gpu.is_string()) throw Error("gpu: expected a name, found " + gpu.dump());
    dev.gpu = gpu.get<std::string>();
    dev.cc_major = json_int<int>(field("cc_major"), "cc_major");
    dev.cc_minor = json_int<int>(field("cc_minor"), "cc_minor");
    dev.lt_version = json_int<long long>(field("cublaslt"), "cublaslt");
    if (dev != expect) throw Error("made for " + dev.text() + ", not for this " + expect.text());
    const json& entries = field("entries");
    if (!entries.is_object()) throw Error("entries: expected an object, found " + entries.dump());
    TuneCache cache(expect);
    for (const auto& [gemm, e] : entries.items()) cache.entries_[gemm] = entry_from_json(e, "entry '" + gemm + "'");
    return cache;
  } catch (const Error& e) {
    throw Error(name + ": " + e.what());
  }
}

TuneCache TuneCache::load(const fs::path& path, const TuneDevice& expect) {
  const std::vector<std::uint8_t> bytes = read_whole_file(path, kTuneCacheMaxBytes, "a tune cache file");
  return parse(std::string(bytes.begin(), bytes.end()), expect, path.string());
}

void TuneCache::save(const fs::path& path) const {
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw Error(path.parent_path().string() + ": cannot create the tune cache folder (" + ec.message() + ")");
  }
  const std::string text = to_json_text();
  write_file_atomically(path, std::vector<std::uint8_t>(text.begin(), text.end()));
}

TuneCacheEnv TuneCacheEnv::from_environment() {
  return TuneCacheEnv{env_text("MNIST_GPU_TUNE_CACHE"), env_text("XDG_CACHE_HOME"), env_text("HOME")};
}

std::string tune_cache_file_name(const TuneDevice& device) {
  std::string name;
  for (char ch : device.gpu) {
    const bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z');
    if (alnum)
      name += (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
    else if (!name.empty() && name.back() != '_')
      name += '_';
    if (name.size() >= 64) break;  // a file name, not the whole marketing string
  }
  while (!name.empty() && name.back() == '_') name.pop_back();
  if (name.empty()) name = "gpu";
  return name + "-sm" + std::to_string(device.cc_major) + std::to_string(device.cc_minor) + "-lt" +
         std::to_string(device.lt_version) + ".json";
}

fs::path tune_cache_path(const TuneDevice& device, const TuneCacheEnv& env) {
  if (!env.override_path.empty()) return env.override_path;
  if (!env.xdg_cache_home.empty() && fs::path(env.xdg_cache_home).is_absolute())
    return fs::path(env.xdg_cache_home) / "mnist_gpu" / tune_cache_file_name(device);
  if (!env.home.empty()) return fs::path(env.home) / ".cache" / "mnist_gpu" / tune_cache_file_name(device);
  return {};
}

OpenedTuneCache open_tune_cache(const TuneDevice& device, const TuneCacheEnv& env) {
  OpenedTuneCache out{TuneCache(device), tune_cache_path(device, env), std::nullopt};
  if (out.path.empty()) return out;
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(out.path, ec);
  if (st.type() == fs::file_type::not_found) return out;  // the first run on this GPU
  try {
    out.cache = TuneCache::load(out.path, device);
  } catch (const Error& e) {
    out.warning = std::string(e.what()) + "; tuning afresh";
  }
  return out;
}

std::optional<std::string> save_tune_cache(const OpenedTuneCache& opened) {
  if (opened.path.empty() || !opened.cache.changed()) return std::nullopt;
  try {
    opened.cache.save(opened.path);
  } catch (const Error& e) {
    return std::string(e.what()) + "; the tuned GEMM choices are not kept";
  }
  return std::nullopt;
}

TuneLookup lookup_or_tune(TuneCache& cache, const GemmKey& key, const std::function<TuneEntry()>& tune) {
  if (const TuneEntry* e = cache.find(key)) return {*e, true};
  TuneLookup out{tune(), false};
  cache.put(key, out.entry);
  return out;
}

}  // namespace mnist_gpu
