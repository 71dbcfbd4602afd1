// The rounding of --precision on the CPU: what a GEMM operand becomes before the tensor cores
// multiply it (TF32: 10 explicit mantissa bits; BF16: 7), so that the CPU twin of each precision
// exists and CPU training at that precision can be tested. Round to nearest, ties to even; NaN
// stays NaN (quiet), infinities stay infinite, a finite value that rounds past the largest
// representable one becomes infinite (as the hardware conversion does).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

namespace detail {
// Keeps the top (23 - drop) mantissa bits of v, rounded to nearest, ties to even.
inline float round_mantissa(float v, int drop) {
  std::uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  if ((u & 0x7F800000u) == 0x7F800000u) {  // inf or NaN
    if (u & 0x007FFFFFu) u |= 0x00400000u;  // NaN: quiet, payload's top bits kept
    std::memcpy(&v, &u, sizeof v);
    return v;
  }
  const std::uint32_t half = 1u << (drop - 1), lsb = (u >> drop) & 1u;
  u += half - 1 + lsb;  // carries into the exponent when the mantissa overflows (up to inf)
  u &= ~((1u << drop) - 1u);
  std::memcpy(&v, &u, sizeof v);
  return v;
}
}  // namespace detail

/// v rounded to TF32 (1 sign, 8 exponent, 10 mantissa bits), kept in a float.
inline float round_tf32(float v) { return detail::round_mantissa(v, 13); }
/// v rounded to BF16 (1 sign, 8 exponent, 7 mantissa bits), kept in a float.
inline float round_bf16(float v) { return detail::round_mantissa(v, 16); }

/// v as a GEMM operand of precision p: unchanged for fp32.
inline float round_operand(float v, Precision p) {
  switch (p) {
    case Precision::tf32: return round_tf32(v);
    case Precision::bf16: return round_bf16(v);
    case Precision::fp32: break;
  }
  return v;
}

/// dst[i] = round_operand(src[i], p) for n elements (src may equal dst). fp32 copies exactly
/// (doubles stay doubles); otherwise, for T = double, the value goes through float first: the
/// emulated operand is what the GPU's float tensor holds, rounded.
template <class T>
void round_operands(const T* src, T* dst, std::size_t n, Precision p) {
  if (p == Precision::fp32) {
    if (src != dst)
      for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
    return;
  }
  for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<T>(round_operand(static_cast<float>(src[i]), p));
}

}  // namespace mnist_gpu
