// Choosing a cuBLASLt algorithm per GEMM by timing: the heuristic's best few candidates are each
// run after a warm-up and timed with CUDA events; the fastest is kept (one with a separate split-K
// reduction pass only if it wins clearly), and the choice goes into the on-disk TuneCache
// (mnist_gpu/tune_cache.hpp). Setup only: it synchronises the stream, never runs inside a step.
// Host-only header: compiles with g++ and nvcc.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "mnist_gpu/tune_cache.hpp"

namespace mnist_gpu::gpu {

/// One cublasLtMatmul call as it will run: D = alpha op(A) op(B) + beta C with the descriptor's
/// epilogue. The pointers must be the real buffers (or buffers of the same alignment): the
/// candidates write D (and the epilogue's outputs), so tune before the buffers hold anything.
struct LtMatmulProblem {
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  const void* alpha = nullptr;  ///< host pointers (the descriptor's default pointer mode)
  const void* beta = nullptr;
  const void* A = nullptr;
  const void* B = nullptr;
  const void* C = nullptr;
  void* D = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  cudaStream_t stream = nullptr;
  /// The operands' alignments in bytes (ptr_alignment; C is D): only algorithms that can run at
  /// them are candidates. 256 is cuBLASLt's own assumption when none is given.
  int align_a = 256, align_b = 256, align_d = 256;
};

struct LtTuneOptions {
  int max_candidates = 8;   ///< how many of the heuristic's candidates are timed
  int warmup = 3;           ///< untimed runs of each candidate first (clocks, caches, lazy loading)
  int samples = 5;          ///< timed samples per candidate; the median is kept
  int runs_per_sample = 10; ///< GEMMs per event pair: a 3 us GEMM is near the event resolution alone
  /// A candidate with a separate split-K reduction pass is kept only when it takes less than this
  /// fraction of the best one without: the extra kernel costs a launch and a graph node that its
  /// timed run hides, and a 5% margin is above the run-to-run noise of these medians.
  double split_k_margin = 0.95;
};

/// What tuning chose.
struct LtTuned {
  cublasLtMatmulAlgo_t algo{};
  TuneEntry entry;        ///< the algorithm's words, its median time and the candidates timed
  int heuristic_rank = 0; ///< its place in the heuristic's order (0: what --autotune off takes)
  bool split_k = false;   ///< it reduces its split-K parts in a separate pass
};

/// The TuneDevice of the current GPU: its name, compute capability and cublasLtGetVersion().
TuneDevice current_tune_device();

/// The heuristic's first choice for `p` (what --autotune off uses). Error when it offers none.
cublasLtMatmulAlgo_t heuristic_first_algo(const LtMatmulProblem& p);

/// Times up to `opt.max_candidates` of the heuristic's candidates for `p` (failing ones are
/// skipped) and returns the fastest by the rule above. Synchronises `p.stream`. Error when no
/// candidate runs.
LtTuned tune_lt_matmul(const LtMatmulProblem& p, const LtTuneOptions& opt = {});

/// Whether `algo` (from a cache file) is one cuBLASLt accepts for `p` (cublasLtMatmulAlgoCheck,
/// workspace included): a cache entry that no longer fits is tuned again, not trusted.
bool lt_algo_usable(const LtMatmulProblem& p, const cublasLtMatmulAlgo_t& algo);

/// Whether `algo` splits K and reduces the parts in a separate pass (reduction scheme
/// COMPUTE_TYPE or OUTPUT_TYPE with SPLITK_NUM > 1).
bool lt_algo_split_k(const cublasLtMatmulAlgo_t& algo);

cublasLtMatmulAlgo_t algo_from_entry(const TuneEntry& e);
TuneEntry entry_from_algo(const cublasLtMatmulAlgo_t& algo, double median_us, int candidates);

/// The algorithm of `key` from `cache` when it has a usable one, else tuned now (and put in the
/// cache). `hit` says which.
struct LtLookup {
  cublasLtMatmulAlgo_t algo{};
  bool hit = false;
};
inline LtLookup lookup_or_tune(TuneCache& cache, const GemmKey& key, const LtMatmulProblem& p,
                               const LtTuneOptions& opt = {}) {
  if (const TuneEntry* e = cache.find(key)) {
    const cublasLtMatmulAlgo_t algo = algo_from_entry(*e);
    if (lt_algo_usable(p, algo)) return {algo, true};
  }
  const LtTuned t = tune_lt_matmul(p, opt);
  cache.put(key, t.entry);
  return {t.algo, false};
}

}  // namespace mnist_gpu::gpu
