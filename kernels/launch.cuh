// Grid maths shared by the launchers: 1-D grid-stride launches of 256 threads.
#pragma once
#include <algorithm>
#include <cstddef>

namespace mnist_gpu::gpu {

constexpr int kThreads = 256;

/// Blocks for n elements with a grid-stride loop: enough to fill the GPU, never more than needed.
inline unsigned grid_for(std::size_t n) {
  const std::size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::min<std::size_t>(std::max<std::size_t>(blocks, 1), 65535u * 8u));
}

}  // namespace mnist_gpu::gpu
