// One GPU as the backends use it: its id, streams, cuBLAS handle and workspace, its memory
// accounting and a cache of datasets copied to it. Several backends (models) of one process share
// a Device (Device::shared) and so one copy of each dataset on it.
// Host-only header: compiles with g++ and nvcc.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda_resources.hpp"
#include "lt_gemm.hpp"
#include "mnist_gpu/dataset.hpp"

namespace mnist_gpu::gpu {

/// A dataset on the device: images (count, pixels) and labels (count).
struct DeviceData {
  std::uint64_t key = 0;  ///< fingerprint(dataset)
  DeviceBuffer<std::uint8_t> images, labels;
};

class Device {
 public:
  /// GPU `id` (0-based among the visible ones), made current for this thread. Throws Error when
  /// it is not a usable GPU (probe_device(id)'s reason).
  explicit Device(int id);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  /// The Device of GPU `id` that live backends of this process share; made when none lives.
  static std::shared_ptr<Device> shared(int id);

  int id() const { return id_; }
  const std::string& name() const { return name_; }
  /// Makes this GPU current for the calling thread (every entry point of a backend calls it).
  void activate() const;
  cudaStream_t compute() const { return compute_.get(); }
  cudaStream_t copy() const { return copy_.get(); }
  const Stream& compute_stream() const { return compute_; }
  const Stream& copy_stream() const { return copy_; }
  cublasHandle_t cublas() const { return cublas_.get(); }
  /// cuBLASLt's handle and the workspace of the compute stream's GEMMs (--gemm cublaslt): only
  /// nets that run on compute() may use it. Made on the first call (the cuBLAS path pays nothing).
  LtContext lt();
  /// The tune cache of this GPU (--autotune on), opened from disk on first use (a refused file: an
  /// empty cache and a warning in its list); pick_algo adds to it and saves it.
  LtTuning& tuning();
  /// The most bytes of device memory held at once on this GPU by this process's buffers.
  std::uint64_t peak_bytes() const { return device_bytes(id_).peak.load(); }

  /// `data` on this GPU: the copy a live holder already shares, else a new one (copied
  /// synchronously on the compute stream). `who` starts the error of a size mismatch.
  std::shared_ptr<const DeviceData> data(const Dataset& data, int pixels, const char* who);

  /// Which dataset a copy holds: its count, CRC-32 of all labels and of the first and last 64 KiB
  /// of pixels (cheap, ~0.1 ms), so that a new Dataset at a freed one's address is not mistaken
  /// for it.
  static std::uint64_t fingerprint(const Dataset& data);

 private:
  int id_;
  std::string name_;
  Stream compute_, copy_;
  CublasHandle cublas_;
  LtHandle lt_;
  DeviceBuffer<unsigned char> lt_workspace_;
  std::unique_ptr<LtTuning> tuning_;  // opened on first use
  std::vector<std::weak_ptr<const DeviceData>> data_;
};

}  // namespace mnist_gpu::gpu
