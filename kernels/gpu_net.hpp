// The MLP on the GPU, the twin of CpuNet (include/mnist_gpu/cpu_net.hpp): the same layout, the same
// op sequence, device buffers allocated once. Host-only header.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda_resources.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu::gpu {

/// A dropout launch captured into a training-step graph: what is needed to rewrite its mask for
/// another step (GpuNet::set_dropout_step).
struct DropoutNode {
  cudaGraphNode_t node = nullptr;
  const float* a = nullptr;
  float* out = nullptr;
  std::size_t n = 0;
  int layer = 0;
};

class GpuNet {
 public:
  /// All device workspace for batches of up to `max_batch` rows; none is allocated in a step.
  /// `dropout` > 0: training passes drop hidden units, with CpuNet's masks (dropout.hpp).
  GpuNet(const ModelSpec& spec, int max_batch, cudaStream_t stream, cublasHandle_t cublas, float dropout = 0.0f,
         std::uint64_t seed = 0);

  const ModelSpec& spec() const { return spec_; }
  const ParamLayout& layout() const { return layout_; }
  float* params() { return params_.get(); }  // (layout.size)
  float* grads() { return grads_.get(); }    // (layout.size)

  /// x (batch, inputs) on the device; returns the device outputs (batch, outputs). `step` > 0:
  /// the training pass of optimizer step `step` (dropout on, when configured); 0: evaluation.
  /// `captured`: the stream is capturing a graph; each dropout launch's node is appended.
  const float* forward(const float* x, int batch, long long step = 0, std::vector<DropoutNode>* captured = nullptr);
  /// After forward: loss gradient back into grads(); accumulators are device pointers.
  void backward(const float* x, const std::uint8_t* labels, int batch, double* loss_sum,
                unsigned long long* correct, std::vector<DropoutNode>* captured = nullptr);
  /// Rewrites the masks of captured dropout nodes in `exec` to those of optimizer step `step`.
  void set_dropout_step(cudaGraphExec_t exec, const std::vector<DropoutNode>& nodes, long long step) const;
  /// After forward: loss and correct count only.
  void loss(const std::uint8_t* labels, int batch, double* loss_sum, unsigned long long* correct);
  const float* output() const { return acts_.back().get(); }

 private:
  ModelSpec spec_;
  ParamLayout layout_;
  int max_batch_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  float dropout_;
  std::uint64_t seed_;
  long long step_ = 0;                          // the last forward pass's step (0: evaluation)
  DeviceBuffer<float> params_, grads_;
  std::vector<DeviceBuffer<float>> acts_;       // acts_[l]: (max_batch, layers[l].out)
  std::vector<DeviceBuffer<float>> kept_;       // kept_[l]: acts_[l] after dropout (hidden, dropout on)
  DeviceBuffer<float> delta_a_, delta_b_;       // (max_batch, widest) each

  bool dropping() const { return dropout_ > 0.0f && step_ > 0; }
  const float* layer_input(const float* x, std::size_t li) const;
};

}  // namespace mnist_gpu::gpu
