// The MLP on the GPU, the twin of CpuNet (include/mnist_gpu/cpu_net.hpp): the same layout, the same
// op sequence, device buffers allocated once. Host-only header.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda_resources.hpp"
#include "step_scalars.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu::gpu {

class GpuNet {
 public:
  /// All device workspace for batches of up to `max_batch` rows; none is allocated in a step.
  /// `dropout` > 0: training passes drop hidden units, with CpuNet's masks (dropout.hpp).
  /// `input_dropout` > 0: training passes also drop input pixels (CpuNet's input masks).
  GpuNet(const ModelSpec& spec, int max_batch, cudaStream_t stream, cublasHandle_t cublas, float dropout = 0.0f,
         std::uint64_t seed = 0, float input_dropout = 0.0f);

  const ModelSpec& spec() const { return spec_; }
  const ParamLayout& layout() const { return layout_; }
  float* params() { return params_.get(); }  // (layout.size)
  float* grads() { return grads_.get(); }    // (layout.size)

  /// x (batch, inputs) on the device; returns the device outputs (batch, outputs). `train` names
  /// a step table: the training pass of the step at its cursor (dropout on, when configured,
  /// with that step's masks); none (table null): evaluation.
  const float* forward(const float* x, int batch, const StepRef& train = {});
  /// After forward: loss gradient back into grads(); accumulators are device pointers.
  void backward(const float* x, const std::uint8_t* labels, int batch, double* loss_sum,
                unsigned long long* correct);
  /// After forward: loss and correct count only.
  void loss(const std::uint8_t* labels, int batch, double* loss_sum, unsigned long long* correct);
  const float* output() const { return acts_.back().get(); }

  // The same passes stage by stage (step_program.hpp), as CpuNet offers them: begin(train),
  // forward_layer(0 .. L-1), loss_gradient, backward_layer(L-1 .. 0).
  void begin(const StepRef& train) { train_ = train; }
  void forward_layer(const float* x, int batch, std::size_t li);
  void loss_gradient(const std::uint8_t* labels, int batch, double* loss_sum, unsigned long long* correct);
  void backward_layer(const float* x, int batch, std::size_t li);

 private:
  ModelSpec spec_;
  ParamLayout layout_;
  int max_batch_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  float dropout_;
  StepRef train_;                               // the pass's step table (none: evaluation)
  std::vector<DropoutLayer> dropout_layers_;    // each hidden layer's masks (dropout on)
  float input_dropout_;
  DropoutLayer input_layer_;                    // the input pixels' masks (input dropout on)
  DeviceBuffer<float> kept_input_;              // (max_batch, inputs): x after input dropout (when on)
  DeviceBuffer<float> params_, grads_;
  std::vector<DeviceBuffer<float>> acts_;       // acts_[l]: (max_batch, layers[l].out)
  std::vector<DeviceBuffer<float>> kept_;       // kept_[l]: acts_[l] after dropout (hidden, dropout on)
  std::vector<DeviceBuffer<float>> preact_;     // preact_[l]: (max_batch, layers[l].out), hidden z when
                                                // the activation's backward reads it (activation.hpp)
  DeviceBuffer<float> delta_a_, delta_b_;       // (max_batch, widest) each
  float* delta_ = nullptr;                      // the delta backward_layer works on next
  float* next_ = nullptr;                       // the other buffer

  bool dropping() const { return dropout_ > 0.0f && train_.table != nullptr; }
  bool dropping_input() const { return input_dropout_ > 0.0f && train_.table != nullptr; }
  const float* layer_input(const float* x, std::size_t li) const;
  // What act_backward reads for hidden layer li: its pre-activation z when kept, else its output.
  const float* act_saved(std::size_t li) const { return preact_[li].size() == 0 ? acts_[li].get() : preact_[li].get(); }
};

}  // namespace mnist_gpu::gpu
