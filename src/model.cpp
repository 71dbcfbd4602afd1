// Parameter layout and initialisation of the MLP.
#include "mnist_gpu/model.hpp"

#include <algorithm>
#include <cmath>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/rng.hpp"

namespace mnist_gpu {

ParamLayout::ParamLayout(const ModelSpec& spec) {
  const std::vector<int> w = spec.widths();
  std::size_t offset = 0;
  for (std::size_t i = 0; i + 1 < w.size(); ++i) {
    LayerView l;
    l.in = w[i];
    l.out = w[i + 1];
    l.w = offset;
    offset += static_cast<std::size_t>(l.in) * l.out;
    layers.push_back(l);
    max_width = std::max(max_width, l.out);
  }
  n_weights = offset;
  for (auto& l : layers) {
    l.b = offset;
    offset += static_cast<std::size_t>(l.out);
  }
  size = offset;
}

template <class T>
void init_params(const ModelSpec& spec, const ParamLayout& layout, std::uint64_t seed, T* params, WeightInit init,
                 double uniform_bound) {
  const bool he_normal =
      init == WeightInit::standard && activation_info(spec.activation).init == InitScheme::he_normal;
  for (std::size_t li = 0; li < layout.layers.size(); ++li) {
    const LayerView& l = layout.layers[li];
    Rng rng(seed, RngStream::init, li);
    const std::size_t n = static_cast<std::size_t>(l.in) * l.out;
    // The output layer follows the hidden layers' scheme too: it keeps initial logits small.
    if (he_normal) {
      const double std_dev = std::sqrt(2.0 / l.in);
      for (std::size_t k = 0; k < n; ++k) params[l.w + k] = static_cast<T>(std_dev * rng.normal());
    } else {
      const double a = init == WeightInit::uniform ? uniform_bound : std::sqrt(6.0 / (l.in + l.out));
      for (std::size_t k = 0; k < n; ++k) params[l.w + k] = static_cast<T>(a * (2.0 * rng.uniform() - 1.0));
    }
    std::fill(params + l.b, params + l.b + l.out, T(0));
  }
}

template void init_params<float>(const ModelSpec&, const ParamLayout&, std::uint64_t, float*, WeightInit, double);
template void init_params<double>(const ModelSpec&, const ParamLayout&, std::uint64_t, double*, WeightInit,
                                   double);

double forward_macs_per_sample(const ModelSpec& spec) {
  const std::vector<int> w = spec.widths();
  double macs = 0;
  for (std::size_t i = 0; i + 1 < w.size(); ++i) macs += static_cast<double>(w[i]) * w[i + 1];
  return macs;
}

}  // namespace mnist_gpu
