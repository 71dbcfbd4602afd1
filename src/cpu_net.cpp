// CpuNet: the MLP's forward and backward passes on the CPU, op by op in the order the GPU runs them.
#include "mnist_gpu/cpu_net.hpp"

#include <algorithm>

#include "mnist_gpu/cpu_ops.hpp"

namespace mnist_gpu {

template <class T>
CpuNet<T>::CpuNet(const ModelSpec& spec, int max_batch)
    : spec_(spec), layout_(spec), max_batch_(max_batch), params_(layout_.size), grads_(layout_.size) {
  int widest = spec.inputs;
  for (const auto& l : layout_.layers) {
    acts_.emplace_back(static_cast<std::size_t>(max_batch) * l.out);
    widest = std::max(widest, l.out);
  }
  delta_a_.resize(static_cast<std::size_t>(max_batch) * widest);
  delta_b_.resize(static_cast<std::size_t>(max_batch) * widest);
}

template <class T>
const T* CpuNet<T>::forward(const T* x, int batch) {
  const T* in = x;
  const std::size_t n_layers = layout_.layers.size();
  for (std::size_t li = 0; li < n_layers; ++li) {
    const LayerView& l = layout_.layers[li];
    T* y = acts_[li].data();
    cpu::dense_forward(in, params_.data() + l.w, y, batch, l.in, l.out);
    const Activation act = li + 1 == n_layers ? Activation::identity : spec_.activation;
    cpu::bias_act_forward(y, params_.data() + l.b, batch, l.out, act);
    in = y;
  }
  return acts_.back().data();
}

template <class T>
void CpuNet<T>::loss(const std::uint8_t* labels, int batch, double* loss_sum,
                     unsigned long long* correct) const {
  const T scale = T(1) / static_cast<T>(batch);
  if (spec_.loss == Loss::xent)
    cpu::softmax_xent<T>(output(), labels, nullptr, batch, spec_.outputs, scale, loss_sum, correct);
  else
    cpu::l2_loss<T>(output(), labels, nullptr, batch, spec_.outputs, scale, loss_sum, correct);
}

template <class T>
void CpuNet<T>::backward(const T* x, const std::uint8_t* labels, int batch, double* loss_sum,
                         unsigned long long* correct) {
  // The loss is the mean over the batch's rows (the last partial batch too), so each row's
  // gradient carries 1/batch.
  const T scale = T(1) / static_cast<T>(batch);
  T* delta = delta_a_.data();
  T* next = delta_b_.data();
  if (spec_.loss == Loss::xent)
    cpu::softmax_xent<T>(output(), labels, delta, batch, spec_.outputs, scale, loss_sum, correct);
  else
    cpu::l2_loss<T>(output(), labels, delta, batch, spec_.outputs, scale, loss_sum, correct);

  for (std::size_t li = layout_.layers.size(); li-- > 0;) {
    const LayerView& l = layout_.layers[li];
    // delta is dLoss/d(pre-activation) of layer li: (batch, l.out).
    const T* in = li == 0 ? x : acts_[li - 1].data();
    cpu::dense_backward_weights(delta, in, grads_.data() + l.w, batch, l.in, l.out);
    cpu::bias_grad(delta, grads_.data() + l.b, batch, l.out);
    if (li == 0) break;
    cpu::dense_backward_data(delta, params_.data() + l.w, next, batch, l.in, l.out);
    cpu::act_backward(next, acts_[li - 1].data(), static_cast<std::size_t>(batch) * l.in,
                      spec_.activation);
    std::swap(delta, next);
  }
}

template class CpuNet<float>;
template class CpuNet<double>;

}  // namespace mnist_gpu
