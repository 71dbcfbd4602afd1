// Synchronised host <-> device copies and poisoning for tests and benchmarks (not for the
// training path, which never synchronises per step). Host-only header: compiles with g++ and nvcc.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "cuda_check.hpp"
#include "cuda_resources.hpp"

namespace mnist_gpu::gpu {

/// A device copy of h (synchronised: h may go away on return).
template <class T>
DeviceBuffer<T> upload(const std::vector<T>& h, cudaStream_t s) {
  DeviceBuffer<T> d(h.size());
  if (!h.empty()) CUDA_CHECK(cudaMemcpyAsync(d.get(), h.data(), d.bytes(), cudaMemcpyHostToDevice, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  return d;
}

/// Overwrites n elements at device address d with h's first n (synchronised).
template <class T>
void upload_to(T* d, const std::vector<T>& h, cudaStream_t s) {
  if (!h.empty()) CUDA_CHECK(cudaMemcpyAsync(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
}

/// n elements from device address d, after everything queued on s (the streams are
/// non-blocking, so a plain cudaMemcpy on the legacy stream would not wait for them).
template <class T>
std::vector<T> download(const T* d, std::size_t n, cudaStream_t s) {
  std::vector<T> h(n);
  if (n > 0) CUDA_CHECK(cudaMemcpyAsync(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  return h;
}

template <class T>
std::vector<T> download(const DeviceBuffer<T>& d, cudaStream_t s) {
  return download(d.get(), d.size(), s);
}

/// Fills n elements at d with bytes 0xFF (a NaN as float or double), so that an element the
/// kernel fails to write fails the comparison.
template <class T>
void poison(T* d, std::size_t n, cudaStream_t s) {
  if (n > 0) CUDA_CHECK(cudaMemsetAsync(d, 0xFF, n * sizeof(T), s));
}

template <class T>
void poison(DeviceBuffer<T>& d, cudaStream_t s) {
  poison(d.get(), d.size(), s);
}

}  // namespace mnist_gpu::gpu
