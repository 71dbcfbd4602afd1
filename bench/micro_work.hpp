// Shared by the micro-benchmarks (micro_cpu.cpp, micro_gpu.cpp): the default model's shapes, the
// seeded inputs, and the work each op does per call (FLOPs, bytes read + written). No timing here.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mnist_gpu/augment.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/rng.hpp"
#include "seeded_inputs.hpp"

namespace mnist_gpu::micro {

/// Registers the binary's benchmarks; each binary defines it, micro_main.cpp calls it.
void register_benchmarks();

/// The batch sizes that matter for this model (small, the default 256, large).
inline const std::vector<int> kBatches{64, 256, 1024};

/// One dense layer at one batch size: x (batch, in), w (out, in), y (batch, out).
struct DenseShape {
  int batch, in, out;
};

/// Every layer of the default model (784-512-256-10) at each of kBatches.
inline std::vector<DenseShape> model_dense_shapes() {
  const std::vector<int> w = ModelSpec{}.widths();
  std::vector<DenseShape> shapes;
  for (int b : kBatches)
    for (std::size_t l = 0; l + 1 < w.size(); ++l) shapes.push_back({b, w[l], w[l + 1]});
  return shapes;
}

/// The square product that measure_cpu_sgemm_gflops (src/bench.cpp) times: the CPU ceiling.
inline constexpr int kCpuCeilingN = 2048;
/// The square product that measure_gpu_sgemm_gflops (kernels/bench_gemm.cu) times.
inline constexpr int kGpuCeilingN = 4096;

/// The three dense products of a layer, each a GEMM C (m, n) = A . B with inner length k.
enum class DenseOp { forward, backward_data, backward_weights };

inline const char* to_string(DenseOp op) {
  switch (op) {
    case DenseOp::forward: return "dense_forward";
    case DenseOp::backward_data: return "dense_backward_data";
    case DenseOp::backward_weights: return "dense_backward_weights";
  }
  return "?";
}

/// The training step computes no data gradient for the input layer (nothing needs the gradient
/// of the images), so that product is not one of the model's shapes.
inline bool used_in_training(DenseOp op, const DenseShape& s) {
  return !(op == DenseOp::backward_data && s.in == ModelSpec{}.inputs);
}

/// (rows, cols) of the op's output and its inner length k.
struct GemmDims {
  int m, n, k;
};
inline GemmDims gemm_dims(DenseOp op, const DenseShape& s) {
  switch (op) {
    case DenseOp::forward: return {s.batch, s.out, s.in};          // y = x w^T
    case DenseOp::backward_data: return {s.batch, s.in, s.out};    // dx = dy w
    case DenseOp::backward_weights: return {s.out, s.in, s.batch}; // dw = dy^T x
  }
  return {0, 0, 0};
}

inline double gemm_flops(DenseOp op, const DenseShape& s) {
  const GemmDims d = gemm_dims(op, s);
  return 2.0 * d.m * d.n * static_cast<double>(d.k);
}

inline std::size_t count(int a, int b) { return static_cast<std::size_t>(a) * static_cast<std::size_t>(b); }

// ---- seeded inputs (RngStream::test_data: they never alias an init or a shuffle) ----

using test::bytes;
using test::labels;
using test::uniform;
inline Rng input_rng(std::uint64_t sub) { return test::test_rng(sub); }

/// n multiples of 1/8 in [-1, 1]: every partial sum of up to 2^21 of them is a multiple of 1/8
/// below 2^21, exact in float in any order, so a float reduction over them can be checked exactly
/// against a float64 one.
inline std::vector<float> dyadic(Rng& rng, std::size_t n) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(static_cast<int>(rng.below(17)) - 8) / 8.0f;
  return v;
}

/// The two operands of a dense product, in the op's argument order (forward: x, w;
/// backward_data: dy, w; backward_weights: dy, x). The first is uniform in [-1, 1), the second
/// in [-1, 1) / sqrt(k), so that partial sums stay O(1) and float reordering error stays far
/// inside kTolGemm (about sqrt(k) * 2^-24 against its 1e-5 + 1e-4 |want|).
struct DenseOperands {
  std::vector<float> a, b;
};
inline DenseOperands dense_operands(DenseOp op, const DenseShape& s, std::uint64_t sub) {
  Rng rng = input_rng(sub);
  const GemmDims d = gemm_dims(op, s);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.k));
  switch (op) {
    case DenseOp::forward: return {uniform(rng, count(s.batch, s.in), -1, 1), uniform(rng, count(s.out, s.in), -scale, scale)};
    case DenseOp::backward_data:
      return {uniform(rng, count(s.batch, s.out), -1, 1), uniform(rng, count(s.out, s.in), -scale, scale)};
    case DenseOp::backward_weights:
      return {uniform(rng, count(s.batch, s.out), -scale, scale), uniform(rng, count(s.batch, s.in), -1, 1)};
  }
  return {};
}

// ---- the optimizer benchmarks: the whole flat arena of the default model ----

struct OptimCase {
  const char* name;
  OptimizerKind kind;
};
inline const std::vector<OptimCase> kOptimCases{
    {"sgd", OptimizerKind::sgd}, {"momentum", OptimizerKind::momentum}, {"adam", OptimizerKind::adam}};

/// Arena, gradient and optimizer state of the default model at step t = 10 (bias corrections
/// away from 1): w in [-0.5, 0.5), g in [-0.1, 0.1) (training's range; see the note on FMA in
/// tests/gpu/test_gpu_ops.cpp), velocity / first moment in [-0.01, 0.01), second moment in
/// [0, 1e-4); L2 decay 0.01 on the weights.
struct OptimInputs {
  OptimStep step;
  std::size_t n = 0, n_decay = 0;
  std::vector<float> w, g, s1, s2;  // s1, s2 empty where the optimizer has no such state
};
inline OptimInputs optim_inputs(OptimizerKind kind, std::uint64_t sub) {
  const ParamLayout layout(ModelSpec{});
  OptimizerConfig cfg;
  cfg.kind = kind;
  cfg.l2 = 0.01f;
  OptimInputs in;
  in.step = make_optim_step(cfg, default_lr(kind), 10);
  in.n = layout.size;
  in.n_decay = layout.n_weights;
  Rng rng = input_rng(sub);
  in.w = uniform(rng, in.n, -0.5, 0.5);
  in.g = uniform(rng, in.n, -0.1, 0.1);
  if (kind != OptimizerKind::sgd) in.s1 = uniform(rng, in.n, -0.01, 0.01);
  if (kind == OptimizerKind::adam) in.s2 = uniform(rng, in.n, 0, 1e-4);
  return in;
}

/// BM_augment's batch: seeded noise images in [0, 1], dataset indices r * 3, labels 0..9.
struct AugmentInputs {
  std::vector<float> images;
  std::vector<std::uint32_t> indices;
  std::vector<std::uint8_t> labels;
};

inline AugmentInputs augment_inputs(int batch, std::uint64_t sub) {
  Rng rng = input_rng(sub);
  AugmentInputs in;
  in.images = uniform(rng, count(batch, kAugmentPixels), 0, 1);
  in.indices.resize(static_cast<std::size_t>(batch));
  for (int r = 0; r < batch; ++r) in.indices[static_cast<std::size_t>(r)] = static_cast<std::uint32_t>(r * 3);
  in.labels = labels(rng, static_cast<std::size_t>(batch), 10);
  return in;
}

// ---- bytes each op reads + writes per call (what GB/s is computed from) ----

/// uint8 in, float out.
inline std::int64_t u8_to_unit_bytes(std::size_t n) { return static_cast<std::int64_t>(n * (1 + 4)); }
/// y read and written, the bias read once.
inline std::int64_t bias_act_forward_bytes(int batch, int width) {
  return static_cast<std::int64_t>(count(batch, width) * 8 + count(1, width) * 4);
}
/// dy read and written, y read.
inline std::int64_t act_backward_bytes(std::size_t n) { return static_cast<std::int64_t>(n * 12); }
/// dy read, db written.
inline std::int64_t bias_grad_bytes(int batch, int width) {
  return static_cast<std::int64_t>(count(batch, width) * 4 + count(1, width) * 4);
}
/// Logits read, labels read, the gradient written (softmax_xent and l2_loss alike), the two
/// 8-byte accumulators read and written.
inline std::int64_t loss_bytes(int batch, int classes) {
  return static_cast<std::int64_t>(count(batch, classes) * 8 + count(batch, 1) + 32);
}
/// Logits and labels read, one 8-byte counter read and written per row.
inline std::int64_t confusion_bytes(int batch, int classes) {
  return static_cast<std::int64_t>(count(batch, classes) * 4 + count(batch, 1) * (1 + 16));
}
/// w read and written, g read, each state array read and written.
inline std::int64_t optimizer_bytes(OptimizerKind kind, std::size_t n) {
  const std::size_t per = kind == OptimizerKind::sgd ? 12 : kind == OptimizerKind::momentum ? 20 : 28;
  return static_cast<std::int64_t>(n * per);
}

}  // namespace mnist_gpu::micro
