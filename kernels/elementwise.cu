// Elementwise kernels: uint8 -> [0,1] conversion (also fused with the resident path's row gather),
// bias + activation forward, activation backward, dropout (forward and backward), the bias
// gradient (a column reduction), the optimizer update over the flat arena and max-norm.
#include <cstdint>
#include <stdexcept>

#include "gpu_ops.hpp"
#include "launch.cuh"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {
namespace {

__global__ void u8_to_unit_kernel(const std::uint8_t* __restrict__ src, float* __restrict__ dst, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    dst[i] = static_cast<float>(src[i]) * (1.0f / 255.0f);
}

// gelu(z) = z Phi(z) = 0.5 z (1 + erf(z / sqrt 2)); gelu'(z) = Phi(z) + z phi(z). The CPU twin
// (src/cpu_ops.cpp) writes the same expressions.
__device__ __forceinline__ float gelu(float z) { return 0.5f * z * (1.0f + erff(z * 0.70710678118654752440f)); }
__device__ __forceinline__ float gelu_grad(float z) {
  return 0.5f * (1.0f + erff(z * 0.70710678118654752440f)) + z * 0.39894228040143267794f * expf(-0.5f * z * z);
}

__device__ __forceinline__ float activate(float z, Activation act) {
  switch (act) {
    case Activation::relu: return z > 0.0f ? z : 0.0f;
    case Activation::sigmoid: return 1.0f / (1.0f + expf(-z));
    case Activation::tanh: return tanhf(z);
    case Activation::gelu: return gelu(z);
    case Activation::identity: return z;
  }
  return z;
}

__global__ void bias_act_forward_kernel(float* __restrict__ y, const float* __restrict__ b, std::size_t n,
                                        int out, Activation act) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    y[i] = activate(y[i] + b[i % out], act);
}

// bias_act_forward_kernel that also keeps z = y + b (the pre-activation act_backward reads for gelu).
__global__ void bias_act_forward_keep_kernel(float* __restrict__ y, float* __restrict__ z, const float* __restrict__ b,
                                             std::size_t n, int out, Activation act) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float v = y[i] + b[i % out];
    z[i] = v;
    y[i] = activate(v, act);
  }
}

__global__ void act_backward_kernel(float* __restrict__ dy, const float* __restrict__ y, std::size_t n,
                                    Activation act) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float a = y[i];  // the output, or z for gelu (the table's backward_reads_z)
    switch (act) {
      case Activation::relu: dy[i] = a > 0.0f ? dy[i] : 0.0f; break;
      case Activation::sigmoid: dy[i] *= a * (1.0f - a); break;
      case Activation::tanh: dy[i] *= 1.0f - a * a; break;
      case Activation::gelu: dy[i] *= gelu_grad(a); break;
      case Activation::identity: break;
    }
  }
}

// Inverted dropout: the mask is recomputed from its hash (dropout.hpp) in both directions, for
// the step that the step table's cursor names.
__global__ void dropout_kernel(const float* a, float* out, std::size_t n, DropoutLayer layer, StepRef at) {
  const DropoutMask mask = mask_at(layer, current(at).step);
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = dropout_keep(mask, i) ? a[i] * mask.scale : 0.0f;
}

// Element e of the batch is pixel e % pixels of row e / pixels; that row's thread for pixel 0
// also copies the label.
__global__ void gather_kernel(const std::uint8_t* __restrict__ images, const std::uint8_t* __restrict__ labels,
                              const std::uint32_t* __restrict__ order, std::size_t n, int pixels,
                              float* __restrict__ x, std::uint8_t* __restrict__ y, StepRef at) {
  const std::uint32_t* __restrict__ idx = order + current(at).offset;
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t r = e / pixels, p = e % pixels;
    const std::size_t src = idx[r];
    x[e] = static_cast<float>(images[src * pixels + p]) * (1.0f / 255.0f);
    if (p == 0) y[r] = labels[src];
  }
}

// Column sums of dy (batch, out). A block covers 32 columns with 32 row lanes: thread (c, r) sums
// rows r, r + 32, ... of its column (a warp reads 32 adjacent columns of one row: coalesced), then
// lane 0 adds the 32 partial sums in lane order. Deterministic (a fixed order, no atomics); the
// order differs from the CPU twin's row-by-row sum, hence kTolReduction in its test.
constexpr int kBiasCols = 32, kBiasLanes = 32;
__global__ void bias_grad_kernel(const float* __restrict__ dy, float* __restrict__ db, int batch, int out) {
  __shared__ float part[kBiasLanes][kBiasCols + 1];  // +1: no bank conflicts on the column walk
  const int c = threadIdx.x, r = threadIdx.y;
  const int j = blockIdx.x * kBiasCols + c;
  float s = 0.0f;
  if (j < out)
    for (int i = r; i < batch; i += kBiasLanes) s += dy[static_cast<std::size_t>(i) * out + j];
  part[r][c] = s;
  __syncthreads();
  if (r == 0 && j < out) {
    float t = 0.0f;
    for (int k = 0; k < kBiasLanes; ++k) t += part[k][c];
    db[j] = t;
  }
}

// The step's rate and bias corrections come from its row of the step table.
__global__ void optimizer_kernel(OptimStep s, StepRef at, float* __restrict__ w, const float* __restrict__ g,
                                 float* __restrict__ s1, float* __restrict__ s2, std::size_t n,
                                 std::size_t n_decay) {
  const StepScalars& row = current(at);
  s.lr = row.lr;
  const float inv_c1 = 1.0f / row.bias_correction1, inv_c2 = 1.0f / row.bias_correction2;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float gi = g[i] + (i < n_decay ? s.l2 : 0.0f) * w[i];
    switch (s.kind) {
      case OptimizerKind::sgd: w[i] -= s.lr * gi; break;
      case OptimizerKind::momentum: {
        const float v = s.momentum * s1[i] + gi;
        s1[i] = v;
        w[i] -= s.lr * (s.nesterov ? gi + s.momentum * v : v);
        break;
      }
      case OptimizerKind::adam: {
        const float m = s.beta1 * s1[i] + (1.0f - s.beta1) * gi;
        const float v = s.beta2 * s2[i] + (1.0f - s.beta2) * gi * gi;
        s1[i] = m;
        s2[i] = v;
        w[i] -= s.lr * (m * inv_c1) / (sqrtf(v * inv_c2) + s.eps);
        break;
      }
      case OptimizerKind::rmsprop: {
        const float sq = s.rho * s1[i] + (1.0f - s.rho) * gi * gi;
        s1[i] = sq;
        w[i] -= s.lr * gi / (sqrtf(sq) + s.eps);
        break;
      }
    }
  }
}

// One block per row of w (out, in): each thread sums the squares of a strided slice of the row,
// then a fixed-order tree in shared memory (deterministic); rows over c are scaled to norm c.
constexpr int kNormThreads = 256;
__global__ void max_norm_kernel(float* __restrict__ w, int in, float c) {
  __shared__ float part[kNormThreads];
  float* row = w + static_cast<std::size_t>(blockIdx.x) * in;
  float s = 0.0f;
  for (int k = threadIdx.x; k < in; k += kNormThreads) s += row[k] * row[k];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int half = kNormThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  const float norm = sqrtf(part[0]);
  if (norm <= c) return;  // the whole block takes the same branch
  const float scale = c / norm;
  for (int k = threadIdx.x; k < in; k += kNormThreads) row[k] *= scale;
}

void require(bool ok, const char* what) {
  if (!ok) throw Error(std::string("gpu op precondition failed: ") + what);
}

}  // namespace

void u8_to_unit(const std::uint8_t* src, float* dst, std::size_t n, cudaStream_t stream) {
  if (n == 0) return;
  u8_to_unit_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, dst, n);
  CUDA_CHECK_LAUNCH();
}

void bias_act_forward(float* y, const float* b, int batch, int out, Activation act, cudaStream_t stream) {
  require(batch >= 0 && out > 0, "bias_act_forward: batch >= 0 and out > 0");
  const std::size_t n = static_cast<std::size_t>(batch) * out;
  if (n == 0) return;
  bias_act_forward_kernel<<<grid_for(n), kThreads, 0, stream>>>(y, b, n, out, act);
  CUDA_CHECK_LAUNCH();
}

void bias_act_forward_keep(float* y, float* z, const float* b, int batch, int out, Activation act,
                           cudaStream_t stream) {
  require(batch >= 0 && out > 0, "bias_act_forward_keep: batch >= 0 and out > 0");
  const std::size_t n = static_cast<std::size_t>(batch) * out;
  if (n == 0) return;
  bias_act_forward_keep_kernel<<<grid_for(n), kThreads, 0, stream>>>(y, z, b, n, out, act);
  CUDA_CHECK_LAUNCH();
}

void act_backward(float* dy, const float* saved, std::size_t n, Activation act, cudaStream_t stream) {
  if (n == 0 || act == Activation::identity) return;
  act_backward_kernel<<<grid_for(n), kThreads, 0, stream>>>(dy, saved, n, act);
  CUDA_CHECK_LAUNCH();
}

void dropout_forward(const float* a, float* out, std::size_t n, const DropoutLayer& layer, const StepRef& at,
                     cudaStream_t stream) {
  require(at.table && at.cursor, "dropout_forward: a step table");
  if (n == 0) return;
  dropout_kernel<<<grid_for(n), kThreads, 0, stream>>>(a, out, n, layer, at);
  CUDA_CHECK_LAUNCH();
}

void dropout_backward(float* d, std::size_t n, const DropoutLayer& layer, const StepRef& at, cudaStream_t stream) {
  dropout_forward(d, d, n, layer, at, stream);
}

void gather_u8_to_unit(const std::uint8_t* images, const std::uint8_t* labels, const std::uint32_t* order,
                       int rows, int pixels, float* x, std::uint8_t* y, const StepRef& at, cudaStream_t stream) {
  require(rows >= 0 && pixels > 0, "gather_u8_to_unit: rows >= 0 and pixels > 0");
  require(at.table && at.cursor, "gather_u8_to_unit: a step table");
  const std::size_t n = static_cast<std::size_t>(rows) * pixels;
  if (n == 0) return;
  gather_kernel<<<grid_for(n), kThreads, 0, stream>>>(images, labels, order, n, pixels, x, y, at);
  CUDA_CHECK_LAUNCH();
}

void bias_grad(const float* dy, float* db, int batch, int out, cudaStream_t stream) {
  require(batch >= 0 && out > 0, "bias_grad: batch >= 0 and out > 0");
  const unsigned blocks = static_cast<unsigned>((out + kBiasCols - 1) / kBiasCols);
  bias_grad_kernel<<<blocks, dim3(kBiasCols, kBiasLanes), 0, stream>>>(dy, db, batch, out);
  CUDA_CHECK_LAUNCH();
}

void optimizer_update(const OptimStep& step, const StepRef& at, float* w, const float* g, float* s1, float* s2,
                      std::size_t n, std::size_t n_decay, cudaStream_t stream) {
  require(at.table && at.cursor, "optimizer_update: a step table");
  require(step.kind == OptimizerKind::sgd || s1 != nullptr, "optimizer_update: momentum/adam/rmsprop need s1");
  require(step.kind != OptimizerKind::adam || s2 != nullptr, "optimizer_update: adam needs s2");
  require(n_decay <= n, "optimizer_update: n_decay <= n");
  if (n == 0) return;
  optimizer_kernel<<<grid_for(n), kThreads, 0, stream>>>(step, at, w, g, s1, s2, n, n_decay);
  CUDA_CHECK_LAUNCH();
}

void max_norm(float* w, int out, int in, float c, cudaStream_t stream) {
  require(out >= 0 && in > 0, "max_norm: out >= 0 and in > 0");
  require(c > 0.0f, "max_norm: c > 0");
  if (out == 0) return;
  max_norm_kernel<<<static_cast<unsigned>(out), kNormThreads, 0, stream>>>(w, in, c);
  CUDA_CHECK_LAUNCH();
}

}  // namespace mnist_gpu::gpu
