// Device (gpu_device.hpp): one GPU's streams, cuBLAS handle, accounting and dataset copies.
#include <zlib.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "gpu_device.hpp"
#include "lt_autotune.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {
namespace {

// Checks that `id` is usable and makes it current: runs before the streams and the handle are
// made, so that they belong to this GPU.
std::string select(int id) {
  const DeviceProbe probe = probe_device(id);
  if (!probe.usable) throw Error("no usable GPU: " + probe.reason);
  CUDA_CHECK(cudaSetDevice(id));
  return probe.name;
}

}  // namespace

Device::Device(int id) : id_(id), name_(select(id)), cublas_(compute_.get()) {}

LtContext Device::lt() {
  activate();
  if (!lt_.get()) {
    lt_ = LtHandle::make();
    lt_workspace_ = DeviceBuffer<unsigned char>(kLtWorkspaceBytes);
  }
  return {lt_.get(), lt_workspace_.get(), lt_workspace_.bytes()};
}

LtTuning& Device::tuning() {
  activate();
  if (!tuning_) {
    tuning_ = std::make_unique<LtTuning>(
        LtTuning{open_tune_cache(current_tune_device(), TuneCacheEnv::from_environment()), {}});
    if (tuning_->opened.warning) tuning_->warnings.push_back(*tuning_->opened.warning);
  }
  return *tuning_;
}

// Best effort, errors ignored (a destructor must not throw): nothing queued still uses the
// streams when they go.
Device::~Device() {
  cudaSetDevice(id_);
  cudaStreamSynchronize(copy_.get());
  cudaStreamSynchronize(compute_.get());
}

std::shared_ptr<Device> Device::shared(int id) {
  static std::mutex mutex;
  static std::map<int, std::weak_ptr<Device>> live;
  const std::lock_guard<std::mutex> lock(mutex);
  if (std::shared_ptr<Device> d = live[id].lock()) {
    d->activate();
    return d;
  }
  auto d = std::make_shared<Device>(id);
  live[id] = d;
  return d;
}

void Device::activate() const { CUDA_CHECK(cudaSetDevice(id_)); }

std::uint64_t Device::fingerprint(const Dataset& data) {
  const std::size_t n = data.images.size(), edge = std::min<std::size_t>(n, 65536);
  uLong crc = crc32(0L, data.labels.data(), static_cast<uInt>(data.labels.size()));
  crc = crc32(crc, data.images.data(), static_cast<uInt>(edge));
  crc = crc32(crc, data.images.data() + (n - edge), static_cast<uInt>(edge));
  return (static_cast<std::uint64_t>(data.count) << 32) ^ static_cast<std::uint64_t>(crc) ^ 0x9E3779B97F4A7C15ull;
}

std::shared_ptr<const DeviceData> Device::data(const Dataset& data, int pixels, const char* who) {
  if (data.pixels() != pixels) throw Error(std::string(who) + ": image size does not match the model input");
  const std::uint64_t key = fingerprint(data);
  data_.erase(std::remove_if(data_.begin(), data_.end(), [](const auto& w) { return w.expired(); }), data_.end());
  for (const auto& w : data_)
    if (auto d = w.lock(); d && d->key == key) return d;
  auto d = std::make_shared<DeviceData>();
  d->key = key;
  d->images = DeviceBuffer<std::uint8_t>(data.images.size());
  d->labels = DeviceBuffer<std::uint8_t>(data.labels.size());
  // On the compute stream (non-blocking streams do not wait for the legacy default stream).
  CUDA_CHECK(cudaMemcpyAsync(d->images.get(), data.images.data(), data.images.size(), cudaMemcpyHostToDevice,
                             compute()));
  CUDA_CHECK(cudaMemcpyAsync(d->labels.get(), data.labels.data(), data.labels.size(), cudaMemcpyHostToDevice,
                             compute()));
  compute_.sync();
  data_.push_back(d);
  return d;
}

}  // namespace mnist_gpu::gpu
