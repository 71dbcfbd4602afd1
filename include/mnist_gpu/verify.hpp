// `mnist_gpu verify`: one training step on the GPU and on the CPU from the same parameters and
// batch, compared tensor by tensor under the named tolerances of compare.hpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mnist_gpu/compare.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/dataset.hpp"

namespace mnist_gpu {

struct VerifyCheck {
  std::string tensor;  ///< e.g. "relu/xent batch 96: grad W2"
  Tolerance tol;
  Comparison cmp;
};

struct VerifyReport {
  std::string device;
  std::vector<VerifyCheck> checks;
  bool ok() const;
  /// The check with the largest error ratio.
  const VerifyCheck* worst() const;
};

/// For each activation x loss, at `batch` rows and at the ragged last batch of an epoch over
/// `data`: outputs, loss, every weight and bias gradient, and one update of `opt` from identical
/// gradients, GPU vs CPU. Throws Error when no usable GPU exists.
VerifyReport verify_gpu(const ModelSpec& spec, const OptimizerConfig& opt, const Dataset& data, int batch,
                        std::uint64_t seed);

}  // namespace mnist_gpu
