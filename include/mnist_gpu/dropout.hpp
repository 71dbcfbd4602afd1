// Dropout masks from a counter-based hash. Whether element i of hidden layer l is kept in
// optimizer step t is a pure function of (seed, t, l, i): the CPU and the GPU draw the same masks,
// a resumed run draws the masks the uninterrupted run would have, and the backward pass
// recomputes the mask instead of storing it. Compiles as host code and, under nvcc, device code.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MNIST_GPU_HD __host__ __device__
#else
#define MNIST_GPU_HD
#endif

namespace mnist_gpu {

/// One layer's mask in one step (inverted dropout: kept values are scaled by 1 / (1 - p), so
/// evaluation runs the net unchanged).
struct DropoutMask {
  std::uint64_t key = 0;         ///< mixes seed, step and layer
  std::uint64_t keep_below = 0;  ///< element kept iff its 32-bit hash < keep_below = round(2^32 (1 - p))
  float scale = 1.0f;            ///< 1 / (1 - p)
};

/// SplitMix64's finaliser: a bijective 64-bit mix.
MNIST_GPU_HD inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Whether element i (row-major index in the layer's (batch, width) activations) is kept.
MNIST_GPU_HD inline bool dropout_keep(const DropoutMask& m, std::uint64_t i) {
  return (mix64(m.key + (i + 1) * 0x9E3779B97F4A7C15ull) >> 32) < m.keep_below;
}

/// One hidden layer's masks for every step: the mask of step t is mask_at(layer, t). The GPU keeps
/// this per layer and reads the step from device memory, so a captured graph never changes.
struct DropoutLayer {
  std::uint64_t base = 0;        ///< mixes seed and layer
  std::uint64_t keep_below = 0;  ///< as DropoutMask::keep_below
  float scale = 1.0f;            ///< 1 / (1 - p)
};

/// The masks of hidden layer `layer` (0-based), dropping with probability p in [0, 1).
inline DropoutLayer make_dropout_layer(float p, std::uint64_t seed, int layer) {
  DropoutLayer l;
  l.base = mix64(seed ^ 0xD1B54A32D192ED03ull) + static_cast<std::uint64_t>(layer);
  l.keep_below = static_cast<std::uint64_t>(std::llround((1.0 - static_cast<double>(p)) * 4294967296.0));
  l.scale = 1.0f / (1.0f - p);
  return l;
}

/// The layer number of the input pixels' masks (--input-dropout): past every hidden layer's
/// (config.hpp's kMaxHiddenLayers), so that no hidden layer shares its masks.
inline constexpr int kInputDropoutLayer = 1024;

/// The layer's mask in optimizer step `step` (1-based).
MNIST_GPU_HD inline DropoutMask mask_at(const DropoutLayer& l, long long step) {
  DropoutMask m;
  m.key = mix64(l.base + static_cast<std::uint64_t>(step) * 0x100000001B3ull);
  m.keep_below = l.keep_below;
  m.scale = l.scale;
  return m;
}

/// The mask of hidden layer `layer` (0-based) in optimizer step `step` (1-based), dropping
/// with probability p in [0, 1).
inline DropoutMask make_dropout_mask(float p, std::uint64_t seed, long long step, int layer) {
  return mask_at(make_dropout_layer(p, seed, layer), step);
}

}  // namespace mnist_gpu
