// The MLP's parameter layout: one flat arena holding every layer's weights, then every layer's
// biases, so that L2 decay covers exactly the prefix [0, n_weights) and the optimizer, zeroing
// and checkpoints each touch one contiguous buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

/// Where one dense layer lives in the arena. W is (out, in) row-major, as in PyTorch: y = x W^T + b.
struct LayerView {
  int in = 0, out = 0;
  std::size_t w = 0;  ///< offset of W (out, in)
  std::size_t b = 0;  ///< offset of b (out)
};

struct ParamLayout {
  explicit ParamLayout(const ModelSpec& spec);
  std::vector<LayerView> layers;
  std::size_t n_weights = 0;  ///< weights come first: [0, n_weights) gets L2 decay
  std::size_t size = 0;       ///< weights + biases
  int max_width = 0;          ///< widest layer output (workspace sizing)
};

/// Fills `params` (layout.size floats) with zero biases and weights drawn as `init` says:
/// standard: He-normal for relu and gelu (std sqrt(2/in)), Glorot-uniform for sigmoid and tanh
/// (+-sqrt(6/(in+out))); glorot: Glorot-uniform whatever the activation; uniform: every weight
/// uniform in [-uniform_bound, uniform_bound] (Ciresan et al. 2010). Each layer draws from its own
/// stream of `seed`, so widening one layer does not change the others' start.
template <class T>
void init_params(const ModelSpec& spec, const ParamLayout& layout, std::uint64_t seed, T* params,
                 WeightInit init = WeightInit::standard, double uniform_bound = 0.0);

/// Multiply-adds of one sample's forward pass (sum of in*out); a training step costs ~3x that.
double forward_macs_per_sample(const ModelSpec& spec);

}  // namespace mnist_gpu
