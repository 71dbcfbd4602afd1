// Grid maths shared by the launchers (1-D grid-stride launches of 256 threads) and launch(): a
// kernel enqueued on a stream, or the same kernel with new arguments written into a node of an
// instantiated CUDA graph (LaunchAt, gpu_ops.hpp).
#pragma once
#include <algorithm>
#include <cstddef>
#include <tuple>
#include <utility>

#include "gpu_ops.hpp"

namespace mnist_gpu::gpu {

constexpr int kThreads = 256;

/// Blocks for n elements with a grid-stride loop: enough to fill the GPU, never more than needed.
inline unsigned grid_for(std::size_t n) {
  const std::size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::min<std::size_t>(std::max<std::size_t>(blocks, 1), 65535u * 8u));
}

/// kernel<<<grid, block, 0, at.stream>>>(args...), checked; or, when `at` names a graph node, the
/// node's launch replaced by this one (same kernel; grid, block and arguments as given), which
/// takes effect from the graph's next launch on.
template <class... P, class... A>
void launch(const LaunchAt& at, void (*kernel)(P...), unsigned grid, unsigned block, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: argument count");
  if (!at.exec) {
    kernel<<<grid, block, 0, at.stream>>>(std::forward<A>(args)...);
    CUDA_CHECK_LAUNCH();
    return;
  }
  // The node must hold this kernel: cudaGraphExecKernelNodeSetParams would accept another one and
  // run it with these arguments, so a node noted at the wrong launch fails here instead.
  cudaKernelNodeParams held{};
  CUDA_CHECK(cudaGraphKernelNodeGetParams(at.node, &held));
  if (held.func != reinterpret_cast<void*>(kernel))
    throw_cuda_error(cudaErrorInvalidDeviceFunction, "launch: the graph node holds another kernel", __FILE__,
                     __LINE__);
  std::tuple<P...> values(std::forward<A>(args)...);
  void* pointers[sizeof...(P)];
  std::apply([&pointers](auto&... v) {
    std::size_t i = 0;
    ((pointers[i++] = static_cast<void*>(&v)), ...);
  }, values);
  cudaKernelNodeParams p{};
  p.func = reinterpret_cast<void*>(kernel);
  p.gridDim = dim3(grid);
  p.blockDim = dim3(block);
  p.sharedMemBytes = 0;
  p.kernelParams = pointers;
  p.extra = nullptr;
  CUDA_CHECK(cudaGraphExecKernelNodeSetParams(at.exec, at.node, &p));
}

}  // namespace mnist_gpu::gpu
