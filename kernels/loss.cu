// Loss kernels, one warp per row of (batch, classes): fused softmax + cross-entropy + gradient,
// the L2 loss and gradient, and the confusion-matrix update. Each also counts correct argmaxes
// (first maximum on ties, as the CPU twin) and adds its row's loss to a device accumulator.
#include <cstdint>

#include "gpu_ops.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {
namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kWarpsPerBlock = 4;

// Value and index of the row's first maximum, known to every lane.
__device__ __forceinline__ void warp_argmax(const float* z, int classes, int lane, float& best, int& best_j) {
  best = -INFINITY;
  best_j = classes;
  for (int j = lane; j < classes; j += 32) {
    const float v = z[j];
    if (v > best || best_j == classes) {
      best = v;
      best_j = j;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(kFull, best, off);
    const int oj = __shfl_xor_sync(kFull, best_j, off);
    if (oj != classes && (best_j == classes || ov > best || (ov == best && oj < best_j))) {
      best = ov;
      best_j = oj;
    }
  }
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  return v;
}

__global__ void softmax_xent_kernel(const float* __restrict__ logits, const std::uint8_t* __restrict__ labels,
                                    float* __restrict__ dlogits, int batch, int classes, float scale,
                                    double* loss_sum, unsigned long long* correct) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= batch) return;  // uniform across the warp
  const float* z = logits + static_cast<std::size_t>(row) * classes;
  const int y = labels[row];
  float m;
  int best_j;
  warp_argmax(z, classes, lane, m, best_j);
  float s = 0.0f;
  for (int j = lane; j < classes; j += 32) s += expf(z[j] - m);
  const float log_sum = logf(warp_sum(s));
  if (dlogits) {
    float* d = dlogits + static_cast<std::size_t>(row) * classes;
    for (int j = lane; j < classes; j += 32) d[j] = (expf(z[j] - m - log_sum) - (j == y ? 1.0f : 0.0f)) * scale;
  }
  if (lane == 0) {
    atomicAdd(loss_sum, static_cast<double>(log_sum - (z[y] - m)));
    if (best_j == y) atomicAdd(correct, 1ull);
  }
}

__global__ void l2_loss_kernel(const float* __restrict__ out, const std::uint8_t* __restrict__ labels,
                               float* __restrict__ grad, int batch, int classes, float scale, double* loss_sum,
                               unsigned long long* correct) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= batch) return;
  const float* o = out + static_cast<std::size_t>(row) * classes;
  const int y = labels[row];
  float s = 0.0f;
  for (int j = lane; j < classes; j += 32) {
    const float diff = o[j] - (j == y ? 1.0f : 0.0f);
    s += diff * diff;
    if (grad) grad[static_cast<std::size_t>(row) * classes + j] = diff * scale;
  }
  s = warp_sum(s);
  float m;
  int best_j;
  warp_argmax(o, classes, lane, m, best_j);
  if (lane == 0) {
    atomicAdd(loss_sum, 0.5 * static_cast<double>(s));
    if (best_j == y) atomicAdd(correct, 1ull);
  }
}

__global__ void confusion_kernel(const float* __restrict__ logits, const std::uint8_t* __restrict__ labels,
                                 int batch, int classes, unsigned long long* confusion) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= batch) return;
  float m;
  int best_j;
  warp_argmax(logits + static_cast<std::size_t>(row) * classes, classes, lane, m, best_j);
  if (lane == 0 && best_j < classes) atomicAdd(&confusion[labels[row] * classes + best_j], 1ull);
}

unsigned row_blocks(int batch) { return static_cast<unsigned>((batch + kWarpsPerBlock - 1) / kWarpsPerBlock); }

void check_rows(int batch, int classes, const char* op) {
  if (batch < 0 || classes <= 0) throw Error(std::string(op) + ": needs batch >= 0 and classes > 0");
}

}  // namespace

void softmax_xent(const float* logits, const std::uint8_t* labels, float* dlogits, int batch, int classes,
                  float grad_scale, double* loss_sum, unsigned long long* correct, cudaStream_t stream) {
  check_rows(batch, classes, "softmax_xent");
  if (batch == 0) return;
  softmax_xent_kernel<<<row_blocks(batch), 32 * kWarpsPerBlock, 0, stream>>>(logits, labels, dlogits, batch, classes,
                                                                            grad_scale, loss_sum, correct);
  CUDA_CHECK_LAUNCH();
}

void l2_loss(const float* out, const std::uint8_t* labels, float* grad, int batch, int classes, float grad_scale,
             double* loss_sum, unsigned long long* correct, cudaStream_t stream) {
  check_rows(batch, classes, "l2_loss");
  if (batch == 0) return;
  l2_loss_kernel<<<row_blocks(batch), 32 * kWarpsPerBlock, 0, stream>>>(out, labels, grad, batch, classes, grad_scale,
                                                                       loss_sum, correct);
  CUDA_CHECK_LAUNCH();
}

void confusion_update(const float* logits, const std::uint8_t* labels, int batch, int classes,
                      unsigned long long* confusion, cudaStream_t stream) {
  check_rows(batch, classes, "confusion_update");
  if (batch == 0) return;
  confusion_kernel<<<row_blocks(batch), 32 * kWarpsPerBlock, 0, stream>>>(logits, labels, batch, classes, confusion);
  CUDA_CHECK_LAUNCH();
}

}  // namespace mnist_gpu::gpu
