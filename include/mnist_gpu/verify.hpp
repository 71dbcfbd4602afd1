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
  std::string precision = "fp32";  ///< the products' precision (--precision)
  std::string gemm = "cublas";     ///< the GEMM path that ran (--gemm, or cublaslt for tf32/bf16)
  std::vector<VerifyCheck> checks;
  bool ok() const;
  /// The check with the largest error ratio.
  const VerifyCheck* worst() const;
};

/// A float decision closer than this to its threshold may legitimately come out differently on
/// the GPU and the CPU, whose sums run in different orders (measured: pre-activations up to 5e-6
/// apart): a relu unit near 0 passes its gradient on one side and blocks it on the other, which
/// moves a whole row of dW far outside kTolStep, and two near-equal outputs can swap the argmax.
inline constexpr double kDecisionMargin = 5e-5;
/// The same at tf32 and bf16, where the products' operands carry 10 or 7 mantissa bits and the
/// two sides' pre-activations can lie ~1e-4 apart (see kTolStepTf32, kTolStepBf16).
inline constexpr double kDecisionMarginRounded = 1e-3;

/// The decision margin of a precision.
inline double decision_margin_for(Precision p) {
  return p == Precision::fp32 ? kDecisionMargin : kDecisionMarginRounded;
}

/// The tolerance of a whole training step at a precision: kTolStep, kTolStepTf32, kTolStepBf16.
inline const Tolerance& step_tolerance(Precision p) {
  switch (p) {
    case Precision::tf32: return kTolStepTf32;
    case Precision::bf16: return kTolStepBf16;
    case Precision::fp32: break;
  }
  return kTolStep;
}

/// Dropout as a training step applies it, for decision_margin: the masks of step `step` of a net
/// seeded `seed`, with x's rows standing at batch rows first_row, first_row + 1, ... (a mask
/// element depends on its position in the batch). p 0: no dropout (an evaluation pass).
struct MarginDropout {
  float p = 0.0f;
  std::uint64_t seed = 0;
  long long step = 0;
  int first_row = 0;
};

/// The smallest distance, in float64, of any decision from its threshold over rows x (rows,
/// inputs): |pre-activation| of every hidden unit (relu nets only) and the gap between the two
/// largest outputs of each row, with the hidden activations masked as `drop` says.
double decision_margin(const ModelSpec& spec, const std::vector<float>& params, const float* x, int rows,
                       const MarginDropout& drop = {});

/// For each activation x loss at spec.precision, on the GEMM path `gemm` (cuBLASLt whenever the
/// precision is not fp32), at `batch` rows and at the ragged last batch of an epoch over
/// `data`: outputs, loss, every weight and bias gradient, and one update of `opt` from identical
/// gradients, GPU vs CPU. The batch takes the rows of the first epoch's order whose decisions
/// clear kDecisionMargin (almost all do). On GPU `device` (0-based among the visible ones);
/// throws Error when it is not a usable GPU.
VerifyReport verify_gpu(const ModelSpec& spec, const OptimizerConfig& opt, const Dataset& data, int batch,
                        std::uint64_t seed, int device = 0, GemmPath gemm = GemmPath::cublas);

}  // namespace mnist_gpu
