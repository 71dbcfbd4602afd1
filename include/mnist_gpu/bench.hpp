// `mnist_gpu bench`: training and inference throughput across batch sizes on the CPU and the GPU,
// with the work counted (FLOPs per sample) and set against the machine's measured SGEMM ceiling.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/dataset.hpp"

namespace mnist_gpu {

struct BenchConfig {
  std::vector<int> batches{32, 64, 128, 256, 512, 1024, 4096};
  ModelSpec model;
  OptimizerConfig optimizer;
  std::vector<DeviceChoice> devices{DeviceChoice::cpu};  ///< cpu and/or cuda
  /// The GPU's variants, each measured at every batch size: data path (the cost of the
  /// host-to-device stream is the difference) and graph replay on or off.
  std::vector<CudaConfig> cuda_variants{CudaConfig{}};
  long long samples_per_point = 32768;  ///< timed training samples per (device, batch), at least 10 steps
  std::uint64_t seed = 1;
};

struct BenchRow {
  std::string device;  ///< "cpu" or "cuda"
  std::string data;    ///< "host" (cpu), "streamed" or "resident" (cuda)
  bool graph = false;  ///< cuda: full-batch steps replayed from a CUDA graph
  int kernels_per_step = 0;  ///< cuda with graph: kernel nodes of the captured step; else 0
  std::string precision = "fp32";  ///< the products' precision (--precision)
  std::string gemm = "-";          ///< cuda: cublas or cublaslt; cpu: "-"
  int batch = 0;
  long long steps = 0;            ///< timed training steps (after a warm-up of steps / 10, at least 2)
  double train_samples_per_s = 0;
  double epoch_s = 0;             ///< 60000 / train_samples_per_s: one pass over the full training set
  double infer_samples_per_s = 0; ///< evaluation of the 10000 test images (forward + loss + confusion)
  double train_gflops = 0;        ///< achieved, from the counted FLOPs
  double share_of_ceiling = 0;    ///< train_gflops / the device's measured GEMM ceiling at the row's precision
};

struct BenchResult {
  double train_flops_per_sample = 0;  ///< forward 2 x MACs, weight grads 2 x MACs, data grads 2 x MACs past layer 1
  double infer_flops_per_sample = 0;  ///< 2 x multiply-adds
  double cpu_sgemm_gflops = 0;        ///< measured ceiling (square SGEMM), 0 if not measured
  double gpu_sgemm_gflops = 0;
  /// The GPU rows' ceiling: gpu_sgemm_gflops at fp32, the tensor-core ceiling at tf32 or bf16.
  double gpu_ceiling_gflops = 0;
  std::string gpu_ceiling_precision = "fp32";
  std::vector<BenchRow> rows;
};

/// The table `mnist_gpu bench` prints (Markdown): the counted work and ceilings, then one line
/// per row, GPU rows with their speed-up over the CPU row of the same batch size when there is one.
std::string bench_table(const BenchResult& r);

/// Runs every (device[, cuda variant], batch) point; `on_row` sees each row as it is measured (may be empty).
BenchResult run_bench(const BenchConfig& cfg, const Dataset& train, const Dataset& test,
                      const std::function<void(const BenchRow&)>& on_row);

/// GFLOP/s of an n x n x n single-precision GEMM on the CPU (OpenBLAS; median of 5 after 3 warm-ups).
double measure_cpu_sgemm_gflops(int n);
/// GFLOP/s of an n x n x n product with cuBLAS on device 0 at `precision`, timed with CUDA events
/// (median of 6 after 2 warm-ups): fp32 SGEMM (no TF32); tf32 cublasGemmEx on FP32 data with
/// TF32 tensor cores; bf16 cublasGemmEx with BF16 inputs, FP32 output and accumulation (the
/// tensor-core ceilings the precisions' rows are set against). Throws Error without a GPU.
double measure_gpu_gemm_gflops(int n, Precision precision);
inline double measure_gpu_sgemm_gflops(int n) { return measure_gpu_gemm_gflops(n, Precision::fp32); }

}  // namespace mnist_gpu
