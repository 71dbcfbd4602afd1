// GpuNet: forward and backward on the GPU, op for op as CpuNet runs them on the CPU.
#include <algorithm>
#include <string>

#include "gpu_net.hpp"
#include "gpu_ops.hpp"
#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {

GpuNet::GpuNet(const ModelSpec& spec, int max_batch, cudaStream_t stream, cublasHandle_t cublas, float dropout,
               std::uint64_t seed, float input_dropout, const LtContext& lt)
    : spec_(spec), layout_(spec), max_batch_(max_batch), stream_(stream), cublas_(cublas), dropout_(dropout),
      input_dropout_(input_dropout), params_(layout_.size), grads_(layout_.size), lt_(lt) {
  if (!lt_path() && spec.precision != Precision::fp32)
    throw Error(std::string("--precision ") + to_string(spec.precision) + " runs on cuBLASLt only (--gemm cublaslt)");
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
  if (!lt_path()) return;
  // Dropout sits between the data product and ReLU's backward, and the lower bias gradient must
  // sum after it: with dropout the data product stays plain (act_backward, bias via BGRADB).
  relu_fused_ = spec.activation == Activation::relu;
  drelu_fused_ = relu_fused_ && dropout <= 0.0f;
  const std::size_t n_layers = layout_.layers.size();
  for (std::size_t li = 0; li + 1 < n_layers; ++li)
    mask_.emplace_back(relu_fused_ ? relu_mask_bytes(layout_.layers[li].out, max_batch) : 0);
  mask_written_.assign(n_layers, 0);
  db_from_above_.assign(n_layers, 0);
  if (bf16()) {
    for (const LayerView& l : layout_.layers) {
      weights_bf_.emplace_back(static_cast<std::size_t>(l.in) * l.out);
      input_bf_.emplace_back(static_cast<std::size_t>(max_batch) * l.in);
    }
    delta_bf_ = DeviceBuffer<std::uint16_t>(static_cast<std::size_t>(max_batch) * widest);
  }
}

std::vector<std::string> GpuNet::lt_plans() const {
  std::vector<std::string> out;
  for (const auto& [shape, plan] : plans_)
    out.push_back(describe(shape) + ": " +
                  (plan->usable                       ? "split-K " + std::to_string(plan->split_k)
                   : !lt_epilogue_aligned(shape) ? std::string("bias or mask under 16 bytes aligned (fallback)")
                                                 : std::string("no algorithm (fallback)")));
  return out;
}

bool GpuNet::lt_run(LtShape shape, const LtOperands& ops) {
  shape.align_a = ptr_alignment(ops.a);
  shape.align_b = ptr_alignment(ops.b);
  shape.align_d = ptr_alignment(ops.d);
  shape.align_bias = ptr_alignment(ops.bias);
  shape.align_aux = ptr_alignment(ops.aux);
  std::unique_ptr<LtPlan>& plan = plans_[shape];
  if (!plan) {
    auto made = std::make_unique<LtPlan>(shape);
    // A fused epilogue on a bias or mask under 16 bytes aligned is never planned (lt_gemm.hpp):
    // the plan stays unusable and the caller runs the separate kernels.
    const std::optional<cublasLtMatmulAlgo_t> algo =
        lt_epilogue_aligned(shape) ? pick_algo(lt_, *made, ops, stream_) : std::nullopt;
    if (algo) {
      made->algo = *algo;
      made->usable = true;
    }
    plan = std::move(made);
  }
  if (!plan->usable) {
    if (shape.epilogue != LtEpilogue::none) return false;
    throw Error("cuBLASLt offers no algorithm for " + describe(shape) +
                "; run with --gemm cublas (and --precision fp32)");
  }
  lt_matmul(lt_, *plan, ops, stream_);
  return true;
}

// The forward of layer li on cuBLASLt: y = act(x w^T + b) with the bias (and ReLU) in the epilogue;
// another hidden activation keeps its bias + activation kernel (the GEMM then has no epilogue), as
// does an epilogue cuBLASLt offers no algorithm for.
void GpuNet::forward_layer_lt(const float* x, int batch, std::size_t li) {
  const LayerView& l = layout_.layers[li];
  const bool hidden = li + 1 < layout_.layers.size();
  float* y = acts_[li].get();
  bool fused = false;  // bias and activation applied by the epilogue
  if (hidden) mask_written_[li] = 0;
  if (batch > 0) {
    const float* in = layer_input(x, li);
    LtOperands ops;
    ops.a = params_.get() + l.w;
    ops.b = in;
    if (bf16()) {
      to_bf16(params_.get() + l.w, weights_bf_[li].get(), static_cast<std::size_t>(l.in) * l.out, stream_);
      to_bf16(in, input_bf_[li].get(), static_cast<std::size_t>(batch) * l.in, stream_);
      ops.a = weights_bf_[li].get();
      ops.b = input_bf_[li].get();
    }
    ops.d = y;
    const LtShape s = packed_shape(l.out, batch, l.in, true, false, spec_.precision);  // y^T = W x^T
    if (!hidden || relu_fused_) {
      LtShape f = s;
      LtOperands fo = ops;
      fo.bias = params_.get() + l.b;
      if (hidden) {
        f.epilogue = LtEpilogue::relu_aux_bias;
        fo.aux = mask_[li].get();
        f.aux_ld = relu_mask_ld(l.out);
      } else {
        f.epilogue = LtEpilogue::bias;
      }
      fused = lt_run(f, fo);
      if (hidden) mask_written_[li] = fused ? 1 : 0;
    }
    if (!fused) lt_run(s, ops);
  }
  if (!fused) {
    const Activation act = hidden ? spec_.activation : Activation::identity;
    if (preact_[li].size() == 0)
      bias_act_forward(y, params_.get() + l.b, batch, l.out, act, stream_);
    else
      bias_act_forward_keep(y, preact_[li].get(), params_.get() + l.b, batch, l.out, act, stream_);
  }
  if (hidden && dropping())
    dropout_forward(y, kept_[li].get(), static_cast<std::size_t>(batch) * l.out, dropout_layers_[li], train_, stream_);
}

// The backward of layer li on cuBLASLt. Its bias gradient comes from the layer above's
// DRELU_BGRAD (db_from_above_), else from BGRADB in its weight product (fp32, tf32), else from
// bias_grad (bf16, where BGRADB would sum the BF16 copy of the delta and the CPU twin sums the
// float one; or when cuBLASLt offers no algorithm for the fused epilogue).
void GpuNet::backward_layer_lt(const float* x, int batch, std::size_t li) {
  const LayerView& l = layout_.layers[li];
  const bool own_db = !db_from_above_[li];
  if (li > 0) db_from_above_[li - 1] = 0;
  if (batch == 0) {  // as cuBLAS with k = 0: the gradients are 0
    CUDA_CHECK(cudaMemsetAsync(grads_.get() + l.w, 0, sizeof(float) * static_cast<std::size_t>(l.in) * l.out, stream_));
    CUDA_CHECK(cudaMemsetAsync(grads_.get() + l.b, 0, sizeof(float) * static_cast<std::size_t>(l.out), stream_));
    db_from_above_[li] = 0;
    return;
  }
  db_from_above_[li] = 0;  // consumed: the next pass starts afresh
  const void* delta = delta_;
  const void* in = layer_input(x, li);
  const void* w = params_.get() + l.w;
  if (bf16()) {
    to_bf16(delta_, delta_bf_.get(), static_cast<std::size_t>(batch) * l.out, stream_);
    delta = delta_bf_.get();
    in = input_bf_[li].get();  // converted by this pass's forward
    w = weights_bf_[li].get();
  }
  {
    const LtShape s = packed_shape(l.in, l.out, batch, false, true, spec_.precision);  // dW^T = x^T delta
    LtOperands ops;
    ops.a = in;
    ops.b = delta;
    ops.d = grads_.get() + l.w;
    bool db_done = !own_db;
    if (own_db && !bf16()) {
      LtShape f = s;
      f.epilogue = LtEpilogue::bgradb;
      LtOperands fo = ops;
      fo.bias = grads_.get() + l.b;
      db_done = lt_run(f, fo);
    }
    if (!(own_db && !bf16() && db_done)) lt_run(s, ops);
    if (!db_done) bias_grad(delta_, grads_.get() + l.b, batch, l.out, stream_);
  }
  if (li == 0) return;
  {
    const LtShape s = packed_shape(l.in, batch, l.out, false, false, spec_.precision);  // dx^T = W^T delta^T
    LtOperands ops;
    ops.a = w;
    ops.b = delta;
    ops.d = next_;
    bool fused = false;
    if (drelu_fused_ && mask_written_[li - 1]) {
      LtShape f = s;
      f.epilogue = LtEpilogue::drelu_bgrad;
      f.aux_ld = relu_mask_ld(l.in);
      LtOperands fo = ops;
      fo.aux = mask_[li - 1].get();
      fo.bias = grads_.get() + layout_.layers[li - 1].b;
      fused = lt_run(f, fo);
    }
    if (!fused) {
      lt_run(s, ops);
      const std::size_t n = static_cast<std::size_t>(batch) * l.in;
      if (dropping()) dropout_backward(next_, n, dropout_layers_[li - 1], train_, stream_);
      act_backward(next_, act_saved(li - 1), n, spec_.activation, stream_);
    }
    db_from_above_[li - 1] = fused ? 1 : 0;
  }
  std::swap(delta_, next_);
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
  // The input's masks (no gradient flows to x, so the backward pass needs none); both paths then
  // read layer 0's input through layer_input.
  if (li == 0 && dropping_input())
    dropout_forward(x, kept_input_.get(), static_cast<std::size_t>(batch) * l.in, input_layer_, train_, stream_);
  if (lt_path()) return forward_layer_lt(x, batch, li);
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
  if (lt_path()) return backward_layer_lt(x, batch, li);
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
