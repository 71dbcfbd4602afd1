// The cuBLASLt autotuner (kernels/lt_autotune.hpp) on one real GEMM shape, the first dense layer's
// forward product at batch 256 (784 -> 512): the tuned algorithm computes exactly what the
// heuristic's first choice and the CPU compute (small-integer inputs: every sum is exact in FP32,
// whatever the order), and a second lookup, also through the cache file, hits the cache.
#include <cublasLt.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "gpu_test_util.hpp"
#include "lt_autotune.hpp"
#include "mnist_gpu/tune_cache.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
using namespace mnist_gpu::test;

namespace {

// Move-only owners of the cuBLASLt objects this test makes.
struct LtHandleDel {
  void operator()(cublasLtHandle_t h) const { cublasLtDestroy(h); }
};
struct LtDescDel {
  void operator()(cublasLtMatmulDesc_t d) const { cublasLtMatmulDescDestroy(d); }
};
struct LtLayoutDel {
  void operator()(cublasLtMatrixLayout_t l) const { cublasLtMatrixLayoutDestroy(l); }
};
using LtHandle = std::unique_ptr<std::remove_pointer_t<cublasLtHandle_t>, LtHandleDel>;
using LtDesc = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>, LtDescDel>;
using LtLayout = std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>, LtLayoutDel>;

LtLayout layout(std::uint64_t rows, std::uint64_t cols) {
  cublasLtMatrixLayout_t l = nullptr;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, rows, cols, static_cast<std::int64_t>(rows)));
  return LtLayout(l);
}

// Row-major X (batch, in) and W (out, in) are column-major (in, batch) and (in, out): the row-major
// output Y (batch, out) = X W^T is column-major (out, batch) = op(A) B with A = W^T stored (in, out),
// op(A) = A^T, B = X^T stored (in, batch). So m = out, n = batch, k = in, transa = T.
constexpr int kBatch = 256, kIn = 784, kOut = 512;

class LtAutotune : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    cublasLtHandle_t h = nullptr;
    CUBLAS_CHECK(cublasLtCreate(&h));
    handle_.reset(h);
    cublasLtMatmulDesc_t d = nullptr;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F));  // strict FP32: no TF32
    desc_.reset(d);
    const cublasOperation_t t = CUBLAS_OP_T;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    a_ = layout(kIn, kOut);
    b_ = layout(kIn, kBatch);
    c_ = layout(kOut, kBatch);
    // Small integers: |sum| <= 784 * 2 * 3, exact in FP32 in any order.
    std::vector<float> w(static_cast<std::size_t>(kOut) * kIn), x(static_cast<std::size_t>(kBatch) * kIn);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(static_cast<int>((i * 7919) % 5) - 2);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 104729 + 3) % 4);
    expect_.assign(static_cast<std::size_t>(kBatch) * kOut, 0.0f);
    for (int b = 0; b < kBatch; ++b)
      for (int o = 0; o < kOut; ++o) {
        double s = 0;
        for (int i = 0; i < kIn; ++i) s += double{w[o * kIn + i]} * x[b * kIn + i];
        expect_[static_cast<std::size_t>(b) * kOut + o] = static_cast<float>(s);
      }
    w_ = upload(w, stream());
    x_ = upload(x, stream());
    y_ = gpu::DeviceBuffer<float>(expect_.size());
    workspace_ = gpu::DeviceBuffer<std::uint8_t>(gpu::kCublasWorkspaceBytes);
  }

  gpu::LtMatmulProblem problem() const {
    gpu::LtMatmulProblem p;
    p.handle = handle_.get();
    p.op = desc_.get();
    p.a = a_.get(), p.b = b_.get(), p.c = c_.get(), p.d = c_.get();
    p.alpha = &one_, p.beta = &zero_;
    p.A = w_.get(), p.B = x_.get(), p.C = y_.get(), p.D = y_.get();
    p.workspace = workspace_.get();
    p.workspace_bytes = workspace_.bytes();
    p.stream = stream();
    return p;
  }

  // Y computed with `algo`, after poisoning it.
  std::vector<float> run_with(const cublasLtMatmulAlgo_t& algo) {
    const gpu::LtMatmulProblem p = problem();
    poison(y_.get(), y_.size(), stream());
    CUBLAS_CHECK(cublasLtMatmul(p.handle, p.op, p.alpha, p.A, p.a, p.B, p.b, p.beta, p.C, p.c, p.D, p.d, &algo,
                                p.workspace, p.workspace_bytes, p.stream));
    return download(y_, stream());
  }

  GemmKey key() const {
    GemmKey k;
    k.device = gpu::current_tune_device();
    k.m = kOut, k.n = kBatch, k.k = kIn;
    k.trans_a = true;
    return k;
  }

  LtHandle handle_;
  LtDesc desc_;
  LtLayout a_, b_, c_;
  float one_ = 1.0f, zero_ = 0.0f;
  gpu::DeviceBuffer<float> w_, x_, y_;  // (512, 784), (256, 784), (256, 512) row-major
  gpu::DeviceBuffer<std::uint8_t> workspace_;
  std::vector<float> expect_;  // (256, 512)
};

}  // namespace

TEST_F(LtAutotune, TunedAlgorithmComputesWhatTheHeuristicsFirstDoes) {
  const std::vector<float> first = run_with(gpu::heuristic_first_algo(problem()));
  EXPECT_EQ(first, expect_);
  const gpu::LtTuned t = gpu::tune_lt_matmul(problem());
  EXPECT_GE(t.entry.candidates, 1);
  EXPECT_GT(t.entry.median_us, 0.0);
  EXPECT_GE(t.heuristic_rank, 0);
  EXPECT_TRUE(gpu::lt_algo_usable(problem(), t.algo));
  const std::vector<float> tuned = run_with(t.algo);
  ASSERT_EQ(tuned.size(), expect_.size());
  for (std::size_t i = 0; i < tuned.size(); ++i)
    ASSERT_EQ(tuned[i], first[i]) << "element " << i << " (rank " << t.heuristic_rank << " algorithm)";
}

TEST_F(LtAutotune, SecondLookupHitsTheCacheAlsoThroughItsFile) {
  TempDir dir;
  const TuneCacheEnv env{(dir / "tune.json").string(), "", ""};
  OpenedTuneCache opened = open_tune_cache(gpu::current_tune_device(), env);
  ASSERT_FALSE(opened.warning);
  const gpu::LtLookup first = gpu::lookup_or_tune(opened.cache, key(), problem());
  EXPECT_FALSE(first.hit);
  const gpu::LtLookup second = gpu::lookup_or_tune(opened.cache, key(), problem());
  EXPECT_TRUE(second.hit);
  EXPECT_EQ(std::memcmp(&first.algo, &second.algo, sizeof first.algo), 0);
  ASSERT_FALSE(save_tune_cache(opened));

  OpenedTuneCache reopened = open_tune_cache(gpu::current_tune_device(), env);
  ASSERT_FALSE(reopened.warning) << *reopened.warning;
  const gpu::LtLookup third = gpu::lookup_or_tune(reopened.cache, key(), problem());
  EXPECT_TRUE(third.hit);
  EXPECT_EQ(std::memcmp(&first.algo, &third.algo, sizeof first.algo), 0);
  EXPECT_EQ(run_with(third.algo), expect_);
}
