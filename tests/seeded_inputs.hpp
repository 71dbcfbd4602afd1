// Seeded random inputs for the GPU tests and the micro-benchmarks (RngStream::test_data, so that
// they never alias an initialisation or a shuffle). Header-only, no test framework.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "mnist_gpu/rng.hpp"

namespace mnist_gpu::test {

inline Rng test_rng(std::uint64_t sub) { return Rng(20240601, RngStream::test_data, sub); }

/// n floats uniform in [lo, hi).
inline std::vector<float> uniform(Rng& rng, std::size_t n, double lo, double hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(lo + (hi - lo) * rng.uniform());
  return v;
}

/// n integers in [lo, hi] as floats.
inline std::vector<float> small_ints(Rng& rng, std::size_t n, int lo, int hi) {
  std::vector<float> v(n);
  const auto span = static_cast<std::uint64_t>(hi - lo + 1);
  for (auto& x : v) x = static_cast<float>(lo + static_cast<int>(rng.below(span)));
  return v;
}

/// n random bytes (all 256 values).
inline std::vector<std::uint8_t> bytes(Rng& rng, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (auto& x : v) x = static_cast<std::uint8_t>(rng.below(256));
  return v;
}

/// n labels in [0, classes).
inline std::vector<std::uint8_t> labels(Rng& rng, std::size_t n, int classes) {
  std::vector<std::uint8_t> v(n);
  for (auto& x : v) x = static_cast<std::uint8_t>(rng.below(static_cast<std::uint64_t>(classes)));
  return v;
}

}  // namespace mnist_gpu::test
