// Dense-layer products through cuBLASLt, with the bias, ReLU and their gradients in the GEMM's
// epilogue, at --precision fp32, tf32 or bf16. The move-only owners of cuBLASLt's handle and
// descriptors, one GEMM's plan (descriptors, layouts and the algorithm), and pick_algo: the one
// place that chooses a plan's algorithm (the heuristic's first candidate without a split-K
// reduction today; timing the candidates slots in there).
// Host-only header: compiles with g++ and nvcc.
//
// The mapping, derived once (as kernels/dense.cu does for cuBLAS): cuBLASLt is column-major, and
// a row-major (r, c) matrix M with leading dimension c is, to cuBLASLt, the column-major (c, r)
// matrix M^T. A layout describes the matrix as stored, before its op. With x (batch, in),
// w (out, in), y (batch, out), dy (batch, out), dx (batch, in), dw (out, in), all row-major:
//   forward      y^T (out, batch) = w (out, in) . x^T (in, batch)
//                A = w stored (in, out) ld in, op T; B = x stored (in, batch) ld in, op N;
//                D = y (out, batch) ld out; m = out, n = batch, k = in.
//                BIAS / RELU_AUX_BIAS: the bias has D's row count (out), broadcast over the batch;
//                the ReLU bit-mask is (out rows, batch columns) of bits, leading dimension
//                relu_mask_ld(out) bits (a multiple of 128, >= out).
//   data grad    dx^T (in, batch) = w^T (in, out) . dy^T (out, batch)
//                A = w stored (in, out) ld in, op N; B = dy stored (out, batch) ld out, op N;
//                D = dx (in, batch) ld in; m = in, n = batch, k = out.
//                DRELU_BGRAD: D's elements are multiplied by the mask bits of the layer below
//                (its output is this layer's input: in rows, batch columns, the same mask and ld
//                its forward wrote), and the bias gradient sums D (after the mask) over its
//                columns (the batch): the lower layer's db (in).
//   weight grad  dw^T (in, out) = x^T (in, batch) . dy (batch, out)
//                A = x stored (in, batch) ld in, op N; B = dy stored (out, batch) ld out, op T;
//                D = dw (in, out) ld in; m = in, n = out, k = batch.
//                BGRADB: sums op(B) = dy (batch, out) over k (the batch): this layer's db (out).
#pragma once
#include <string>
#include <vector>

#include "mnist_gpu/tune_cache.hpp"
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "cuda_check.hpp"
#include "mnist_gpu/config.hpp"

#define CUBLASLT_CHECK(expr) CUBLAS_CHECK(expr)

namespace mnist_gpu::gpu {

/// cuBLASLt's workspace: 32 MiB, as for cuBLAS (cuda_resources.hpp).
constexpr std::size_t kLtWorkspaceBytes = std::size_t{32} << 20;

/// The cuBLASLt library handle (not bound to a stream: each matmul names its stream). Default:
/// none yet; LtHandle::make() creates one.
class LtHandle {
 public:
  LtHandle() = default;
  static LtHandle make() {
    LtHandle h;
    CUBLASLT_CHECK(cublasLtCreate(&h.h_));
    return h;
  }
  ~LtHandle() {
    if (h_) cublasLtDestroy(h_);
  }
  LtHandle(LtHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  LtHandle& operator=(LtHandle&& o) noexcept {
    if (this != &o) {
      if (h_) cublasLtDestroy(h_);
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  LtHandle(const LtHandle&) = delete;
  LtHandle& operator=(const LtHandle&) = delete;
  cublasLtHandle_t get() const { return h_; }

 private:
  cublasLtHandle_t h_ = nullptr;
};

/// A matmul descriptor: compute type, scale type, ops and epilogue attributes.
class LtMatmulDesc {
 public:
  LtMatmulDesc(cublasComputeType_t compute, cudaDataType_t scale) {
    CUBLASLT_CHECK(cublasLtMatmulDescCreate(&d_, compute, scale));
  }
  ~LtMatmulDesc() {
    if (d_) cublasLtMatmulDescDestroy(d_);
  }
  LtMatmulDesc(LtMatmulDesc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  LtMatmulDesc& operator=(LtMatmulDesc&& o) noexcept {
    if (this != &o) {
      if (d_) cublasLtMatmulDescDestroy(d_);
      d_ = std::exchange(o.d_, nullptr);
    }
    return *this;
  }
  LtMatmulDesc(const LtMatmulDesc&) = delete;
  LtMatmulDesc& operator=(const LtMatmulDesc&) = delete;
  /// Sets `attr` to `value`, whose type must be the one cublasLt.h documents for it.
  template <class V>
  void set(cublasLtMatmulDescAttributes_t attr, const V& value) {
    CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(d_, attr, &value, sizeof value));
  }
  cublasLtMatmulDesc_t get() const { return d_; }

 private:
  cublasLtMatmulDesc_t d_ = nullptr;
};

/// A column-major matrix layout: element type, rows, columns, leading dimension (elements).
class LtLayout {
 public:
  LtLayout() = default;
  LtLayout(cudaDataType_t type, std::uint64_t rows, std::uint64_t cols, std::int64_t ld) {
    CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&l_, type, rows, cols, ld));
  }
  ~LtLayout() {
    if (l_) cublasLtMatrixLayoutDestroy(l_);
  }
  LtLayout(LtLayout&& o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
  LtLayout& operator=(LtLayout&& o) noexcept {
    if (this != &o) {
      if (l_) cublasLtMatrixLayoutDestroy(l_);
      l_ = std::exchange(o.l_, nullptr);
    }
    return *this;
  }
  LtLayout(const LtLayout&) = delete;
  LtLayout& operator=(const LtLayout&) = delete;
  cublasLtMatrixLayout_t get() const { return l_; }

 private:
  cublasLtMatrixLayout_t l_ = nullptr;
};

/// The heuristic's search preferences: the workspace allowed and the operands' alignment.
class LtPreference {
 public:
  LtPreference() { CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&p_)); }
  ~LtPreference() {
    if (p_) cublasLtMatmulPreferenceDestroy(p_);
  }
  LtPreference(LtPreference&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  LtPreference& operator=(LtPreference&& o) noexcept {
    if (this != &o) {
      if (p_) cublasLtMatmulPreferenceDestroy(p_);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
  template <class V>
  void set(cublasLtMatmulPreferenceAttributes_t attr, const V& value) {
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(p_, attr, &value, sizeof value));
  }
  cublasLtMatmulPreference_t get() const { return p_; }

 private:
  cublasLtMatmulPreference_t p_ = nullptr;
};

/// What a GpuNet needs to run cuBLASLt GEMMs: the handle and a workspace that only its stream
/// uses (a workspace shared by two streams would be a race).
/// --autotune on: the run's tune cache (tune_cache.hpp), opened once per GPU by the Device, and
/// the warnings its opening and saving gave (for the CLI to log: library code never prints).
struct LtTuning {
  OpenedTuneCache opened;
  std::vector<std::string> warnings;
};

struct LtContext {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  /// Set: pick_algo times the candidates of a plan it has not seen in the cache (autotune);
  /// null: the heuristic's first choice (--autotune off).
  LtTuning* tuning = nullptr;
};

/// The epilogues the dense layers use.
enum class LtEpilogue {
  none,           ///< D = op(A) op(B)
  bias,           ///< D = op(A) op(B) + bias (per row of D)
  relu_aux_bias,  ///< D = relu(op(A) op(B) + bias), the ReLU bit-mask into aux
  drelu_bgrad,    ///< D = op(A) op(B) * mask bits of aux; bias = row sums of D
  bgradb,         ///< D = op(A) op(B); bias = sums of op(B) over k
};
const char* to_string(LtEpilogue e);

/// One GEMM in cuBLASLt's column-major terms (the mapping above).
struct LtShape {
  bool trans_a = false, trans_b = false;
  int m = 0, n = 0, k = 0;
  int lda = 0, ldb = 0, ldd = 0;
  Precision precision = Precision::fp32;
  LtEpilogue epilogue = LtEpilogue::none;
  /// The ReLU bit-mask's leading dimension in bits (relu_aux_bias, drelu_bgrad): relu_mask_ld(rows).
  std::int64_t aux_ld = 0;
  /// The operands' alignments in bytes (ptr_alignment): A, B, D, bias, aux. They select the
  /// algorithms that may run, so they are part of a plan's identity.
  int align_a = 256, align_b = 256, align_d = 256, align_bias = 256, align_aux = 256;
  bool operator<(const LtShape& o) const;
};

/// D (m x n) = op(A) (m x k) * op(B) (k x n) on tightly packed column-major operands: A stored
/// k x m when trans_a (lda k) else m x k (lda m), B stored n x k when trans_b (ldb n) else k x n
/// (ldb k), D m x n (ldd m); no epilogue.
inline LtShape packed_shape(int m, int n, int k, bool trans_a, bool trans_b, Precision precision) {
  LtShape s;
  s.trans_a = trans_a;
  s.trans_b = trans_b;
  s.m = m;
  s.n = n;
  s.k = k;
  s.lda = trans_a ? k : m;
  s.ldb = trans_b ? n : k;
  s.ldd = m;
  s.precision = precision;
  return s;
}

/// The ReLU bit-mask's leading dimension for `rows` rows: rows rounded up to a multiple of 128
/// bits (cublasLt.h, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD).
inline std::int64_t relu_mask_ld(int rows) { return (static_cast<std::int64_t>(rows) + 127) / 128 * 128; }
/// Bytes of a ReLU bit-mask of `rows` x `cols`.
inline std::size_t relu_mask_bytes(int rows, int cols) {
  return static_cast<std::size_t>(relu_mask_ld(rows) / 8) * static_cast<std::size_t>(cols);
}
/// The largest power of two <= 256 that divides the address (256 for null).
int ptr_alignment(const void* p);

/// The bias (or bias gradient) vector's and the ReLU mask's least alignment in bytes for which a
/// fused epilogue is planned. Odd layer widths leave a bias 4 or 8 bytes aligned (the biases
/// follow every layer's weights in one buffer); a heuristic has been reported to choose, for an
/// 8-byte aligned bias, a kernel that assumes 16 and faults with a misaligned address
/// (pytorch/pytorch PR 194497), and the heuristic has no bias-alignment preference to say so.
inline constexpr int kLtEpilogueMinAlignment = 16;
/// Whether `s`'s epilogue may be fused at its operands' alignments (no epilogue: always); where
/// not, the caller runs the plain product and the separate kernels.
bool lt_epilogue_aligned(const LtShape& s);

/// The heuristic's search preferences for `s`: at most `workspace_bytes` of workspace, and the
/// operands' real alignments (cuBLASLt otherwise assumes 256 bytes, and an algorithm chosen
/// under that assumption could fault on a less aligned operand). C is D (beta 0).
LtPreference search_preference(std::uint64_t workspace_bytes, int align_a, int align_b, int align_d);

/// The pointers of one call (what pick_algo would time candidates on).
struct LtOperands {
  const void* a = nullptr;
  const void* b = nullptr;
  float* d = nullptr;
  void* bias = nullptr;  ///< bias (read) or bias gradient (written), float
  void* aux = nullptr;   ///< the ReLU bit-mask (written by relu_aux_bias, read by drelu_bgrad)
};

/// One GEMM ready to run: its descriptors and its algorithm.
struct LtPlan {
  LtShape shape;
  LtMatmulDesc desc;
  LtLayout a, b, d;
  bool usable = false;  ///< cuBLASLt offered an algorithm (else the caller falls back)
  cublasLtMatmulAlgo_t algo{};
  int split_k = 1;  ///< the chosen algorithm's K splits (1: no split-K reduction)
  explicit LtPlan(const LtShape& s);
};

/// The algorithm of `plan` on `ctx`: the first of cuBLASLt's heuristic candidates (best first)
/// that needs no split-K reduction, else its first; nullopt when cuBLASLt offers none for this
/// shape, precision, epilogue and alignment. The one place an algorithm is chosen: it takes
/// everything needed to time the candidates on the real operands (`ops`, `stream`, the
/// workspace), which autotuning will do; today it runs on the host only.
std::optional<cublasLtMatmulAlgo_t> pick_algo(const LtContext& ctx, LtPlan& plan, const LtOperands& ops,
                                              cudaStream_t stream);
/// "m 256 n 512 k 784 A^T, precision tf32, epilogue bias, alignments ..." for messages.
std::string describe(const LtShape& s);

/// Runs `plan` on `ops` (alpha 1, beta 0) on `stream`.
void lt_matmul(const LtContext& ctx, LtPlan& plan, const LtOperands& ops, cudaStream_t stream);

/// dst[i] = src[i] rounded to BF16 (nearest, ties to even; the CPU twin is round_bf16 of
/// precision.hpp), n elements; dst holds BF16 bit patterns.
void to_bf16(const float* src, std::uint16_t* dst, std::size_t n, cudaStream_t stream);

}  // namespace mnist_gpu::gpu
