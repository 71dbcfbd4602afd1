// The GPU twins of the cpu:: ops (include/mnist_gpu/cpu_ops.hpp): same names, same arguments in
// the same order, float only, plus the stream (dense products take the cuBLAS handle, which is
// bound to its stream). Every pointer is device memory, including the accumulators. Launchers
// check their shapes, own the grid maths and check the launch.
// Host-only header: compiles with g++ and nvcc.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "mnist_gpu/augment.hpp"
#include "mnist_gpu/config.hpp"
#include "cuda_check.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "step_scalars.hpp"

namespace mnist_gpu::gpu {

void u8_to_unit(const std::uint8_t* src, float* dst, std::size_t n, cudaStream_t stream);

/// Dense products through cuBLAS SGEMM (row-major mapping derived in kernels/dense.cu).
void dense_forward(const float* x, const float* w, float* y, int batch, int in, int out, cublasHandle_t h);
void dense_backward_data(const float* dy, const float* w, float* dx, int batch, int in, int out, cublasHandle_t h);
void dense_backward_weights(const float* dy, const float* x, float* dw, int batch, int in, int out,
                            cublasHandle_t h);

void bias_act_forward(float* y, const float* b, int batch, int out, Activation act, cudaStream_t stream);
void bias_act_forward_keep(float* y, float* z, const float* b, int batch, int out, Activation act, cudaStream_t stream);
void act_backward(float* dy, const float* saved, std::size_t n, Activation act, cudaStream_t stream);
void bias_grad(const float* dy, float* db, int batch, int out, cudaStream_t stream);
/// The ops whose arguments change every training step read them from the step's row of a step
/// table (step_scalars.hpp), so that one captured graph serves every step.
/// Dropout with the layer's mask of the step at `at` (the CPU twin takes mask_at(layer, step)).
void dropout_forward(const float* a, float* out, std::size_t n, const DropoutLayer& layer, const StepRef& at,
                     cudaStream_t stream);
void dropout_backward(float* d, std::size_t n, const DropoutLayer& layer, const StepRef& at, cudaStream_t stream);

/// The resident data path's batch: with idx = order + (the row's offset), x (rows, pixels) =
/// images[idx[r]] / 255 and y (rows) = labels[idx[r]], with images (count, pixels) and labels on
/// the device. The CPU twin is gather_rows (batches.hpp) followed by cpu::u8_to_unit.
void gather_u8_to_unit(const std::uint8_t* images, const std::uint8_t* labels, const std::uint32_t* order,
                       int rows, int pixels, float* x, std::uint8_t* y, const StepRef& at, cudaStream_t stream);

/// The deformed training batch (augment.hpp): out (rows, 784) = in (rows, 784) deformed, row r
/// being training sample order[offset + r] (offset and epoch from the row at `at`) with label
/// labels[r]. The CPU twin is cpu::augment with indices = order + offset.
void augment(const float* in, float* out, int rows, const AugmentPlan& plan, const std::uint32_t* order,
             const std::uint8_t* labels, const StepRef& at, cudaStream_t stream);

void softmax_xent(const float* logits, const std::uint8_t* labels, float* dlogits, int batch, int classes,
                  float grad_scale, double* loss_sum, unsigned long long* correct, cudaStream_t stream);
void l2_loss(const float* out, const std::uint8_t* labels, float* grad, int batch, int classes,
             float grad_scale, double* loss_sum, unsigned long long* correct, cudaStream_t stream);
void confusion_update(const float* logits, const std::uint8_t* labels, int batch, int classes,
                      unsigned long long* confusion, cudaStream_t stream);

/// The update with `step`'s settings and the rate and bias corrections of the row at `at` (the
/// CPU twin takes them in its OptimStep).
void optimizer_update(const OptimStep& step, const StepRef& at, float* w, const float* g, float* s1, float* s2,
                      std::size_t n, std::size_t n_decay, cudaStream_t stream);

/// Max-norm on w (out, in): rows with L2 norm above c scaled to c, the others untouched. One block
/// per row, a fixed-order tree sum in float (the CPU twin sums in double: kTolMaxNorm in its test).
void max_norm(float* w, int out, int in, float c, cudaStream_t stream);

}  // namespace mnist_gpu::gpu
