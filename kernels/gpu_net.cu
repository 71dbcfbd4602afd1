// GpuNet: forward and backward on the GPU, op for op as CpuNet runs them on the CPU.
#include <algorithm>

#include "gpu_net.hpp"
#include "gpu_ops.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {

GpuNet::GpuNet(const ModelSpec& spec, int max_batch, cudaStream_t stream, cublasHandle_t cublas)
    : spec_(spec), layout_(spec), max_batch_(max_batch), stream_(stream), cublas_(cublas),
      params_(layout_.size), grads_(layout_.size) {
  int widest = spec.inputs;
  for (const auto& l : layout_.layers) {
    acts_.emplace_back(static_cast<std::size_t>(max_batch) * l.out);
    widest = std::max(widest, l.out);
  }
  delta_a_ = DeviceBuffer<float>(static_cast<std::size_t>(max_batch) * widest);
  delta_b_ = DeviceBuffer<float>(static_cast<std::size_t>(max_batch) * widest);
}

const float* GpuNet::forward(const float* x, int batch) {
  if (batch < 0 || batch > max_batch_) throw Error("GpuNet::forward: batch out of range");
  const float* in = x;
  const std::size_t n_layers = layout_.layers.size();
  for (std::size_t li = 0; li < n_layers; ++li) {
    const LayerView& l = layout_.layers[li];
    float* y = acts_[li].get();
    dense_forward(in, params_.get() + l.w, y, batch, l.in, l.out, cublas_);
    const Activation act = li + 1 == n_layers ? Activation::identity : spec_.activation;
    bias_act_forward(y, params_.get() + l.b, batch, l.out, act, stream_);
    in = y;
  }
  return output();
}

void GpuNet::loss(const std::uint8_t* labels, int batch, double* loss_sum, unsigned long long* correct) {
  const float scale = 1.0f / static_cast<float>(std::max(batch, 1));
  if (spec_.loss == Loss::xent)
    softmax_xent(output(), labels, nullptr, batch, spec_.outputs, scale, loss_sum, correct, stream_);
  else
    l2_loss(output(), labels, nullptr, batch, spec_.outputs, scale, loss_sum, correct, stream_);
}

void GpuNet::backward(const float* x, const std::uint8_t* labels, int batch, double* loss_sum,
                      unsigned long long* correct) {
  if (batch < 0 || batch > max_batch_) throw Error("GpuNet::backward: batch out of range");
  const float scale = 1.0f / static_cast<float>(std::max(batch, 1));
  float* delta = delta_a_.get();
  float* next = delta_b_.get();
  if (spec_.loss == Loss::xent)
    softmax_xent(output(), labels, delta, batch, spec_.outputs, scale, loss_sum, correct, stream_);
  else
    l2_loss(output(), labels, delta, batch, spec_.outputs, scale, loss_sum, correct, stream_);
  for (std::size_t li = layout_.layers.size(); li-- > 0;) {
    const LayerView& l = layout_.layers[li];
    const float* in = li == 0 ? x : acts_[li - 1].get();
    dense_backward_weights(delta, in, grads_.get() + l.w, batch, l.in, l.out, cublas_);
    bias_grad(delta, grads_.get() + l.b, batch, l.out, stream_);
    if (li == 0) break;
    dense_backward_data(delta, params_.get() + l.w, next, batch, l.in, l.out, cublas_);
    act_backward(next, acts_[li - 1].get(), static_cast<std::size_t>(batch) * l.in, spec_.activation, stream_);
    std::swap(delta, next);
  }
}

}  // namespace mnist_gpu::gpu
