// run_bench(): throughput of the backends' own training and evaluation paths, warm-up excluded.
#include "mnist_gpu/bench.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/train.hpp"


namespace mnist_gpu {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// n rows of a seeded order over the training set, cycling when n exceeds it.
std::vector<std::uint32_t> take_order(std::uint64_t seed, int count, long long n) {
  const std::vector<std::uint32_t> order = epoch_order(seed, 1, count);
  std::vector<std::uint32_t> out(static_cast<std::size_t>(n));
  for (long long i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = order[static_cast<std::size_t>(i % count)];
  return out;
}

}  // namespace

double measure_cpu_sgemm_gflops(int n) {
  std::vector<float> a(static_cast<std::size_t>(n) * n), b(a.size()), c(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
    b[i] = static_cast<float>(i % 5) * 0.125f - 0.25f;
  }
  std::vector<double> gflops;
  for (int rep = 0; rep < 8; ++rep) {  // 3 warm-ups (thread pool, caches, clocks), then 5 timed
    const auto t0 = clock_type::now();
    cpu::dense_forward(a.data(), b.data(), c.data(), n, n, n);  // c = a b^T: one n^3 SGEMM
    const double s = seconds_since(t0);
    if (rep >= 3) gflops.push_back(2.0 * n * n * static_cast<double>(n) / s * 1e-9);
  }
  std::sort(gflops.begin(), gflops.end());
  return gflops[gflops.size() / 2];
}

BenchResult run_bench(const BenchConfig& cfg, const Dataset& train, const Dataset& test,
                      const std::function<void(const BenchRow&)>& on_row) {
  BenchResult result;
  const double macs = forward_macs_per_sample(cfg.model);
  // Forward 2 x macs; the weight gradients 2 x macs; the data gradients 2 x macs of every layer
  // but the first (nothing needs the gradient of the input images).
  const double first_layer = static_cast<double>(cfg.model.inputs) *
                             (cfg.model.hidden.empty() ? cfg.model.outputs : cfg.model.hidden.front());
  result.train_flops_per_sample = 4.0 * macs + 2.0 * (macs - first_layer);
  result.infer_flops_per_sample = 2.0 * macs;
  for (DeviceChoice dev : cfg.devices) {
    const bool cpu = dev == DeviceChoice::cpu;
    double ceiling = 0;
    if (cpu) ceiling = result.cpu_sgemm_gflops = measure_cpu_sgemm_gflops(2048);
    else {
      result.gpu_sgemm_gflops = measure_gpu_sgemm_gflops(4096);
      result.gpu_ceiling_precision = to_string(cfg.model.precision);
      ceiling = result.gpu_ceiling_gflops = cfg.model.precision == Precision::fp32
                                                ? result.gpu_sgemm_gflops
                                                : measure_gpu_gemm_gflops(4096, cfg.model.precision);
    }
    const std::vector<CudaConfig> variants = cpu ? std::vector<CudaConfig>{CudaConfig{}} : cfg.cuda_variants;
    for (const CudaConfig& variant : variants)
    for (int batch : cfg.batches) {
      auto backend = cpu ? make_cpu_backend(cfg.model, cfg.optimizer, batch, cfg.seed)
                         : make_cuda_backend(cfg.model, cfg.optimizer, batch, cfg.seed, variant);
      const long long steps = std::max<long long>(10, cfg.samples_per_point / batch);
      const long long warm = std::max<long long>(2, steps / 10);
      const auto warm_order = take_order(cfg.seed, train.count, warm * batch);
      const auto timed_order = take_order(cfg.seed + 1, train.count, steps * batch);
      run_epoch(*backend, train, warm_order, cfg.optimizer.lr);
      // run_epoch returns after the device has finished (end_epoch reads the loss), so the wall
      // clock around it covers the GPU work too.
      const auto t0 = clock_type::now();
      run_epoch(*backend, train, timed_order, cfg.optimizer.lr);
      const double train_s = seconds_since(t0);
      backend->evaluate(test);
      const auto t1 = clock_type::now();
      backend->evaluate(test);
      const double infer_s = seconds_since(t1);

      BenchRow row;
      row.device = cpu ? "cpu" : "cuda";
      row.data = cpu ? "host" : to_string(variant.data);
      row.graph = !cpu && variant.graph;
      row.kernels_per_step = backend->kernels_per_step();
      row.precision = to_string(cfg.model.precision);
      row.gemm = cpu ? "-" : to_string(effective_gemm(variant, cfg.model.precision));
      row.batch = batch;
      row.steps = steps;
      row.train_samples_per_s = static_cast<double>(steps * batch) / train_s;
      row.epoch_s = 60000.0 / row.train_samples_per_s;
      row.infer_samples_per_s = test.count / infer_s;
      row.train_gflops = row.train_samples_per_s * result.train_flops_per_sample * 1e-9;
      row.share_of_ceiling = ceiling > 0 ? row.train_gflops / ceiling : 0;
      result.rows.push_back(row);
      if (on_row) on_row(row);
    }
  }
  return result;
}

std::string bench_table(const BenchResult& r) {
  std::string out = fmt::format("training FLOPs per sample {:.3g}, inference {:.3g}; SGEMM ceiling: cpu {:.1f} GFLOP/s",
                                r.train_flops_per_sample, r.infer_flops_per_sample, r.cpu_sgemm_gflops);
  if (r.gpu_sgemm_gflops > 0) out += fmt::format(", gpu {:.1f} GFLOP/s", r.gpu_sgemm_gflops);
  if (r.gpu_ceiling_gflops > 0 && r.gpu_ceiling_precision != "fp32")
    out += fmt::format("; {} tensor-core ceiling (the GPU rows' share): gpu {:.1f} GFLOP/s", r.gpu_ceiling_precision,
                       r.gpu_ceiling_gflops);
  out += "\n| device | precision | gemm | data | graph | kernels/step | batch | train samples/s | epoch s | infer samples/s | GFLOP/s "
         "| share of ceiling | GPU/CPU |\n|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const BenchRow& row : r.rows) {
    std::string speedup;
    if (row.device == "cuda")
      for (const BenchRow& c : r.rows)
        if (c.device == "cpu" && c.batch == row.batch)
          speedup = fmt::format("{:.1f}x", row.train_samples_per_s / c.train_samples_per_s);
    const bool gpu = row.device == "cuda";
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {:.0f} | {:.3f} | {:.0f} | {:.1f} | {:.0f}% | {} |\n",
                       row.device, row.precision, row.gemm, row.data, gpu ? (row.graph ? "on" : "off") : "-",
                       row.kernels_per_step > 0 ? std::to_string(row.kernels_per_step) : "-", row.batch,
                       row.train_samples_per_s, row.epoch_s, row.infer_samples_per_s, row.train_gflops,
                       100 * row.share_of_ceiling, speedup);
  }
  return out;
}

}  // namespace mnist_gpu
