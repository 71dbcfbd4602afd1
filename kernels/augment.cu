// The deformations of the training images (include/mnist_gpu/augment.hpp): one block per image.
// The block draws the image's elastic field into shared memory, smooths it along x then along y
// (the same sums, in the same order, as the CPU twin cpu::augment) and resamples the image
// bilinearly. The sample's index comes from the epoch order at the step's offset and the epoch
// from the step's row of the step table, so a captured step graph serves every step.
#include <cstdint>
#include <string>

#include "gpu_ops.hpp"
#include "mnist_gpu/augment.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {
namespace {

constexpr int kAugmentThreads = 256;

__global__ void augment_kernel(const float* __restrict__ in, float* __restrict__ out, AugmentPlan plan,
                               const std::uint32_t* __restrict__ order, const std::uint8_t* __restrict__ labels,
                               StepRef at) {
  __shared__ float field[2][kAugmentPixels];  // raw, then smoothed and scaled
  __shared__ float tmp[2][kAugmentPixels];    // smoothed along x
  const StepScalars& row = current(at);
  const int r = blockIdx.x;
  const std::uint64_t key = augment_key(plan, row.epoch, order[row.offset + static_cast<unsigned long long>(r)]);
  const AugmentAffine m = augment_affine(plan, key, labels[r]);
  const bool elastic = plan.alpha != 0.0f;
  if (elastic) {
    for (int e = threadIdx.x; e < 2 * kAugmentPixels; e += blockDim.x) {
      const int axis = e / kAugmentPixels, i = e % kAugmentPixels;
      field[axis][i] = augment_noise(key, axis, i);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < 2 * kAugmentPixels; e += blockDim.x) {
      const int axis = e / kAugmentPixels, i = e % kAugmentPixels;
      tmp[axis][i] = augment_blur_at(plan, field[axis], i % kAugmentSide, i / kAugmentSide, true);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < 2 * kAugmentPixels; e += blockDim.x) {
      const int axis = e / kAugmentPixels, i = e % kAugmentPixels;
      field[axis][i] = plan.alpha * augment_blur_at(plan, tmp[axis], i % kAugmentSide, i / kAugmentSide, false);
    }
    __syncthreads();
  }
  const float* src = in + static_cast<std::size_t>(r) * kAugmentPixels;
  float* dst = out + static_cast<std::size_t>(r) * kAugmentPixels;
  for (int i = threadIdx.x; i < kAugmentPixels; i += blockDim.x)
    dst[i] = augment_pixel(src, m, i % kAugmentSide, i / kAugmentSide, elastic ? field[0][i] : 0.0f,
                           elastic ? field[1][i] : 0.0f);
}

}  // namespace

void augment(const float* in, float* out, int rows, const AugmentPlan& plan, const std::uint32_t* order,
             const std::uint8_t* labels, const StepRef& at, cudaStream_t stream) {
  if (rows < 0) throw Error("gpu op precondition failed: augment: rows >= 0");
  if (!at.table || !at.cursor) throw Error("gpu op precondition failed: augment: a step table");
  if (plan.radius < 0 || plan.radius > kAugmentMaxRadius)
    throw Error("gpu op precondition failed: augment: radius " + std::to_string(plan.radius) + " out of range");
  if (rows == 0) return;
  augment_kernel<<<static_cast<unsigned>(rows), kAugmentThreads, 0, stream>>>(in, out, plan, order, labels, at);
  CUDA_CHECK_LAUNCH();
}

}  // namespace mnist_gpu::gpu
