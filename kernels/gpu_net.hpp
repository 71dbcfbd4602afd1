// The MLP on the GPU, the twin of CpuNet (include/mnist_gpu/cpu_net.hpp): the same layout, the same
// op sequence, device buffers allocated once. Host-only header.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda_resources.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu::gpu {

class GpuNet {
 public:
  /// All device workspace for batches of up to `max_batch` rows; none is allocated in a step.
  GpuNet(const ModelSpec& spec, int max_batch, cudaStream_t stream, cublasHandle_t cublas);

  const ModelSpec& spec() const { return spec_; }
  const ParamLayout& layout() const { return layout_; }
  float* params() { return params_.get(); }  // (layout.size)
  float* grads() { return grads_.get(); }    // (layout.size)

  /// x (batch, inputs) on the device; returns the device outputs (batch, outputs).
  const float* forward(const float* x, int batch);
  /// After forward: loss gradient back into grads(); accumulators are device pointers.
  void backward(const float* x, const std::uint8_t* labels, int batch, double* loss_sum,
                unsigned long long* correct);
  /// After forward: loss and correct count only.
  void loss(const std::uint8_t* labels, int batch, double* loss_sum, unsigned long long* correct);
  const float* output() const { return acts_.back().get(); }

 private:
  ModelSpec spec_;
  ParamLayout layout_;
  int max_batch_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  DeviceBuffer<float> params_, grads_;
  std::vector<DeviceBuffer<float>> acts_;       // acts_[l]: (max_batch, layers[l].out)
  DeviceBuffer<float> delta_a_, delta_b_;       // (max_batch, widest) each
};

}  // namespace mnist_gpu::gpu
