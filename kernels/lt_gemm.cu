// cuBLASLt plans, pick_algo and the BF16 conversion (lt_gemm.hpp; the row-major mapping is
// derived there).
#include <cuda_bf16.h>

#include <algorithm>
#include <array>
#include <string>
#include <tuple>

#include "launch.cuh"
#include "lt_autotune.hpp"
#include "lt_gemm.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {
namespace {

// The precision's cuBLASLt types: tf32 keeps FP32 storage and asks for TF32 tensor cores; bf16
// multiplies BF16 operands; every precision accumulates, scales and writes D (and bias, bias
// gradient) in FP32.
cublasComputeType_t compute_type(Precision p) {
  return p == Precision::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}
cudaDataType_t operand_type(Precision p) { return p == Precision::bf16 ? CUDA_R_16BF : CUDA_R_32F; }

cublasLtEpilogue_t lt_epilogue(LtEpilogue e) {
  switch (e) {
    case LtEpilogue::none: return CUBLASLT_EPILOGUE_DEFAULT;
    case LtEpilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
    case LtEpilogue::relu_aux_bias: return CUBLASLT_EPILOGUE_RELU_AUX_BIAS;
    case LtEpilogue::drelu_bgrad: return CUBLASLT_EPILOGUE_DRELU_BGRAD;
    case LtEpilogue::bgradb: return CUBLASLT_EPILOGUE_BGRADB;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

bool uses_bias(LtEpilogue e) { return e != LtEpilogue::none; }
bool uses_aux(LtEpilogue e) { return e == LtEpilogue::relu_aux_bias || e == LtEpilogue::drelu_bgrad; }

}  // namespace

std::string describe(const LtShape& s) {
  return std::string("m ") + std::to_string(s.m) + " n " + std::to_string(s.n) + " k " + std::to_string(s.k) +
         (s.trans_a ? " A^T" : "") + (s.trans_b ? " B^T" : "") + ", precision " + to_string(s.precision) +
         ", epilogue " + to_string(s.epilogue) + ", alignments A " + std::to_string(s.align_a) + " B " +
         std::to_string(s.align_b) + " D " + std::to_string(s.align_d) + " bias " + std::to_string(s.align_bias) +
         " aux " + std::to_string(s.align_aux) + " bytes";
}

namespace {

// Sets the pointer attributes of one call: the heuristic reads their alignment, the matmul their
// value.
void set_pointers(LtMatmulDesc& desc, const LtShape& s, const LtOperands& ops) {
  if (uses_bias(s.epilogue) && s.epilogue != LtEpilogue::none) {
    const void* bias = ops.bias;
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  }
  if (uses_aux(s.epilogue)) {
    const void* aux = ops.aux;
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, aux);
  }
}

__global__ void to_bf16_kernel(const float* __restrict__ src, __nv_bfloat16* __restrict__ dst, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

}  // namespace

const char* to_string(LtEpilogue e) {
  switch (e) {
    case LtEpilogue::none: return "default";
    case LtEpilogue::bias: return "bias";
    case LtEpilogue::relu_aux_bias: return "relu_aux_bias";
    case LtEpilogue::drelu_bgrad: return "drelu_bgrad";
    case LtEpilogue::bgradb: return "bgradb";
  }
  return "?";
}

bool LtShape::operator<(const LtShape& o) const {
  auto key = [](const LtShape& s) {
    return std::make_tuple(s.trans_a, s.trans_b, s.m, s.n, s.k, s.lda, s.ldb, s.ldd, static_cast<int>(s.precision),
                           static_cast<int>(s.epilogue), s.aux_ld,
                           std::array<int, 5>{s.align_a, s.align_b, s.align_d, s.align_bias, s.align_aux});
  };
  return key(*this) < key(o);
}

bool lt_epilogue_aligned(const LtShape& s) {
  if (s.epilogue == LtEpilogue::none) return true;
  return s.align_bias >= kLtEpilogueMinAlignment && (!uses_aux(s.epilogue) || s.align_aux >= kLtEpilogueMinAlignment);
}

LtPreference search_preference(std::uint64_t workspace_bytes, int align_a, int align_b, int align_d) {
  LtPreference pref;
  pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace_bytes);
  const auto align = [](int a) { return static_cast<std::uint32_t>(a); };
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align(align_a));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align(align_b));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align(align_d));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align(align_d));
  return pref;
}

int ptr_alignment(const void* p) {
  const auto u = reinterpret_cast<std::uintptr_t>(p);
  if (u == 0) return 256;
  const std::uintptr_t low = u & (~u + 1);
  return low >= 256 ? 256 : static_cast<int>(low);
}

LtPlan::LtPlan(const LtShape& s)
    : shape(s),
      desc(compute_type(s.precision), CUDA_R_32F),
      // Layouts describe the matrices as stored, before their ops (lt_gemm.hpp).
      a(operand_type(s.precision), s.trans_a ? s.k : s.m, s.trans_a ? s.m : s.k, s.lda),
      b(operand_type(s.precision), s.trans_b ? s.n : s.k, s.trans_b ? s.k : s.n, s.ldb),
      d(CUDA_R_32F, s.m, s.n, s.ldd) {
  const cublasOperation_t ta = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, ta);  // int32_t (cublasOperation_t)
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, tb);
  const auto epi = static_cast<std::uint32_t>(lt_epilogue(s.epilogue));  // uint32_t
  desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, epi);
  // The bias (and bias gradient) is FP32: BIAS_DATA_TYPE's default, D's type, left unset (one
  // attribute fewer for an older cuBLASLt to refuse).
  if (uses_aux(s.epilogue)) {
    if (s.aux_ld % 128 != 0 || s.aux_ld < s.m)
      throw Error("cuBLASLt plan: the ReLU mask's leading dimension must be a multiple of 128 >= the rows");
    const std::int64_t ld = s.aux_ld;  // in bits, int64_t
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, ld);
  }
}

namespace {

// The algorithm's K splits (1: no split-K). An algorithm that does not report the attribute
// (some Hopper kernels) has none: a failed query is 1, as in lt_algo_split_k, never an error.
std::int32_t split_k_of(const cublasLtMatmulAlgo_t& algo) {
  std::int32_t splits = 1;  // int32_t in cublasLt.h
  std::size_t written = 0;
  return cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof splits,
                                              &written) == CUBLAS_STATUS_SUCCESS
             ? splits
             : 1;
}

// --autotune on: the cached choice for this GEMM, or the fastest of the heuristic's candidates
// timed now on the real operands (setup: the first use of a shape, in an eager step or an
// evaluation, never inside a graph capture). nullopt: leave the choice to the heuristic.
std::optional<cublasLtMatmulAlgo_t> tuned_algo(const LtContext& ctx, LtPlan& plan, const LtOperands& ops,
                                               cudaStream_t stream) {
  if (!ctx.tuning || ops.d == nullptr || plan.shape.m == 0 || plan.shape.n == 0 || plan.shape.k == 0)
    return std::nullopt;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return std::nullopt;  // timing would break the capture
  const LtShape& s = plan.shape;
  TuneCache& cache = ctx.tuning->opened.cache;
  GemmKey key;
  key.device = cache.device();
  key.m = s.m;
  key.n = s.n;
  key.k = s.k;
  key.trans_a = s.trans_a;
  key.trans_b = s.trans_b;
  key.precision = to_string(s.precision);
  // The alignments select the algorithms that may run: part of the key (in the epilogue's text,
  // which the cache treats as opaque).
  key.epilogue = std::string(to_string(s.epilogue)) + " align " + std::to_string(s.align_a) + "/" +
                 std::to_string(s.align_b) + "/" + std::to_string(s.align_d) + "/" + std::to_string(s.align_bias) +
                 "/" + std::to_string(s.align_aux);
  const float one = 1.0f, zero = 0.0f;
  LtMatmulProblem p;
  p.handle = ctx.handle;
  p.op = plan.desc.get();
  p.a = plan.a.get();
  p.b = plan.b.get();
  p.c = plan.d.get();
  p.d = plan.d.get();
  p.alpha = &one;
  p.beta = &zero;
  p.A = ops.a;
  p.B = ops.b;
  p.C = ops.d;
  p.D = ops.d;
  p.workspace = ctx.workspace;
  p.workspace_bytes = ctx.workspace_bytes;
  p.stream = stream;
  p.align_a = s.align_a;
  p.align_b = s.align_b;
  p.align_d = s.align_d;
  LtLookup found;
  try {
    found = lookup_or_tune(cache, key, p);
  } catch (const Error&) {
    // A device fault is sticky (every later call reports it): report it here, where it happened,
    // not at an unrelated later call.
    const cudaError_t fault = cudaStreamQuery(stream);
    if (fault != cudaSuccess && fault != cudaErrorNotReady) throw;
    // No candidate ran (an epilogue cuBLASLt cannot run here): the heuristic decides below, and
    // for a fused product finds none, so the caller falls back to the separate kernels.
    return std::nullopt;
  }
  if (!found.hit)
    if (const std::optional<std::string> w = save_tune_cache(ctx.tuning->opened)) ctx.tuning->warnings.push_back(*w);
  plan.split_k = split_k_of(found.algo);
  return found.algo;
}

}  // namespace

std::optional<cublasLtMatmulAlgo_t> pick_algo(const LtContext& ctx, LtPlan& plan, const LtOperands& ops,
                                              cudaStream_t stream) {
  const LtShape& s = plan.shape;
  set_pointers(plan.desc, s, ops);
  if (std::optional<cublasLtMatmulAlgo_t> tuned = tuned_algo(ctx, plan, ops, stream)) return tuned;
  const LtPreference pref = search_preference(ctx.workspace_bytes, s.align_a, s.align_b, s.align_d);
  constexpr int kCandidates = 8;
  std::array<cublasLtMatmulHeuristicResult_t, kCandidates> found{};
  int count = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(ctx.handle, plan.desc.get(), plan.a.get(), plan.b.get(),
                                                          plan.d.get(), plan.d.get(), pref.get(), kCandidates,
                                                          found.data(), &count);
  // A fused epilogue cuBLASLt cannot run for this type and alignment may come back as another
  // status than NOT_SUPPORTED: for a fused product any failure means "no algorithm" (the caller
  // falls back to the separate kernels); a plain product has no fallback.
  if (st != CUBLAS_STATUS_SUCCESS) {
    if (s.epilogue != LtEpilogue::none || st == CUBLAS_STATUS_NOT_SUPPORTED) return std::nullopt;
    throw_cublas_error(st, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
  }
  int chosen = -1;
  for (int i = 0; i < count && chosen < 0; ++i)
    if (found[i].state == CUBLAS_STATUS_SUCCESS && split_k_of(found[i].algo) <= 1) chosen = i;
  for (int i = 0; i < count && chosen < 0; ++i)
    if (found[i].state == CUBLAS_STATUS_SUCCESS) chosen = i;
  if (chosen >= 0) plan.split_k = split_k_of(found[static_cast<std::size_t>(chosen)].algo);
  if (chosen < 0) return std::nullopt;
  return found[static_cast<std::size_t>(chosen)].algo;
}

void lt_matmul(const LtContext& ctx, LtPlan& plan, const LtOperands& ops, cudaStream_t stream) {
  // The descriptor's pointer attributes are host state, read at this call: setting them here is
  // no device work and no allocation (graph capture records the matmul's kernels only).
  set_pointers(plan.desc, plan.shape, ops);
  const float one = 1.0f, zero = 0.0f;
  CUBLASLT_CHECK(cublasLtMatmul(ctx.handle, plan.desc.get(), &one, ops.a, plan.a.get(), ops.b, plan.b.get(), &zero,
                                ops.d, plan.d.get(), ops.d, plan.d.get(), &plan.algo, ctx.workspace,
                                ctx.workspace_bytes, stream));
}

void to_bf16(const float* src, std::uint16_t* dst, std::size_t n, cudaStream_t stream) {
  if (n == 0) return;
  to_bf16_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, reinterpret_cast<__nv_bfloat16*>(dst), n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace mnist_gpu::gpu
