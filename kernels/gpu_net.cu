// GpuNet: forward and backward on the GPU, op for op as CpuNet runs them on the CPU.
#include <algorithm>

#include "gpu_net.hpp"
#include "gpu_ops.hpp"
#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {

GpuNet::GpuNet(const ModelSpec& spec, int max_batch, cudaStream_t stream, cublasHandle_t cublas, float dropout,
               std::uint64_t seed, float input_dropout)
    : spec_(spec), layout_(spec), max_batch_(max_batch), stream_(stream), cublas_(cublas), dropout_(dropout),
      input_dropout_(input_dropout), params_(layout_.size), grads_(layout_.size) {
  if (input_dropout > 0.0f) {
    input_layer_ = make_dropout_layer(input_dropout, seed, kInputDropoutLayer);
    kept_input_ = DeviceBuffer<float>(static_cast<std::size_t>(max_batch) * spec.inputs);
  }
  int widest = spec.inputs;
  for (std::size_t li = 0; li < layout_.layers.size(); ++li) {
    const LayerView& l = layout_.layers[li];
    acts_.emplace_back(static_cast<std::size_t>(max_batch) * l.out);
    const bool hidden = li + 1 < layout_.layers.size();
    kept_.emplace_back(hidden && dropout > 0.0f ? static_cast<std::size_t>(max_batch) * l.out : 0);
    preact_.emplace_back(hidden && keeps_preactivation(spec.activation) ? static_cast<std::size_t>(max_batch) * l.out : 0);
    if (hidden) dropout_layers_.push_back(make_dropout_layer(dropout, seed, static_cast<int>(li)));
    widest = std::max(widest, l.out);
  }
  delta_a_ = DeviceBuffer<float>(static_cast<std::size_t>(max_batch) * widest);
  delta_b_ = DeviceBuffer<float>(static_cast<std::size_t>(max_batch) * widest);
}

const float* GpuNet::layer_input(const float* x, std::size_t li) const {
  if (li == 0) return dropping_input() ? kept_input_.get() : x;
  return dropping() ? kept_[li - 1].get() : acts_[li - 1].get();
}

const float* GpuNet::forward(const float* x, int batch, const StepRef& train) {
  if (batch < 0 || batch > max_batch_) throw Error("GpuNet::forward: batch out of range");
  begin(train);
  for (std::size_t li = 0; li < layout_.layers.size(); ++li) forward_layer(x, batch, li);
  return output();
}

void GpuNet::forward_layer(const float* x, int batch, std::size_t li) {
  const LayerView& l = layout_.layers[li];
  // The input's masks (no gradient flows to x, so the backward pass needs none).
  if (li == 0 && dropping_input())
    dropout_forward(x, kept_input_.get(), static_cast<std::size_t>(batch) * l.in, input_layer_, train_, stream_);
  float* y = acts_[li].get();
  dense_forward(layer_input(x, li), params_.get() + l.w, y, batch, l.in, l.out, cublas_);
  const bool hidden = li + 1 < layout_.layers.size();
  const Activation act = hidden ? spec_.activation : Activation::identity;
  if (preact_[li].size() == 0)
    bias_act_forward(y, params_.get() + l.b, batch, l.out, act, stream_);
  else
    bias_act_forward_keep(y, preact_[li].get(), params_.get() + l.b, batch, l.out, act, stream_);
  if (hidden && dropping())
    dropout_forward(y, kept_[li].get(), static_cast<std::size_t>(batch) * l.out, dropout_layers_[li], train_, stream_);
}

void GpuNet::loss(const std::uint8_t* labels, int batch, double* loss_sum, unsigned long long* correct) {
  const float scale = 1.0f / static_cast<float>(std::max(batch, 1));
  if (spec_.loss == Loss::xent)
    softmax_xent(output(), labels, nullptr, batch, spec_.outputs, scale, loss_sum, correct, stream_);
  else
    l2_loss(output(), labels, nullptr, batch, spec_.outputs, scale, loss_sum, correct, stream_);
}

void GpuNet::loss_gradient(const std::uint8_t* labels, int batch, double* loss_sum, unsigned long long* correct) {
  const float scale = 1.0f / static_cast<float>(std::max(batch, 1));
  delta_ = delta_a_.get();
  next_ = delta_b_.get();
  if (spec_.loss == Loss::xent)
    softmax_xent(output(), labels, delta_, batch, spec_.outputs, scale, loss_sum, correct, stream_);
  else
    l2_loss(output(), labels, delta_, batch, spec_.outputs, scale, loss_sum, correct, stream_);
}

void GpuNet::backward_layer(const float* x, int batch, std::size_t li) {
  const LayerView& l = layout_.layers[li];
  dense_backward_weights(delta_, layer_input(x, li), grads_.get() + l.w, batch, l.in, l.out, cublas_);
  bias_grad(delta_, grads_.get() + l.b, batch, l.out, stream_);
  if (li == 0) return;
  dense_backward_data(delta_, params_.get() + l.w, next_, batch, l.in, l.out, cublas_);
  const std::size_t n = static_cast<std::size_t>(batch) * l.in;
  if (dropping()) dropout_backward(next_, n, dropout_layers_[li - 1], train_, stream_);
  act_backward(next_, act_saved(li - 1), n, spec_.activation, stream_);
  std::swap(delta_, next_);
}

void GpuNet::backward(const float* x, const std::uint8_t* labels, int batch, double* loss_sum,
                      unsigned long long* correct) {
  if (batch < 0 || batch > max_batch_) throw Error("GpuNet::backward: batch out of range");
  loss_gradient(labels, batch, loss_sum, correct);
  for (std::size_t li = layout_.layers.size(); li-- > 0;) backward_layer(x, batch, li);
}

}  // namespace mnist_gpu::gpu
