// measure_gpu_sgemm_gflops(): the GPU's FP32 SGEMM ceiling through cuBLAS, timed with CUDA events.
#include <algorithm>
#include <vector>

#include "cuda_resources.hpp"
#include "gpu_ops.hpp"
#include "mnist_gpu/bench.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu {

double measure_gpu_sgemm_gflops(int n) {
  const DeviceProbe probe = probe_device();
  if (!probe.usable) throw Error("no usable GPU: " + probe.reason);
  gpu::Stream stream;
  gpu::CublasHandle cublas(stream.get());
  const std::size_t count = static_cast<std::size_t>(n) * n;
  gpu::DeviceBuffer<float> a(count), b(count), c(count);
  // Non-zero data: a GEMM on zeros can run faster than on real values.
  std::vector<float> h(count);
  for (std::size_t i = 0; i < count; ++i) h[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
  CUDA_CHECK(cudaMemcpyAsync(a.get(), h.data(), a.bytes(), cudaMemcpyHostToDevice, stream.get()));
  CUDA_CHECK(cudaMemcpyAsync(b.get(), h.data(), b.bytes(), cudaMemcpyHostToDevice, stream.get()));
  stream.sync();
  gpu::Event start(true), stop(true);
  std::vector<double> gflops;
  for (int rep = 0; rep < 8; ++rep) {
    start.record(stream.get());
    gpu::dense_forward(a.get(), b.get(), c.get(), n, n, n, cublas.get());
    stop.record(stream.get());
    stop.sync();
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
    if (rep > 1) gflops.push_back(2.0 * n * n * static_cast<double>(n) / (ms * 1e-3) * 1e-9);
  }
  std::sort(gflops.begin(), gflops.end());
  return gflops[gflops.size() / 2];
}

}  // namespace mnist_gpu
