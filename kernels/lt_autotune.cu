// Timing cuBLASLt's candidate algorithms for one GEMM and keeping the fastest (lt_autotune.hpp).
// Setup-time code: it synchronises its stream and allocates nothing on the device.
#include "lt_autotune.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cuda_check.hpp"
#include "cuda_resources.hpp"
#include "lt_gemm.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {
namespace {

static_assert(sizeof(cublasLtMatmulAlgo_t) == sizeof(TuneEntry::algo), "cublasLtMatmulAlgo_t is 8 x uint64");

std::vector<cublasLtMatmulHeuristicResult_t> candidates(const LtMatmulProblem& p, int max) {
  const LtPreference pref = search_preference(p.workspace_bytes, p.align_a, p.align_b, p.align_d);
  std::vector<cublasLtMatmulHeuristicResult_t> r(static_cast<std::size_t>(std::max(max, 1)));
  int n = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(p.handle, p.op, p.a, p.b, p.c, p.d, pref.get(), static_cast<int>(r.size()),
                                              r.data(), &n));
  r.resize(static_cast<std::size_t>(std::max(n, 0)));
  // Only those the heuristic itself marks as runnable within the workspace.
  r.erase(std::remove_if(r.begin(), r.end(),
                         [&](const cublasLtMatmulHeuristicResult_t& h) {
                           return h.state != CUBLAS_STATUS_SUCCESS || h.workspaceSize > p.workspace_bytes;
                         }),
          r.end());
  return r;
}

cublasStatus_t run(const LtMatmulProblem& p, const cublasLtMatmulAlgo_t& algo) {
  return cublasLtMatmul(p.handle, p.op, p.alpha, p.A, p.a, p.B, p.b, p.beta, p.C, p.c, p.D, p.d, &algo, p.workspace,
                        p.workspace_bytes, p.stream);
}

// The median GEMM time of `algo` in microseconds, or a negative number when it fails to run.
double time_algo(const LtMatmulProblem& p, const cublasLtMatmulAlgo_t& algo, const LtTuneOptions& opt,
                 const Event& start, const Event& stop) {
  for (int i = 0; i < opt.warmup; ++i)
    if (run(p, algo) != CUBLAS_STATUS_SUCCESS) return -1;  // a candidate that does not run is skipped
  std::vector<double> us;
  for (int s = 0; s < opt.samples; ++s) {
    start.record(p.stream);
    for (int i = 0; i < opt.runs_per_sample; ++i)
      if (run(p, algo) != CUBLAS_STATUS_SUCCESS) return -1;
    stop.record(p.stream);
    stop.sync();
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
    us.push_back(1000.0 * ms / opt.runs_per_sample);
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

}  // namespace

TuneDevice current_tune_device() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  TuneDevice d;
  d.gpu = prop.name;
  d.cc_major = prop.major;
  d.cc_minor = prop.minor;
  d.lt_version = static_cast<long long>(cublasLtGetVersion());
  return d;
}

cublasLtMatmulAlgo_t algo_from_entry(const TuneEntry& e) {
  cublasLtMatmulAlgo_t a{};
  std::memcpy(&a, e.algo.data(), sizeof a);
  return a;
}

TuneEntry entry_from_algo(const cublasLtMatmulAlgo_t& algo, double median_us, int candidates) {
  TuneEntry e;
  std::memcpy(e.algo.data(), &algo, sizeof algo);
  e.median_us = median_us;
  e.candidates = candidates;
  return e;
}

bool lt_algo_split_k(const cublasLtMatmulAlgo_t& algo) {
  // These are queries of a value the heuristic filled in; an algorithm that does not report an
  // attribute (some Hopper kernels) has no split-K of that kind, so a failed query means "no".
  std::int32_t splits = 1;
  std::uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
  std::size_t written = 0;
  if (cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof splits,
                                           &written) != CUBLAS_STATUS_SUCCESS)
    return false;
  if (cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof scheme,
                                           &written) != CUBLAS_STATUS_SUCCESS)
    return false;
  return splits > 1 && (scheme & (CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE)) != 0;
}

bool lt_algo_usable(const LtMatmulProblem& p, const cublasLtMatmulAlgo_t& algo) {
  cublasLtMatmulHeuristicResult_t r{};
  const cublasStatus_t st = cublasLtMatmulAlgoCheck(p.handle, p.op, p.a, p.b, p.c, p.d, &algo, &r);
  return st == CUBLAS_STATUS_SUCCESS && r.state == CUBLAS_STATUS_SUCCESS && r.workspaceSize <= p.workspace_bytes;
}

cublasLtMatmulAlgo_t heuristic_first_algo(const LtMatmulProblem& p) {
  const std::vector<cublasLtMatmulHeuristicResult_t> c = candidates(p, 1);
  if (c.empty()) throw Error("cuBLASLt offers no algorithm for this GEMM (its heuristic returned none)");
  return c.front().algo;
}

LtTuned tune_lt_matmul(const LtMatmulProblem& p, const LtTuneOptions& opt) {
  if (opt.warmup < 0 || opt.samples < 1 || opt.runs_per_sample < 1)
    throw Error("tune_lt_matmul: samples and runs_per_sample must be >= 1, warmup >= 0");
  const std::vector<cublasLtMatmulHeuristicResult_t> cands = candidates(p, opt.max_candidates);
  if (cands.empty()) throw Error("cuBLASLt offers no algorithm for this GEMM (its heuristic returned none)");
  const Event start(true), stop(true);
  struct Timed {
    int rank;
    double us;
    bool split_k;
  };
  std::vector<Timed> timed;
  for (std::size_t i = 0; i < cands.size(); ++i) {
    const double us = time_algo(p, cands[i].algo, opt, start, stop);
    if (us > 0) timed.push_back({static_cast<int>(i), us, lt_algo_split_k(cands[i].algo)});
  }
  // A failed cublasLtMatmul launch may leave a (non-sticky) error behind: clear it here, so that
  // it is not reported by an unrelated later launch check; then let a real fault surface.
  (void)cudaGetLastError();
  CUDA_CHECK(cudaStreamSynchronize(p.stream));
  if (timed.empty())
    throw Error("cuBLASLt: none of the " + std::to_string(cands.size()) + " candidate algorithms ran for this GEMM");
  const auto faster = [](const Timed& x, const Timed& y) { return x.us < y.us || (x.us == y.us && x.rank < y.rank); };
  const Timed best_any = *std::min_element(timed.begin(), timed.end(), faster);
  const Timed* best_plain = nullptr;
  for (const Timed& t : timed)
    if (!t.split_k && (!best_plain || faster(t, *best_plain))) best_plain = &t;
  const Timed chosen =
      !best_plain || (best_any.split_k && best_any.us < opt.split_k_margin * best_plain->us) ? best_any : *best_plain;
  LtTuned out;
  out.algo = cands[static_cast<std::size_t>(chosen.rank)].algo;
  out.entry = entry_from_algo(out.algo, chosen.us, static_cast<int>(timed.size()));
  out.heuristic_rank = chosen.rank;
  out.split_k = chosen.split_k;
  return out;
}

}  // namespace mnist_gpu::gpu
