// The MLP on the CPU, built from the cpu:: ops: forward, loss, backward into a flat gradient
// arena. Templated so that finite-difference checks run the very same code in float64.
#pragma once
#include <cstdint>
#include <vector>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu {

template <class T>
class CpuNet {
 public:
  /// All workspace is allocated here, for batches of up to `max_batch` rows; none in a step.
  /// `dropout` > 0: training steps drop hidden units with that probability, masks drawn from
  /// (seed, step, layer) as dropout.hpp defines. `input_dropout` > 0: training steps also drop
  /// input pixels (layer kInputDropoutLayer's masks) before the first layer.
  CpuNet(const ModelSpec& spec, int max_batch, float dropout = 0.0f, std::uint64_t seed = 0,
         float input_dropout = 0.0f);

  const ModelSpec& spec() const { return spec_; }
  const ParamLayout& layout() const { return layout_; }
  int max_batch() const { return max_batch_; }
  std::vector<T>& params() { return params_; }  // (layout.size)
  const std::vector<T>& grads() const { return grads_; }  // (layout.size)

  /// Runs x (batch, inputs) through the net; returns the outputs (batch, outputs). `step` > 0
  /// marks a training forward pass of optimizer step `step` (1-based): dropout applies (when on)
  /// with that step's masks. 0: evaluation, no dropout.
  const T* forward(const T* x, int batch, long long step = 0);

  /// After forward(x, batch, step): the loss's gradient (mean over the batch) back through every
  /// layer (and the same dropout masks) into grads(). Adds the summed loss and the correct count
  /// to the accumulators.
  void backward(const T* x, const std::uint8_t* labels, int batch, double* loss_sum,
                unsigned long long* correct);

  /// After forward: the loss and correct count only (evaluation).
  void loss(const std::uint8_t* labels, int batch, double* loss_sum, unsigned long long* correct) const;

  /// After forward: the last outputs (batch, outputs).
  const T* output() const { return acts_.back().data(); }

  // The same passes stage by stage (step_program.hpp), as a training step runs them:
  // begin(step), forward_layer(0 .. L-1), loss_gradient, backward_layer(L-1 .. 0).
  /// Starts a pass of optimizer step `step` (0: evaluation, no dropout).
  void begin(long long step) { step_ = step; }
  /// Layer li of the forward pass on x (batch, inputs).
  void forward_layer(const T* x, int batch, std::size_t li);
  /// The loss's gradient (mean over the batch) into the backward pass's first delta; adds the
  /// summed loss and the correct count to the accumulators.
  void loss_gradient(const std::uint8_t* labels, int batch, double* loss_sum, unsigned long long* correct);
  /// Layer li's weight and bias gradients, then (li > 0) the delta of its input.
  void backward_layer(const T* x, int batch, std::size_t li);

 private:
  ModelSpec spec_;
  ParamLayout layout_;
  int max_batch_;
  std::vector<T> params_, grads_;
  float dropout_;
  std::uint64_t seed_;
  float input_dropout_;
  std::vector<T> kept_input_;         // (max_batch, inputs): x after input dropout (when on)
  long long step_ = 0;                // the last forward pass's step (0: evaluation)
  std::vector<std::vector<T>> acts_;  // acts_[l]: (max_batch, layers[l].out), after activation
  std::vector<std::vector<T>> kept_;  // kept_[l]: acts_[l] after dropout (hidden layers, dropout on)
  // preact_[l]: (max_batch, layers[l].out), the pre-activation z of hidden layer l, for an
  // activation whose backward reads z (activation.hpp); empty otherwise.
  std::vector<std::vector<T>> preact_;
  std::vector<T> delta_a_, delta_b_;  // (max_batch, max(width)) each: ping-pong for backprop
  // spec.precision other than fp32: the GEMM operands rounded as the tensor cores take them
  // (precision.hpp) before a float accumulation; empty at fp32.
  std::vector<T> wq_;                 // (layout.size): the weights rounded (biases unused)
  std::vector<T> xq_, dq_;            // (max_batch, max(width)): a layer input / a delta rounded
  T* delta_ = nullptr;                // the delta of the layer backward_layer works on next
  T* next_ = nullptr;                 // the other buffer

  bool dropping() const { return dropout_ > 0.0f && step_ > 0; }
  bool dropping_input() const { return input_dropout_ > 0.0f && step_ > 0; }
  // The input of layer li in the last forward pass: x, or the previous layer's (kept) outputs.
  const T* layer_input(const T* x, std::size_t li) const;
  // What act_backward reads for hidden layer li: its pre-activation z when kept, else its output.
  bool rounding() const { return spec_.precision != Precision::fp32; }
  // The GEMM operands of layer li at spec.precision: the arrays themselves at fp32, else their
  // rounded copies.
  const T* gemm_weights(std::size_t li);
  const T* gemm_operand(const T* v, std::size_t n, std::vector<T>& scratch);
  const T* act_saved(std::size_t li) const { return preact_[li].empty() ? acts_[li].data() : preact_[li].data(); }
};

extern template class CpuNet<float>;
extern template class CpuNet<double>;

}  // namespace mnist_gpu
