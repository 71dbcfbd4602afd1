// CpuNet: the MLP's forward and backward passes on the CPU, op by op in the order the GPU runs them.
#include "mnist_gpu/cpu_net.hpp"

#include <algorithm>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/precision.hpp"

namespace mnist_gpu {

template <class T>
CpuNet<T>::CpuNet(const ModelSpec& spec, int max_batch, float dropout, std::uint64_t seed, float input_dropout)
    : spec_(spec), layout_(spec), max_batch_(max_batch), params_(layout_.size), grads_(layout_.size),
      dropout_(dropout), seed_(seed), input_dropout_(input_dropout),
      kept_input_(input_dropout > 0.0f ? static_cast<std::size_t>(max_batch) * spec.inputs : 0) {
  int widest = spec.inputs;
  for (std::size_t li = 0; li < layout_.layers.size(); ++li) {
    const LayerView& l = layout_.layers[li];
    acts_.emplace_back(static_cast<std::size_t>(max_batch) * l.out);
    const bool hidden = li + 1 < layout_.layers.size();
    kept_.emplace_back(hidden && dropout > 0.0f ? static_cast<std::size_t>(max_batch) * l.out : 0);
    preact_.emplace_back(hidden && keeps_preactivation(spec.activation) ? static_cast<std::size_t>(max_batch) * l.out : 0);
    widest = std::max(widest, l.out);
  }
  delta_a_.resize(static_cast<std::size_t>(max_batch) * widest);
  delta_b_.resize(static_cast<std::size_t>(max_batch) * widest);
  if (rounding()) {
    wq_.resize(layout_.size);
    xq_.resize(static_cast<std::size_t>(max_batch) * widest);
    dq_.resize(static_cast<std::size_t>(max_batch) * widest);
  }
}

template <class T>
const T* CpuNet<T>::gemm_weights(std::size_t li) {
  const LayerView& l = layout_.layers[li];
  if (!rounding()) return params_.data() + l.w;
  const std::size_t n = static_cast<std::size_t>(l.in) * l.out;
  round_operands(params_.data() + l.w, wq_.data() + l.w, n, spec_.precision);
  return wq_.data() + l.w;
}

template <class T>
const T* CpuNet<T>::gemm_operand(const T* v, std::size_t n, std::vector<T>& scratch) {
  if (!rounding()) return v;
  round_operands(v, scratch.data(), n, spec_.precision);
  return scratch.data();
}

template <class T>
const T* CpuNet<T>::layer_input(const T* x, std::size_t li) const {
  if (li == 0) return dropping_input() ? kept_input_.data() : x;
  return dropping() ? kept_[li - 1].data() : acts_[li - 1].data();
}

template <class T>
void CpuNet<T>::forward_layer(const T* x, int batch, std::size_t li) {
  const LayerView& l = layout_.layers[li];
  // The input's masks: no gradient flows to x, so the backward pass needs no mask.
  if (li == 0 && dropping_input())
    cpu::dropout_forward(x, kept_input_.data(), static_cast<std::size_t>(batch) * l.in,
                         make_dropout_mask(input_dropout_, seed_, step_, kInputDropoutLayer));
  T* y = acts_[li].data();
  const T* in = gemm_operand(layer_input(x, li), static_cast<std::size_t>(batch) * l.in, xq_);
  cpu::dense_forward(in, gemm_weights(li), y, batch, l.in, l.out);
  const bool hidden = li + 1 < layout_.layers.size();
  const Activation act = hidden ? spec_.activation : Activation::identity;
  if (preact_[li].empty())
    cpu::bias_act_forward(y, params_.data() + l.b, batch, l.out, act);
  else
    cpu::bias_act_forward_keep(y, preact_[li].data(), params_.data() + l.b, batch, l.out, act);
  if (hidden && dropping())
    cpu::dropout_forward(y, kept_[li].data(), static_cast<std::size_t>(batch) * l.out,
                         make_dropout_mask(dropout_, seed_, step_, static_cast<int>(li)));
}

template <class T>
const T* CpuNet<T>::forward(const T* x, int batch, long long step) {
  begin(step);
  for (std::size_t li = 0; li < layout_.layers.size(); ++li) forward_layer(x, batch, li);
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
void CpuNet<T>::loss_gradient(const std::uint8_t* labels, int batch, double* loss_sum,
                              unsigned long long* correct) {
  // The loss is the mean over the batch's rows (the last partial batch too), so each row's
  // gradient carries 1/batch.
  const T scale = T(1) / static_cast<T>(batch);
  delta_ = delta_a_.data();
  next_ = delta_b_.data();
  if (spec_.loss == Loss::xent)
    cpu::softmax_xent<T>(output(), labels, delta_, batch, spec_.outputs, scale, loss_sum, correct);
  else
    cpu::l2_loss<T>(output(), labels, delta_, batch, spec_.outputs, scale, loss_sum, correct);
}

template <class T>
void CpuNet<T>::backward_layer(const T* x, int batch, std::size_t li) {
  const LayerView& l = layout_.layers[li];
  // delta_ is dLoss/d(pre-activation) of layer li: (batch, l.out).
  // At a precision other than fp32 both products take rounded operands (the bias gradient sums
  // the float delta, as the GPU's epilogues do).
  const T* dq = gemm_operand(delta_, static_cast<std::size_t>(batch) * l.out, dq_);
  const T* in = gemm_operand(layer_input(x, li), static_cast<std::size_t>(batch) * l.in, xq_);
  cpu::dense_backward_weights(dq, in, grads_.data() + l.w, batch, l.in, l.out);
  cpu::bias_grad(delta_, grads_.data() + l.b, batch, l.out);
  if (li == 0) return;
  cpu::dense_backward_data(dq, gemm_weights(li), next_, batch, l.in, l.out);
  const std::size_t n = static_cast<std::size_t>(batch) * l.in;
  if (dropping()) cpu::dropout_backward(next_, n, make_dropout_mask(dropout_, seed_, step_, static_cast<int>(li - 1)));
  cpu::act_backward(next_, act_saved(li - 1), n, spec_.activation);
  std::swap(delta_, next_);
}

template <class T>
void CpuNet<T>::backward(const T* x, const std::uint8_t* labels, int batch, double* loss_sum,
                         unsigned long long* correct) {
  loss_gradient(labels, batch, loss_sum, correct);
  for (std::size_t li = layout_.layers.size(); li-- > 0;) backward_layer(x, batch, li);
}

template class CpuNet<float>;
template class CpuNet<double>;

}  // namespace mnist_gpu
