// The MLP on the GPU, the twin of CpuNet (include/mnist_gpu/cpu_net.hpp): the same layout, the same
// op sequence, device buffers allocated once. Host-only header.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda_resources.hpp"
#include "lt_gemm.hpp"
#include "step_scalars.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu::gpu {

class GpuNet {
 public:
  /// All device workspace for batches of up to `max_batch` rows; none is allocated in a step.
  /// `dropout` > 0: training passes drop hidden units, with CpuNet's masks (dropout.hpp).
  /// `input_dropout` > 0: training passes also drop input pixels (CpuNet's input masks).
  /// `lt` with a handle: the dense layers run as fused cuBLASLt plans (lt_gemm.hpp) at
  /// spec.precision, with lt's workspace, which only `stream` may use; none: cuBLAS SGEMM with
  /// separate bias/activation kernels, fp32 only (Error for another precision).
  GpuNet(const ModelSpec& spec, int max_batch, cudaStream_t stream, cublasHandle_t cublas, float dropout = 0.0f,
         std::uint64_t seed = 0, float input_dropout = 0.0f, const LtContext& lt = {});

  /// Whether the layers run on cuBLASLt.
  bool lt_path() const { return lt_.handle != nullptr; }
  /// The cuBLASLt plans made so far, one line each: the shape, precision, epilogue and
  /// alignments, then "split-K N" or "no algorithm (fallback)" (for tests and diagnosis).
  std::vector<std::string> lt_plans() const;

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
  // The cuBLASLt path (lt_path()): one plan per GEMM shape, epilogue and operand alignment, made
  // on first use (host only: descriptors and the heuristic's choice, no device allocation).
  LtContext lt_;
  std::map<LtShape, std::unique_ptr<LtPlan>> plans_;
  bool relu_fused_ = false;                     // hidden ReLU in the forward epilogue (relu_aux_bias)
  bool drelu_fused_ = false;                    // ReLU's backward and the lower db in the data GEMM
  std::vector<DeviceBuffer<std::uint8_t>> mask_;  // mask_[l]: hidden layer l's ReLU bit-mask (relu_fused_)
  // This pass's fallbacks (host state, fixed for a captured step): whether layer l's forward
  // wrote its ReLU mask, and whether its bias gradient came from the layer above's DRELU_BGRAD.
  std::vector<char> mask_written_, db_from_above_;
  // bf16: BF16 copies of each layer's weights (a buffer each: aligned), input and of the delta.
  std::vector<DeviceBuffer<std::uint16_t>> weights_bf_;  // weights_bf_[l]: (out, in)
  std::vector<DeviceBuffer<std::uint16_t>> input_bf_;    // input_bf_[l]: (max_batch, layers[l].in)
  DeviceBuffer<std::uint16_t> delta_bf_;
  bool bf16() const { return spec_.precision == Precision::bf16; }
  /// Runs one product on cuBLASLt; false (nothing run) when cuBLASLt offers no algorithm for a
  /// fused epilogue, for the caller's fallback; Error when it offers none for a plain product.
  bool lt_run(LtShape shape, const LtOperands& ops);
  void forward_layer_lt(const float* x, int batch, std::size_t li);
  void backward_layer_lt(const float* x, int batch, std::size_t li);
  float* delta_ = nullptr;                      // the delta backward_layer works on next
  float* next_ = nullptr;                       // the other buffer

  bool dropping() const { return dropout_ > 0.0f && train_.table != nullptr; }
  bool dropping_input() const { return input_dropout_ > 0.0f && train_.table != nullptr; }
  const float* layer_input(const float* x, std::size_t li) const;
  // What act_backward reads for hidden layer li: its pre-activation z when kept, else its output.
  const float* act_saved(std::size_t li) const { return preact_[li].size() == 0 ? acts_[li].get() : preact_[li].get(); }
};

}  // namespace mnist_gpu::gpu
