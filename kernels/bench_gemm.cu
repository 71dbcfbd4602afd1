// measure_gpu_gemm_gflops(): the GPU's dense-product ceiling through cuBLAS at a precision (FP32
// SGEMM, or the TF32/BF16 tensor cores through cublasGemmEx), timed with CUDA events.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda_resources.hpp"
#include "gpu_ops.hpp"
#include "lt_gemm.hpp"
#include "mnist_gpu/bench.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu {

double measure_gpu_gemm_gflops(int n, Precision precision) {
  const DeviceProbe probe = probe_device();
  if (!probe.usable) throw Error("no usable GPU: " + probe.reason);
  gpu::Stream stream;
  gpu::CublasHandle cublas(stream.get(), precision == Precision::tf32);
  const std::size_t count = static_cast<std::size_t>(n) * n;
  gpu::DeviceBuffer<float> a(count), b(count), c(count);
  // Non-zero data: a GEMM on zeros can run faster than on real values.
  std::vector<float> h(count);
  for (std::size_t i = 0; i < count; ++i) h[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
  CUDA_CHECK(cudaMemcpyAsync(a.get(), h.data(), a.bytes(), cudaMemcpyHostToDevice, stream.get()));
  CUDA_CHECK(cudaMemcpyAsync(b.get(), h.data(), b.bytes(), cudaMemcpyHostToDevice, stream.get()));
  // BF16 copies of the operands (the bf16 rows' GEMMs read such copies).
  gpu::DeviceBuffer<std::uint16_t> a16(precision == Precision::bf16 ? count : 0),
      b16(precision == Precision::bf16 ? count : 0);
  if (precision == Precision::bf16) {
    gpu::to_bf16(a.get(), a16.get(), count, stream.get());
    gpu::to_bf16(b.get(), b16.get(), count, stream.get());
  }
  stream.sync();
  const float one = 1.0f, zero = 0.0f;
  auto product = [&] {
    switch (precision) {
      case Precision::fp32: gpu::dense_forward(a.get(), b.get(), c.get(), n, n, n, cublas.get()); return;
      case Precision::tf32:
        CUBLAS_CHECK(cublasGemmEx(cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.get(), CUDA_R_32F, n,
                                  b.get(), CUDA_R_32F, n, &zero, c.get(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F_FAST_TF32,
                                  CUBLAS_GEMM_DEFAULT));
        return;
      case Precision::bf16:
        CUBLAS_CHECK(cublasGemmEx(cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a16.get(), CUDA_R_16BF, n,
                                  b16.get(), CUDA_R_16BF, n, &zero, c.get(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
        return;
    }
  };
  gpu::Event start(true), stop(true);
  std::vector<double> gflops;
  for (int rep = 0; rep < 8; ++rep) {
    start.record(stream.get());
    product();
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
