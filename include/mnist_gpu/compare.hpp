// Named tolerances and the element-wise comparison used wherever a result is checked against a
// reference (GPU ops vs CPU twins in tests, `mnist_gpu verify`): the worst element is reported.
#pragma once
#include <cmath>
#include <cstddef>
#include <string>

namespace mnist_gpu {

/// |got - want| <= atol + rtol * |want| for every element.
struct Tolerance {
  const char* name;
  double atol;
  double rtol;
};

// Each bound with its reason. FP32 throughout; the GPU's expf/tanhf/logf differ from glibc by a
// few ulp, and a sum of k products in another order differs by about sqrt(k) ulp of the sum.
/// Exact conversions and comparisons (u8 -> float, relu, counts).
inline constexpr Tolerance kTolExact{"exact", 0.0, 0.0};
/// One or two transcendentals per element (sigmoid, tanh, gelu's erf and exp, softmax): a few ulp
/// of values of order 1.
inline constexpr Tolerance kTolElementwise{"elementwise", 1e-6, 1e-5};
/// Dot products of length <= 4096 of O(1) values: reordering error ~ sqrt(k) * 6e-8 * |terms|.
inline constexpr Tolerance kTolGemm{"gemm", 1e-5, 1e-4};
/// A reduction over a batch (bias gradient, loss sums) in another order.
inline constexpr Tolerance kTolReduction{"reduction", 1e-6, 1e-4};
/// A full training step: errors of all the above compounded through the layers.
inline constexpr Tolerance kTolStep{"step", 1e-5, 1e-3};
/// A full training step at --precision tf32 against the CPU's TF32 emulation: the CPU rounds
/// operands to nearest-even, the tensor cores' conversion may round otherwise (1 TF32 ulp, 2^-11
/// relative, per operand), compounded through the layers.
inline constexpr Tolerance kTolStepTf32{"step-tf32", 1e-4, 1e-2};
/// A full training step at --precision bf16 against the CPU's BF16 emulation: the operands round
/// alike, but an FP32 sum that differs in its last bit can round a hidden activation or delta to
/// the neighbouring BF16 value (2^-8 relative) before the next product.
inline constexpr Tolerance kTolStepBf16{"step-bf16", 1e-3, 3e-2};
/// One optimizer update (adam divides by sqrt(v) + eps: a few ulp of the step).
inline constexpr Tolerance kTolOptimizer{"optimizer", 1e-7, 1e-5};
/// Max-norm's rescaling: a row's norm summed in float in a tree (GPU) vs in double (CPU), rows
/// up to a few thousand long: ~sqrt(k) ulp of the norm, so the scale c / norm and each scaled
/// weight differ by a few 1e-7 relative.
inline constexpr Tolerance kTolMaxNorm{"max-norm", 1e-7, 1e-5};

/// RMSprop's running average of squared gradients, sq = rho sq + (1 - rho) g^2: g within the
/// step tolerance's relative bound gives sq within twice it; hidden-layer sq is ~1e-8, far below
/// kTolStep's atol (which would pass anything), so its absolute floor is ~1% of those values: a
/// gradient entry with heavy cancellation can differ by more than the relative bound.
inline constexpr Tolerance kTolRmspropSq{"rmsprop-sq", 1e-10, 2e-3};

/// A deformed image (augment.hpp): the GPU's sinf/cosf/tanf differ by an ulp or two, moving the
/// sampled point by ~1e-5 pixel at the tests' largest scale (kernels/augment.cu is compiled
/// without fused multiply-adds, so its sums round as the CPU's do); a bilinear sample moves by at
/// most that times the largest step between neighbouring pixels (1).
inline constexpr Tolerance kTolAugment{"augment", 1e-4, 0.0};

struct Comparison {
  bool ok = true;
  std::size_t worst = 0;    ///< index of the element with the largest err / bound
  double got = 0, want = 0;  ///< the values there
  double ratio = 0;          ///< |got - want| / bound at the worst element (<= 1 passes)
  double want_norm = 0;      ///< L2 norm of the reference: must be non-zero to mean anything
  std::string describe(const std::string& what) const {
    return what + ": worst element " + std::to_string(worst) + " got " + std::to_string(got) + " want " +
           std::to_string(want) + " (error " + std::to_string(ratio) + "x the tolerance), reference norm " +
           std::to_string(want_norm);
  }
};

/// Compares got[0..n) with want[0..n) under `tol`: NaN on either side fails, an infinity passes
/// only against the same infinity.
template <class A, class B>
Comparison compare(const A* got, const B* want, std::size_t n, const Tolerance& tol) {
  Comparison c;
  double norm2 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    norm2 += w * w;
    const double bound = tol.atol + tol.rtol * std::fabs(w);
    const double err = std::fabs(g - w);
    double r;
    if (std::isnan(g) || std::isnan(w)) r = INFINITY;
    else if (g == w) r = 0;  // equal infinities too (their difference is NaN)
    else if (bound == 0 || std::isinf(err)) r = INFINITY;
    else r = err / bound;
    if (i == 0 || r > c.ratio) {
      c.ratio = r;
      c.worst = i;
      c.got = g;
      c.want = w;
    }
  }
  c.want_norm = std::sqrt(norm2);
  c.ok = c.ratio <= 1.0;
  return c;
}

}  // namespace mnist_gpu
