// GpuNet: forward and backward on the GPU, op for op as CpuNet runs them on the CPU.
#include <algorithm>

#include "gpu_net.hpp"
#include "gpu_ops.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {

GpuNet::GpuNet(const ModelSpec& spec, int max_batch, cudaStream_t stream, cublasHandle_t cublas, float dropout,
               std::uint64_t seed)
    : spec_(spec), layout_(spec), max_batch_(max_batch), stream_(stream), cublas_(cublas), dropout_(dropout),
      seed_(seed), params_(layout_.size), grads_(layout_.size) {
  int widest = spec.inputs;
  for (std::size_t li = 0; li < layout_.layers.size(); ++li) {
    const LayerView& l = layout_.layers[li];
    acts_.emplace_back(static_cast<std::size_t>(max_batch) * l.out);
    const bool hidden = li + 1 < layout_.layers.size();
    kept_.emplace_back(hidden && dropout > 0.0f ? static_cast<std::size_t>(max_batch) * l.out : 0);
    widest = std::max(widest, l.out);
  }
  delta_a_ = DeviceBuffer<float>(static_cast<std::size_t>(max_batch) * widest);
  delta_b_ = DeviceBuffer<float>(static_cast<std::size_t>(max_batch) * widest);
}

const float* GpuNet::layer_input(const float* x, std::size_t li) const {
  if (li == 0) return x;
  return dropping() ? kept_[li - 1].get() : acts_[li - 1].get();
}

namespace {

void note_dropout(std::vector<DropoutNode>* captured, cudaStream_t s, const float* a, float* out, std::size_t n,
                  int layer) {
  if (captured && n > 0) captured->push_back(DropoutNode{last_captured_node(s), a, out, n, layer});
}

}  // namespace

void GpuNet::set_dropout_step(cudaGraphExec_t exec, const std::vector<DropoutNode>& nodes, long long step) const {
  for (const DropoutNode& d : nodes)
    dropout_forward(d.a, d.out, d.n, make_dropout_mask(dropout_, seed_, step, d.layer), LaunchAt(exec, d.node));
}

const float* GpuNet::forward(const float* x, int batch, long long step, std::vector<DropoutNode>* captured) {
  if (batch < 0 || batch > max_batch_) throw Error("GpuNet::forward: batch out of range");
  step_ = step;
  const std::size_t n_layers = layout_.layers.size();
  for (std::size_t li = 0; li < n_layers; ++li) {
    const LayerView& l = layout_.layers[li];
    float* y = acts_[li].get();
    dense_forward(layer_input(x, li), params_.get() + l.w, y, batch, l.in, l.out, cublas_);
    const bool hidden = li + 1 < n_layers;
    bias_act_forward(y, params_.get() + l.b, batch, l.out, hidden ? spec_.activation : Activation::identity, stream_);
    if (hidden && dropping()) {
      const std::size_t n = static_cast<std::size_t>(batch) * l.out;
      dropout_forward(y, kept_[li].get(), n, make_dropout_mask(dropout_, seed_, step_, static_cast<int>(li)), stream_);
      note_dropout(captured, stream_, y, kept_[li].get(), n, static_cast<int>(li));
    }
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
                      unsigned long long* correct, std::vector<DropoutNode>* captured) {
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
    dense_backward_weights(delta, layer_input(x, li), grads_.get() + l.w, batch, l.in, l.out, cublas_);
    bias_grad(delta, grads_.get() + l.b, batch, l.out, stream_);
    if (li == 0) break;
    dense_backward_data(delta, params_.get() + l.w, next, batch, l.in, l.out, cublas_);
    const std::size_t n = static_cast<std::size_t>(batch) * l.in;
    if (dropping()) {
      dropout_backward(next, n, make_dropout_mask(dropout_, seed_, step_, static_cast<int>(li - 1)), stream_);
      note_dropout(captured, stream_, next, next, n, static_cast<int>(li - 1));
    }
    act_backward(next, acts_[li - 1].get(), n, spec_.activation, stream_);
    std::swap(delta, next);
  }
}

}  // namespace mnist_gpu::gpu
