// run_bench's bookkeeping (not its speed: timing belongs in benchmarks, not tests).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <numeric>
#include <string>

#include "mnist_gpu/bench.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;

TEST(Bench, CountsWorkAndReportsEveryPoint) {
  const MnistFiles f = load_mnist_dir(mnist_gpu::test::data_dir());
  std::vector<std::uint32_t> idx(2000);
  std::iota(idx.begin(), idx.end(), 0u);
  const Dataset small = subset(f.train, idx), test = subset(f.test, idx);
  BenchConfig cfg;
  cfg.model.hidden = {16};
  cfg.batches = {1, 33, 128};
  cfg.samples_per_point = 256;
  int seen = 0;
  const BenchResult r = run_bench(cfg, small, test, [&](const BenchRow&) { ++seen; });
  EXPECT_EQ(seen, 3);
  ASSERT_EQ(r.rows.size(), 3u);
  // 784*16 + 16*10 multiply-adds forward, the same again for the weight gradients, and 16*10
  // for the one data gradient needed (none for the input images); 2 FLOPs each.
  EXPECT_DOUBLE_EQ(r.train_flops_per_sample, 2.0 * (2 * (784 * 16 + 16 * 10) + 16 * 10));
  EXPECT_DOUBLE_EQ(r.infer_flops_per_sample, 2.0 * (784 * 16 + 16 * 10));
  EXPECT_GT(r.cpu_sgemm_gflops, 0.0);
  EXPECT_EQ(r.rows[0].steps, 256);  // 256 samples at batch 1
  EXPECT_EQ(r.rows[2].steps, 10);   // at least 10 steps
  for (const auto& row : r.rows) {
    EXPECT_EQ(row.device, "cpu");
    EXPECT_EQ(row.data, "host");
    EXPECT_FALSE(row.graph);
    EXPECT_EQ(row.kernels_per_step, 0);
    EXPECT_GT(row.train_samples_per_s, 0.0);
    EXPECT_GT(row.infer_samples_per_s, 0.0);
    EXPECT_NEAR(row.epoch_s * row.train_samples_per_s, 60000.0, 1e-6);
    EXPECT_NEAR(row.train_gflops, row.train_samples_per_s * r.train_flops_per_sample * 1e-9, 1e-9);
  }
}

TEST(Bench, TableHasOneLinePerRowAndTheGpuSpeedupOverTheSameBatch) {
  BenchResult r;
  r.train_flops_per_sample = 2e6;
  r.cpu_sgemm_gflops = 100;
  r.gpu_sgemm_gflops = 50000;
  auto row = [](const char* dev, const char* data, bool graph, int kernels, int batch, double sps) {
    BenchRow b;
    b.device = dev;
    b.data = data;
    b.graph = graph;
    b.kernels_per_step = kernels;
    b.gemm = dev == std::string("cuda") ? "cublas" : "-";
    b.batch = batch;
    b.train_samples_per_s = sps;
    return b;
  };
  r.rows = {row("cpu", "host", false, 0, 256, 40000), row("cuda", "streamed", true, 23, 256, 1000000),
            row("cuda", "resident", false, 0, 256, 500000), row("cuda", "resident", true, 22, 512, 2000000)};
  const std::string t = bench_table(r);
  EXPECT_NE(t.find("| cpu | fp32 | - | host | - | - | 256 | 40000 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| cuda | fp32 | cublas | streamed | on | 23 | 256 | 1000000 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| 25.0x |"), std::string::npos) << t;  // 1000000 / 40000
  EXPECT_NE(t.find("| 12.5x |"), std::string::npos) << t;  // 500000 / 40000
  EXPECT_NE(t.find("| cuda | fp32 | cublas | resident | off | - | 256 |"), std::string::npos) << t;
  // No CPU row at batch 512: no speed-up is claimed for it.
  const std::size_t last = t.find("| cuda | fp32 | cublas | resident | on | 22 | 512 |");
  ASSERT_NE(last, std::string::npos) << t;
  EXPECT_EQ(t.find('x', last), std::string::npos) << t;
  EXPECT_NE(t.find("gpu 50000.0 GFLOP/s"), std::string::npos) << t;
  EXPECT_EQ(t.find("tensor-core ceiling"), std::string::npos) << t;  // fp32 rows: the SGEMM ceiling
  // bf16 rows are set against the BF16 tensor-core ceiling, which the table names.
  r.gpu_ceiling_gflops = 700000;
  r.gpu_ceiling_precision = "bf16";
  EXPECT_NE(bench_table(r).find("; bf16 tensor-core ceiling (the GPU rows' share): gpu 700000.0 GFLOP/s"),
            std::string::npos)
      << bench_table(r);
}

TEST(Bench, GpuCeilingWithoutGpuIsAnError) {
  if (probe_device().usable) GTEST_SKIP() << "a usable GPU is present";
  EXPECT_THROW(measure_gpu_sgemm_gflops(256), Error);
  for (Precision p : {Precision::tf32, Precision::bf16}) EXPECT_THROW(measure_gpu_gemm_gflops(256, p), Error);
}

TEST(Bench, CommandRefusesBadValuesNamingTheFlag) {
  for (const auto& [args, flag] : std::vector<std::pair<std::string, std::string>>{
           {"--batches 0", "--batches"}, {"--batches 64,,128", "--batches"}, {"--samples 0", "--samples"},
           {"--device tpu", "--device"}, {"--hidden 0", "--hidden"}, {"--data-path host", "--data-path"},
           {"--cuda-graph maybe", "--cuda-graph"},
           {"--batch 64", "--batch: bench measures every size in --batches; --batch does nothing here"}}) {
    const auto [out, code] = mnist_gpu::test::run_exe("bench " + args);
    EXPECT_EQ(code, 2) << args << "\n" << out;
    EXPECT_NE(out.find(flag), std::string::npos) << args << "\n" << out;
  }
}

TEST(Bench, UnwritableJsonFailsBeforeMeasuring) {
  const auto [out, code] = mnist_gpu::test::run_exe("bench --device cpu --json /nonexistent-dir/b.json");
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("/nonexistent-dir/b.json: cannot write the --json results here"), std::string::npos) << out;
  EXPECT_EQ(out.find("training samples/s"), std::string::npos) << out;  // no point was measured
}
