// VerifyReport's summaries (plain C++, shared by every build).
#include "mnist_gpu/verify.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/dropout.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu {

bool VerifyReport::ok() const {
  for (const auto& c : checks)
    if (!c.cmp.ok) return false;
  return !checks.empty();
}

double decision_margin(const ModelSpec& spec, const std::vector<float>& params, const float* x, int rows,
                       const MarginDropout& drop) {
  const ParamLayout layout(spec);
  const std::vector<double> p(params.begin(), params.end());
  std::vector<double> in(x, x + static_cast<std::size_t>(rows) * spec.inputs);
  double margin = INFINITY;
  const std::size_t n_layers = layout.layers.size();
  for (std::size_t li = 0; li < n_layers; ++li) {
    const LayerView& l = layout.layers[li];
    std::vector<double> z(static_cast<std::size_t>(rows) * l.out);
    cpu::dense_forward<double>(in.data(), p.data() + l.w, z.data(), rows, l.in, l.out);
    cpu::bias_act_forward<double>(z.data(), p.data() + l.b, rows, l.out, Activation::identity);
    if (li + 1 < n_layers) {
      if (spec.activation == Activation::relu)
        for (double v : z) margin = std::min(margin, std::fabs(v));
      const std::vector<double> no_bias(static_cast<std::size_t>(l.out), 0.0);
      cpu::bias_act_forward<double>(z.data(), no_bias.data(), rows, l.out, spec.activation);
      if (drop.p > 0.0f) {
        const DropoutMask m = make_dropout_mask(drop.p, drop.seed, drop.step, static_cast<int>(li));
        const std::size_t first = static_cast<std::size_t>(drop.first_row) * static_cast<std::size_t>(l.out);
        for (std::size_t i = 0; i < z.size(); ++i) z[i] = dropout_keep(m, first + i) ? z[i] * m.scale : 0.0;
      }
    } else if (l.out >= 2) {
      for (int r = 0; r < rows; ++r) {
        std::vector<double> row(z.begin() + static_cast<std::ptrdiff_t>(r) * l.out,
                                z.begin() + static_cast<std::ptrdiff_t>(r + 1) * l.out);
        std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<double>());
        margin = std::min(margin, row[0] - row[1]);
      }
    }
    in = std::move(z);
  }
  return margin;
}

const VerifyCheck* VerifyReport::worst() const {
  const VerifyCheck* w = nullptr;
  for (const auto& c : checks)
    if (!w || c.cmp.ratio > w->cmp.ratio) w = &c;
  return w;
}

}  // namespace mnist_gpu
