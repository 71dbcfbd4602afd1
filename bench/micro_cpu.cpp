// CPU micro-benchmarks: every op of cpu_ops.hpp (float) at the default model's shapes, each first
// checked against a float64 reference on the same inputs (micro_check.hpp) and timed only if it
// agrees. Wall-clock time (OpenBLAS runs its own threads); GEMMs report FLOP/s, the rest bytes/s.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "micro_check.hpp"
#include "micro_register.hpp"
#include "micro_work.hpp"
#include "mnist_gpu/augment.hpp"
#include "mnist_gpu/batches.hpp"
#include "mnist_gpu/compare.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/row_workers.hpp"

namespace mnist_gpu::micro {
namespace {

// Skips (visibly, with the reason) when the op's result disagrees with its reference.
bool validated(benchmark::State& state, const std::string& problem) {
  if (problem.empty()) return true;
  state.SkipWithError(("disagrees with its float64 reference: " + problem).c_str());
  return false;
}

void set_flops(benchmark::State& state, double flops_per_call) {
  state.counters["FLOP/s"] = benchmark::Counter(flops_per_call, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void dense_call(DenseOp op, const DenseShape& s, const float* a, const float* b, float* c) {
  switch (op) {
    case DenseOp::forward: cpu::dense_forward(a, b, c, s.batch, s.in, s.out); break;
    case DenseOp::backward_data: cpu::dense_backward_data(a, b, c, s.batch, s.in, s.out); break;
    case DenseOp::backward_weights: cpu::dense_backward_weights(a, b, c, s.batch, s.in, s.out); break;
  }
}

// Checked on about eight sampled rows of the output against a float64 loop (the full reference
// of the 2048^3 product would take longer than the benchmark).
void BM_dense(benchmark::State& state, DenseOp op) {
  const DenseShape s{static_cast<int>(state.range(0)), static_cast<int>(state.range(1)),
                     static_cast<int>(state.range(2))};
  const GemmDims d = gemm_dims(op, s);
  const DenseOperands in = dense_operands(op, s, 1);
  std::vector<float> c(count(d.m, d.n));
  dense_call(op, s, in.a.data(), in.b.data(), c.data());
  const std::vector<int> rows = sample_rows(d.m);
  if (!validated(state, mismatch(std::string(to_string(op)) + " (sampled rows)", take_rows(c, d.n, rows),
                                 dense_reference_rows(op, s, in.a, in.b, rows), kTolGemm,
                                 static_cast<std::size_t>(d.n))))
    return;
  for (auto _ : state) {
    dense_call(op, s, in.a.data(), in.b.data(), c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, gemm_flops(op, s));
}

// The bandwidth ceiling: a 64 MiB memcpy (twice this machine's 32 MiB L3), bytes read + written.
void BM_copy_ceiling(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(float);
  Rng rng = input_rng(10);
  const std::vector<float> src = uniform(rng, n, -1, 1);
  std::vector<float> dst(n);
  std::memcpy(dst.data(), src.data(), n * sizeof(float));
  if (!validated(state, mismatch("copy", dst, src, kTolExact))) return;
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n * sizeof(float));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(2 * n * sizeof(float)));
}

void BM_u8_to_unit(benchmark::State& state) {
  const std::size_t n = count(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  Rng rng = input_rng(2);
  const std::vector<std::uint8_t> src = bytes(rng, n);
  std::vector<float> dst(n);
  cpu::u8_to_unit(src.data(), dst.data(), n);
  if (!validated(state, mismatch("u8_to_unit", dst, ref_u8_to_unit(src), kTolElementwise))) return;
  for (auto _ : state) {
    cpu::u8_to_unit(src.data(), dst.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * u8_to_unit_bytes(n));
}

// The host side of the streamed data path: `batch` shuffled rows of a 60000-image training set
// gathered into a staging buffer (what the CUDA backend does per step before the copy). Each
// iteration takes the next batch of one shuffled epoch, as training does, so that the rows come
// from memory, not from the cache a repeated batch would warm. Bytes: the rows read and written,
// labels included. Checked: every gathered row and label of the first batch is its source.
void BM_gather_rows(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0)), pixels = static_cast<int>(state.range(1));
  constexpr int kImages = 60000;
  Rng rng = input_rng(11);
  const std::vector<std::uint8_t> images = bytes(rng, count(kImages, pixels)), labels = bytes(rng, kImages);
  std::vector<std::uint32_t> order(kImages);
  for (int i = 0; i < kImages; ++i) order[static_cast<std::size_t>(i)] = static_cast<std::uint32_t>(i);
  rng.shuffle(order);
  std::vector<std::uint8_t> out(count(batch, pixels)), out_labels(static_cast<std::size_t>(batch));
  gather_rows(images.data(), labels.data(), pixels, order.data(), batch, out.data(), out_labels.data());
  std::string problem;
  for (int r = 0; r < batch && problem.empty(); ++r) {
    const std::uint32_t src = order[static_cast<std::size_t>(r)];
    if (std::memcmp(out.data() + count(r, pixels), images.data() + count(static_cast<int>(src), pixels),
                    static_cast<std::size_t>(pixels)) != 0 ||
        out_labels[static_cast<std::size_t>(r)] != labels[src])
      problem = "row " + std::to_string(r) + " is not image " + std::to_string(src);
  }
  if (!validated(state, problem)) return;
  const std::size_t batches = kImages / static_cast<std::size_t>(batch);
  std::size_t k = 0;
  for (auto _ : state) {
    gather_rows(images.data(), labels.data(), pixels, order.data() + k * static_cast<std::size_t>(batch), batch,
                out.data(), out_labels.data());
    benchmark::ClobberMemory();
    k = k + 1 == batches ? 0 : k + 1;
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(2 * count(batch, pixels + 1)));
  state.counters["samples/s"] = benchmark::Counter(batch, benchmark::Counter::kIsIterationInvariantRate);
}

// In place: the timed calls keep applying act(y + b) to the previous result. For relu and identity
// that only shifts the values, which changes nothing about the time.
void BM_bias_act_forward(benchmark::State& state, Activation act) {
  const int batch = static_cast<int>(state.range(0)), width = static_cast<int>(state.range(1));
  Rng rng = input_rng(3);
  std::vector<float> y = uniform(rng, count(batch, width), -4, 4);
  const std::vector<float> b = uniform(rng, static_cast<std::size_t>(width), -1, 1);
  const std::vector<double> want = ref_bias_act_forward(y, b, batch, width, act);
  cpu::bias_act_forward(y.data(), b.data(), batch, width, act);
  if (!validated(state, mismatch("bias_act_forward", y, want, kTolElementwise, static_cast<std::size_t>(width))))
    return;
  for (auto _ : state) {
    cpu::bias_act_forward(y.data(), b.data(), batch, width, act);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bias_act_forward_bytes(batch, width));
}

// In place on dy; relu's backward is idempotent, so repeated calls do the same work.
void BM_act_backward(benchmark::State& state, Activation act) {
  const std::size_t n = count(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  Rng rng = input_rng(4);
  std::vector<float> dy = uniform(rng, n, -1, 1);
  std::vector<float> y = uniform(rng, n, -1, 1);
  for (auto& v : y) v = static_cast<float>(ref_activate(v, act));
  const std::vector<double> want = ref_act_backward(dy, y, act);
  cpu::act_backward(dy.data(), y.data(), n, act);
  if (!validated(state, mismatch("act_backward", dy, want, act == Activation::relu ? kTolExact : kTolElementwise)))
    return;
  for (auto _ : state) {
    cpu::act_backward(dy.data(), y.data(), n, act);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * act_backward_bytes(n));
}

// Dyadic inputs make the float column sums exact, so the check against float64 is exact.
void BM_bias_grad(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0)), width = static_cast<int>(state.range(1));
  Rng rng = input_rng(5);
  const std::vector<float> dy = dyadic(rng, count(batch, width));
  std::vector<float> db(static_cast<std::size_t>(width));
  cpu::bias_grad(dy.data(), db.data(), batch, width);
  if (!validated(state, mismatch("bias_grad", db, ref_bias_grad(dy, batch, width), kTolExact))) return;
  for (auto _ : state) {
    cpu::bias_grad(dy.data(), db.data(), batch, width);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bias_grad_bytes(batch, width));
}

// The loss sum adds in double, the correct count is exact, the gradient is elementwise.
std::string loss_mismatch(const char* op, double loss, unsigned long long correct, const std::vector<float>& grad,
                          const LossRef& want, const Tolerance& grad_tol, int classes) {
  std::string p = mismatch(std::string(op) + " loss sum", &loss, &want.loss, 1, kTolReduction);
  if (p.empty() && correct != want.correct)
    p = std::string(op) + ": " + std::to_string(correct) + " correct rows, the reference has " +
        std::to_string(want.correct);
  if (p.empty()) p = mismatch(std::string(op) + " gradient", grad, want.grad, grad_tol, static_cast<std::size_t>(classes));
  return p;
}

// Logits uniform in [-5, 5); the training step's call (with the gradient).
void BM_softmax_xent(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0)), classes = static_cast<int>(state.range(1));
  Rng rng = input_rng(6);
  const std::vector<float> logits = uniform(rng, count(batch, classes), -5, 5);
  const std::vector<std::uint8_t> lab = labels(rng, static_cast<std::size_t>(batch), classes);
  const float scale = 1.0f / static_cast<float>(batch);
  std::vector<float> grad(logits.size());
  double loss = 0;
  unsigned long long correct = 0;
  cpu::softmax_xent(logits.data(), lab.data(), grad.data(), batch, classes, scale, &loss, &correct);
  if (!validated(state, loss_mismatch("softmax_xent", loss, correct, grad,
                                      ref_softmax_xent(logits, lab, batch, classes, scale), kTolElementwise, classes)))
    return;
  for (auto _ : state) {
    cpu::softmax_xent(logits.data(), lab.data(), grad.data(), batch, classes, scale, &loss, &correct);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * loss_bytes(batch, classes));
}

void BM_l2_loss(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0)), classes = static_cast<int>(state.range(1));
  Rng rng = input_rng(7);
  const std::vector<float> out = uniform(rng, count(batch, classes), -1, 2);
  const std::vector<std::uint8_t> lab = labels(rng, static_cast<std::size_t>(batch), classes);
  const float scale = 1.0f / static_cast<float>(batch);
  std::vector<float> grad(out.size());
  double loss = 0;
  unsigned long long correct = 0;
  cpu::l2_loss(out.data(), lab.data(), grad.data(), batch, classes, scale, &loss, &correct);
  if (!validated(state, loss_mismatch("l2_loss", loss, correct, grad, ref_l2_loss(out, lab, batch, classes, scale),
                                      kTolElementwise, classes)))
    return;
  for (auto _ : state) {
    cpu::l2_loss(out.data(), lab.data(), grad.data(), batch, classes, scale, &loss, &correct);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * loss_bytes(batch, classes));
}

void BM_confusion_update(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0)), classes = static_cast<int>(state.range(1));
  Rng rng = input_rng(8);
  const std::vector<float> logits = uniform(rng, count(batch, classes), -1, 1);
  const std::vector<std::uint8_t> lab = labels(rng, static_cast<std::size_t>(batch), classes);
  std::vector<unsigned long long> conf(count(classes, classes), 0);
  cpu::confusion_update(logits.data(), lab.data(), batch, classes, conf.data());
  if (!validated(state, mismatch("confusion_update", conf, ref_confusion(logits, lab, batch, classes), kTolExact,
                                 static_cast<std::size_t>(classes))))
    return;
  for (auto _ : state) {
    cpu::confusion_update(logits.data(), lab.data(), batch, classes, conf.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * confusion_bytes(batch, classes));
}

// The whole arena of the default model, in place: the timed calls keep stepping the same arena.
void BM_optimizer_update(benchmark::State& state, OptimizerKind kind) {
  OptimInputs in = optim_inputs(kind, 9);
  const OptimRef want = ref_optimizer_update(in);
  float* s1 = in.s1.empty() ? nullptr : in.s1.data();
  float* s2 = in.s2.empty() ? nullptr : in.s2.data();
  cpu::optimizer_update(in.step, in.w.data(), in.g.data(), s1, s2, in.n, in.n_decay);
  std::string p = mismatch("optimizer_update w", in.w, want.w, kTolOptimizer);
  if (p.empty()) p = mismatch("optimizer_update state 1", in.s1, want.s1, kTolOptimizer, 0, s1 != nullptr);
  if (p.empty()) p = mismatch("optimizer_update state 2", in.s2, want.s2, kTolOptimizer, 0, s2 != nullptr);
  if (!validated(state, p)) return;
  for (auto _ : state) {
    cpu::optimizer_update(in.step, in.w.data(), in.g.data(), s1, s2, in.n, in.n_decay);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * optimizer_bytes(kind, in.n));
}

// A batch of seeded noise images deformed with a preset's parameters, split between as many
// threads as the CPU backend uses (OpenBLAS's; the `threads` counter). Checked first: the same
// batch with every parameter 0 comes back bit for bit, every deformed pixel is in [0, 1], and the
// split batch is the one-thread batch bit for bit.
void BM_augment(benchmark::State& state, AugmentKind kind) {
  const int batch = static_cast<int>(state.range(0));
  const AugmentInputs inputs = augment_inputs(batch, 12);
  const std::vector<float>& in = inputs.images;
  const std::vector<std::uint32_t>& idx = inputs.indices;
  const std::vector<std::uint8_t>& lab = inputs.labels;
  std::vector<float> out(in.size());
  AugmentConfig zero;
  zero.kind = kind;
  cpu::augment(in.data(), out.data(), batch, make_augment_plan(zero, 1), idx.data(), lab.data(), 1);
  std::string problem = mismatch("augment with every parameter 0", out, in, kTolExact);
  const AugmentPlan plan = make_augment_plan(augment_preset(kind), 1);
  cpu::augment(in.data(), out.data(), batch, plan, idx.data(), lab.data(), 1);
  for (std::size_t i = 0; i < out.size() && problem.empty(); ++i)
    if (!(out[i] >= 0.0f && out[i] <= 1.0f)) problem = "pixel " + std::to_string(i) + " out of [0, 1]";
  RowWorkers workers(cpu_worker_threads());
  std::vector<float> split(in.size());
  cpu::augment(in.data(), split.data(), batch, plan, idx.data(), lab.data(), 1, workers);
  if (problem.empty()) problem = mismatch("augment split between threads", split, out, kTolExact);
  if (!validated(state, problem)) return;
  long long epoch = 1;
  for (auto _ : state) {
    cpu::augment(in.data(), out.data(), batch, plan, idx.data(), lab.data(), ++epoch, workers);
    benchmark::ClobberMemory();
  }
  state.counters["threads"] = workers.threads();
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

benchmark::internal::Benchmark* cpu_bench(benchmark::internal::Benchmark* b) {
  return b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

void register_benchmarks() {
  benchmark::AddCustomContext("mnist_gpu_version", MNIST_GPU_VERSION);
  benchmark::AddCustomContext("cpu_gemm", MNIST_GPU_MICRO_CPU_GEMM);
  register_suite({cpu_bench, BM_dense, kCpuCeilingN, BM_copy_ceiling, 64 << 20, BM_gather_rows, BM_u8_to_unit,
                  BM_bias_act_forward, BM_act_backward, BM_bias_grad, BM_softmax_xent, BM_l2_loss,
                  BM_confusion_update, BM_optimizer_update, BM_augment});
}

}  // namespace mnist_gpu::micro
