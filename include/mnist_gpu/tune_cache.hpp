// The on-disk cache of tuned GEMM algorithms: per GEMM (shape, transposes, precision, epilogue),
// the cuBLASLt algorithm that was timed fastest, kept in one JSON file per GPU model and cuBLASLt
// version so that the next start does not tune again. Host-only: the timing is kernels/lt_autotune.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace mnist_gpu {

/// What a tuned choice depends on beyond the GEMM itself: the GPU model and the library version.
/// A cache file holds the choices of one TuneDevice only.
struct TuneDevice {
  std::string gpu;     ///< the device name, "NVIDIA H200"
  int cc_major = 0;    ///< compute capability, 9 for sm_90
  int cc_minor = 0;
  long long lt_version = 0;  ///< cublasLtGetVersion(), e.g. 130001
  bool operator==(const TuneDevice& o) const {
    return gpu == o.gpu && cc_major == o.cc_major && cc_minor == o.cc_minor && lt_version == o.lt_version;
  }
  bool operator!=(const TuneDevice& o) const { return !(*this == o); }
  /// "NVIDIA H200, cc 9.0, cuBLASLt 130001", for messages.
  std::string text() const;
};

/// One GEMM as cuBLASLt sees it: D(m, n) = op(A)(m, k) op(B)(k, n) (column-major, as cuBLASLt
/// counts), on `device`, in `precision` ("fp32", "tf32", "bf16") with `epilogue` ("default",
/// "bias", "relu_aux_bias", "drelu_bgrad", "bgradb", ...).
struct GemmKey {
  TuneDevice device;
  int m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  std::string precision = "fp32";
  std::string epilogue = "default";
  /// The GEMM alone: "m=256 n=512 k=784 op=NT fp32 relu_aux_bias".
  std::string gemm_text() const;
  /// The whole key: "NVIDIA H200|cc9.0|lt130001|m=256 n=512 k=784 op=NT fp32 relu_aux_bias".
  std::string text() const;
};

/// The chosen algorithm (cublasLtMatmulAlgo_t's 8 words, opaque here) and how it was chosen.
struct TuneEntry {
  std::array<std::uint64_t, 8> algo{};
  double median_us = 0;  ///< its median time per GEMM, microseconds (> 0)
  int candidates = 0;    ///< how many algorithms were timed (>= 1)
  bool operator==(const TuneEntry& o) const {
    return algo == o.algo && median_us == o.median_us && candidates == o.candidates;
  }
};

/// The current format version of a cache file; a file of a newer version is refused.
inline constexpr int kTuneCacheVersion = 1;
/// The largest cache file read (thousands of entries; a bigger one is not ours).
inline constexpr std::uint64_t kTuneCacheMaxBytes = 4u << 20;

/// The tuned choices for one TuneDevice.
class TuneCache {
 public:
  explicit TuneCache(TuneDevice device) : device_(std::move(device)) {}
  const TuneDevice& device() const { return device_; }
  /// The entry of `key`; nullptr when there is none or the key is for another device.
  const TuneEntry* find(const GemmKey& key) const;
  /// Adds or replaces the entry of `key`; Error when the key is for another device or the entry
  /// is invalid (time not finite and > 0, no candidate).
  void put(const GemmKey& key, const TuneEntry& entry);
  std::size_t size() const { return entries_.size(); }
  /// Whether put() changed it since it was made or loaded (it is worth saving).
  bool changed() const { return changed_; }

  /// The file's text: {"format", "version", "gpu", "cc", "cublaslt", "entries": {key: {...}}}.
  std::string to_json_text() const;
  /// Back from to_json_text's text; Error "<name>: <what is wrong>" for anything but a well-formed
  /// cache of format version <= kTuneCacheVersion made for `expect`.
  static TuneCache parse(const std::string& text, const TuneDevice& expect, const std::string& name);
  /// Reads `path` (a regular file of at most kTuneCacheMaxBytes) and parses it. Error naming the
  /// file; a missing file is an error here too (open_tune_cache treats it as empty).
  static TuneCache load(const std::filesystem::path& path, const TuneDevice& expect);
  /// Writes the file atomically, creating its folder first. Error naming the file or folder.
  void save(const std::filesystem::path& path) const;

 private:
  TuneDevice device_;
  std::map<std::string, TuneEntry> entries_;  // by GemmKey::gemm_text()
  bool changed_ = false;
};

/// The environment the cache's location comes from (tests pass their own).
struct TuneCacheEnv {
  std::string override_path;   ///< $MNIST_GPU_TUNE_CACHE: this file, whatever the device
  std::string xdg_cache_home;  ///< $XDG_CACHE_HOME (used only when absolute, as the XDG spec says)
  std::string home;            ///< $HOME
  static TuneCacheEnv from_environment();
};

/// The cache file's name for a device: the GPU name in lower case, runs of anything but letters
/// and digits as one '_', then the compute capability and cuBLASLt version:
/// "nvidia_h200-sm90-lt130001.json".
std::string tune_cache_file_name(const TuneDevice& device);

/// Where the cache of `device` lives: $MNIST_GPU_TUNE_CACHE when set, else
/// $XDG_CACHE_HOME/mnist_gpu/NAME, else $HOME/.cache/mnist_gpu/NAME; empty when none of these is
/// set (no cache).
std::filesystem::path tune_cache_path(const TuneDevice& device, const TuneCacheEnv& env);

/// A cache as a run opens it: never fails. A missing file gives an empty cache; a refused one
/// (corrupt, foreign, newer, not a regular file, too big) an empty cache and a one-line warning
/// naming the file and what is wrong (it will be replaced on save).
struct OpenedTuneCache {
  TuneCache cache;
  std::filesystem::path path;  ///< empty: no cache location (nothing is read or written)
  std::optional<std::string> warning;
};
OpenedTuneCache open_tune_cache(const TuneDevice& device, const TuneCacheEnv& env);

/// Saves `opened.cache` to `opened.path` when it changed and has a path; the warning line when
/// that fails (an unwritable cache folder must not fail a run), nullopt otherwise.
std::optional<std::string> save_tune_cache(const OpenedTuneCache& opened);

/// The cached entry of `key`, or `tune()`'s, which is then put in the cache. `hit` says which.
struct TuneLookup {
  TuneEntry entry;
  bool hit = false;
};
TuneLookup lookup_or_tune(TuneCache& cache, const GemmKey& key, const std::function<TuneEntry()>& tune);

}  // namespace mnist_gpu
