// The gradient check of the CPU reference, shared by the tests that need it: central differences
// of a CpuNet<double>'s mean batch loss on every parameter against its backward, at a fixed
// training step (so dropout's masks, a function of the step, are fixed and the loss is smooth).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "mnist_gpu/cpu_net.hpp"

namespace mnist_gpu::test {

// Central differences in float64: truncation error ~h^2 |L'''| ~ 1e-12, rounding ~eps |L| / h
// ~ 2e-16 * 3 / 1e-6 ~ 1e-9 (measured worst error in test_gradients.cpp: a few 1e-10). kFdAbs
// covers the rounding floor with ~10x margin; kFdRel covers truncation on the largest gradients. A
// real backprop bug (a missing 1/batch, a wrong derivative, a transposed product) is off by O(1)
// relative error.
inline constexpr double kFdStep = 1e-6;
inline constexpr double kFdAbs = 1e-8;
inline constexpr double kFdRel = 1e-6;

// The mean loss over the batch, as the trainer defines it (loss_sum / batch), of a forward pass
// at `step` (0: evaluation, no dropout).
inline double mean_loss(CpuNet<double>& net, const std::vector<double>& x, const std::vector<std::uint8_t>& labels,
                        int batch, long long step = 0) {
  net.forward(x.data(), batch, step);
  double loss_sum = 0;
  unsigned long long correct = 0;
  net.loss(labels.data(), batch, &loss_sum, &correct);
  return loss_sum / batch;
}

struct FdCheck {
  std::vector<double> analytic;  ///< backward's gradient at the net's parameters
  double backward_loss = 0;      ///< backward's mean loss (the same quantity as mean_loss's)
  int failures = 0;              ///< parameters whose difference is off by more than kFdAbs + kFdRel |fd|
  std::string worst;             ///< the worst parameter, for the failure message
};

// Runs backward at `step`, then differences every parameter (restoring each).
inline FdCheck check_central_differences(CpuNet<double>& net, const std::vector<double>& x,
                                         const std::vector<std::uint8_t>& labels, int batch, long long step = 0) {
  FdCheck r;
  net.forward(x.data(), batch, step);
  double loss_sum = 0;
  unsigned long long correct = 0;
  net.backward(x.data(), labels.data(), batch, &loss_sum, &correct);
  r.analytic = net.grads();
  r.backward_loss = loss_sum / batch;
  std::vector<double>& p = net.params();
  if (r.analytic.size() != p.size()) {
    r.failures = static_cast<int>(p.size());
    r.worst = "backward's gradient has " + std::to_string(r.analytic.size()) + " values for " +
              std::to_string(p.size()) + " parameters";
    return r;
  }
  double worst_excess = -std::numeric_limits<double>::infinity(), worst_fd = 0;
  std::size_t worst = 0;
  for (std::size_t k = 0; k < p.size(); ++k) {
    const double saved = p[k];
    p[k] = saved + kFdStep;
    const double up = mean_loss(net, x, labels, batch, step);
    p[k] = saved - kFdStep;
    const double down = mean_loss(net, x, labels, batch, step);
    p[k] = saved;
    const double fd = (up - down) / (2 * kFdStep);
    const double excess = std::abs(fd - r.analytic[k]) - (kFdAbs + kFdRel * std::abs(fd));
    r.failures += excess > 0;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = k;
      worst_fd = fd;
    }
  }
  std::ostringstream s;
  s << r.failures << " of " << p.size() << " parameters disagree; worst: index " << worst << " (n_weights "
    << net.layout().n_weights << ") finite difference " << worst_fd << " vs backward " << r.analytic[worst]
    << ", |diff| " << std::abs(worst_fd - r.analytic[worst]);
  r.worst = s.str();
  return r;
}

}  // namespace mnist_gpu::test
