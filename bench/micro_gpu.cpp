// GPU micro-benchmarks: every kernel of kernels/gpu_ops.hpp and the three cuBLAS products (FP32,
// TF32 off) at the default model's shapes, each first checked against its CPU twin (cpu_ops.hpp)
// on the same inputs under compare.hpp's named tolerances, then timed with CUDA events. Without a
// usable GPU every benchmark ends in a visible error ("no usable GPU: <reason>").
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "cuda_resources.hpp"
#include "device_copy.hpp"
#include "gpu_ops.hpp"
#include "step_table.hpp"
#include "micro_check.hpp"
#include "micro_register.hpp"
#include "micro_work.hpp"
#include "mnist_gpu/augment.hpp"
#include "mnist_gpu/compare.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/device.hpp"

namespace mnist_gpu::micro {
namespace {

const DeviceProbe& device_probe() {
  static const DeviceProbe probe = probe_device();
  return probe;
}

// A timed iteration queues this many launches between two events and reports their mean time,
// so that the host's latency in starting the first launch counts once per 16 launches, not
// per launch. An op shorter than a launch's host cost is then timed at the launch rate, which is
// what it costs in training too.
constexpr int kLaunchesPerIteration = 16;

// The stream and the cuBLAS handle (FP32, TF32 off) that one benchmark runs on.
struct Gpu {
  gpu::Stream stream;
  gpu::CublasHandle cublas{stream.get()};  // declared after the stream: destroyed before it
  cudaStream_t s() const { return stream.get(); }
};

// Runs body(gpu) when a usable GPU exists. No GPU, or any error thrown on the way (a failed CUDA
// call names itself), ends the benchmark in a visible error instead.
template <class Body>
void on_gpu(benchmark::State& state, Body&& body) {
  const DeviceProbe& probe = device_probe();
  if (!probe.usable) {
    state.SkipWithError(("no usable GPU: " + probe.reason).c_str());
    return;
  }
  try {
    CUDA_CHECK(cudaSetDevice(0));
    Gpu g;
    body(g);
    g.stream.sync();
  } catch (const std::exception& e) {
    state.SkipWithError((std::string("failed: ") + e.what()).c_str());
  }
}

bool validated(benchmark::State& state, const std::string& problem) {
  if (problem.empty()) return true;
  state.SkipWithError(("disagrees with its CPU twin: " + problem).c_str());
  return false;
}

// One warm-up launch, then per iteration kLaunchesPerIteration launches between two events.
template <class Launch>
void time_launches(benchmark::State& state, const Gpu& g, Launch&& launch) {
  const gpu::Event start(true), stop(true);
  launch();
  for (auto _ : state) {
    start.record(g.s());
    for (int r = 0; r < kLaunchesPerIteration; ++r) launch();
    stop.record(g.s());
    stop.sync();
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
    state.SetIterationTime(static_cast<double>(ms) * 1e-3 / kLaunchesPerIteration);
  }
}

using gpu::download;
using gpu::poison;
using gpu::upload;

void set_flops(benchmark::State& state, double flops_per_call) {
  state.counters["FLOP/s"] = benchmark::Counter(flops_per_call, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

DenseShape dense_shape(const benchmark::State& state) {
  return {static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), static_cast<int>(state.range(2))};
}

void BM_dense(benchmark::State& state, DenseOp op) {
  on_gpu(state, [&](Gpu& g) {
    const DenseShape s = dense_shape(state);
    const GemmDims d = gemm_dims(op, s);
    const DenseOperands in = dense_operands(op, s, 1);
    auto d_a = upload(in.a, g.s());
    auto d_b = upload(in.b, g.s());
    gpu::DeviceBuffer<float> d_c(count(d.m, d.n));
    poison(d_c, g.s());
    auto launch = [&] {
      switch (op) {
        case DenseOp::forward: gpu::dense_forward(d_a.get(), d_b.get(), d_c.get(), s.batch, s.in, s.out, g.cublas.get()); break;
        case DenseOp::backward_data:
          gpu::dense_backward_data(d_a.get(), d_b.get(), d_c.get(), s.batch, s.in, s.out, g.cublas.get());
          break;
        case DenseOp::backward_weights:
          gpu::dense_backward_weights(d_a.get(), d_b.get(), d_c.get(), s.batch, s.in, s.out, g.cublas.get());
          break;
      }
    };
    launch();
    std::vector<float> want(d_c.size());
    switch (op) {
      case DenseOp::forward: cpu::dense_forward(in.a.data(), in.b.data(), want.data(), s.batch, s.in, s.out); break;
      case DenseOp::backward_data: cpu::dense_backward_data(in.a.data(), in.b.data(), want.data(), s.batch, s.in, s.out); break;
      case DenseOp::backward_weights:
        cpu::dense_backward_weights(in.a.data(), in.b.data(), want.data(), s.batch, s.in, s.out);
        break;
    }
    if (!validated(state, mismatch(to_string(op), download(d_c, g.s()), want, kTolGemm, static_cast<std::size_t>(d.n))))
      return;
    time_launches(state, g, launch);
    set_flops(state, gemm_flops(op, s));
  });
}

// The bandwidth ceiling: a device-to-device copy of 256 MiB (far beyond the 60 MB L2).
void BM_copy_ceiling(benchmark::State& state) {
  on_gpu(state, [&](Gpu& g) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(float);
    Rng rng = input_rng(10);
    const std::vector<float> src = uniform(rng, n, -1, 1);
    auto d_src = upload(src, g.s());
    gpu::DeviceBuffer<float> d_dst(n);
    poison(d_dst, g.s());
    auto launch = [&] {
      CUDA_CHECK(cudaMemcpyAsync(d_dst.get(), d_src.get(), d_src.bytes(), cudaMemcpyDeviceToDevice, g.s()));
    };
    launch();
    if (!validated(state, mismatch("copy", download(d_dst, g.s()), src, kTolExact))) return;
    time_launches(state, g, launch);
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(2 * d_src.bytes()));
  });
}

void BM_u8_to_unit(benchmark::State& state) {
  on_gpu(state, [&](Gpu& g) {
    const std::size_t n = count(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
    Rng rng = input_rng(2);
    const std::vector<std::uint8_t> src = bytes(rng, n);
    auto d_src = upload(src, g.s());
    gpu::DeviceBuffer<float> d_dst(n);
    poison(d_dst, g.s());
    auto launch = [&] { gpu::u8_to_unit(d_src.get(), d_dst.get(), n, g.s()); };
    launch();
    std::vector<float> want(n);
    cpu::u8_to_unit(src.data(), want.data(), n);
    if (!validated(state, mismatch("u8_to_unit", download(d_dst, g.s()), want, kTolExact))) return;
    time_launches(state, g, launch);
    state.SetBytesProcessed(state.iterations() * u8_to_unit_bytes(n));
  });
}

// relu and identity are a compare and an add, rounded alike on both sides; sigmoid and tanh go
// through expf/tanhf, which differ from glibc's by a few ulp.
const Tolerance& act_tol(Activation a) {
  return a == Activation::relu || a == Activation::identity ? kTolExact : kTolElementwise;
}

// In place: the timed launches keep applying act(y + b) to the previous result, which for relu and
// identity only shifts the values.
void BM_bias_act_forward(benchmark::State& state, Activation act) {
  on_gpu(state, [&](Gpu& g) {
    const int batch = static_cast<int>(state.range(0)), width = static_cast<int>(state.range(1));
    Rng rng = input_rng(3);
    std::vector<float> y = uniform(rng, count(batch, width), -4, 4);
    const std::vector<float> b = uniform(rng, static_cast<std::size_t>(width), -1, 1);
    auto d_y = upload(y, g.s());
    auto d_b = upload(b, g.s());
    auto launch = [&] { gpu::bias_act_forward(d_y.get(), d_b.get(), batch, width, act, g.s()); };
    launch();
    cpu::bias_act_forward(y.data(), b.data(), batch, width, act);
    if (!validated(state, mismatch("bias_act_forward", download(d_y, g.s()), y, act_tol(act),
                                   static_cast<std::size_t>(width))))
      return;
    time_launches(state, g, launch);
    state.SetBytesProcessed(state.iterations() * bias_act_forward_bytes(batch, width));
  });
}

// In place on dy; relu's backward is idempotent, so repeated launches do the same work.
void BM_act_backward(benchmark::State& state, Activation act) {
  on_gpu(state, [&](Gpu& g) {
    const std::size_t n = count(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
    Rng rng = input_rng(4);
    std::vector<float> dy = uniform(rng, n, -1, 1);
    std::vector<float> y = uniform(rng, n, -1, 1);
    for (auto& v : y) v = static_cast<float>(ref_activate(v, act));
    auto d_dy = upload(dy, g.s());
    auto d_y = upload(y, g.s());
    auto launch = [&] { gpu::act_backward(d_dy.get(), d_y.get(), n, act, g.s()); };
    launch();
    cpu::act_backward(dy.data(), y.data(), n, act);
    if (!validated(state, mismatch("act_backward", download(d_dy, g.s()), dy, act_tol(act)))) return;
    time_launches(state, g, launch);
    state.SetBytesProcessed(state.iterations() * act_backward_bytes(n));
  });
}

// Dyadic inputs make column sums exact in any order, so the check is exact whatever the
// kernel's reduction order.
void BM_bias_grad(benchmark::State& state) {
  on_gpu(state, [&](Gpu& g) {
    const int batch = static_cast<int>(state.range(0)), width = static_cast<int>(state.range(1));
    Rng rng = input_rng(5);
    const std::vector<float> dy = dyadic(rng, count(batch, width));
    auto d_dy = upload(dy, g.s());
    gpu::DeviceBuffer<float> d_db(static_cast<std::size_t>(width));
    poison(d_db, g.s());
    auto launch = [&] { gpu::bias_grad(d_dy.get(), d_db.get(), batch, width, g.s()); };
    launch();
    std::vector<float> want(d_db.size());
    cpu::bias_grad(dy.data(), want.data(), batch, width);
    if (!validated(state, mismatch("bias_grad", download(d_db, g.s()), want, kTolExact))) return;
    time_launches(state, g, launch);
    state.SetBytesProcessed(state.iterations() * bias_grad_bytes(batch, width));
  });
}

enum class LossOp { softmax_xent, l2_loss };

// The training step's call (with the gradient), on device accumulators that start at zero.
// softmax_xent: logits in [-5, 5), gradient elementwise (expf, logf); l2_loss: outputs in [-1, 2),
// gradient one subtraction and one product, rounded alike on both sides.
void BM_loss(benchmark::State& state, LossOp op) {
  on_gpu(state, [&](Gpu& g) {
    const int batch = static_cast<int>(state.range(0)), classes = static_cast<int>(state.range(1));
    const bool xent = op == LossOp::softmax_xent;
    const char* name = xent ? "softmax_xent" : "l2_loss";
    Rng rng = input_rng(xent ? 6 : 7);
    const std::vector<float> z = xent ? uniform(rng, count(batch, classes), -5, 5) : uniform(rng, count(batch, classes), -1, 2);
    const std::vector<std::uint8_t> lab = labels(rng, static_cast<std::size_t>(batch), classes);
    const float scale = 1.0f / static_cast<float>(batch);
    auto d_z = upload(z, g.s());
    auto d_lab = upload(lab, g.s());
    auto d_loss = upload(std::vector<double>{0.0}, g.s());
    auto d_correct = upload(std::vector<unsigned long long>{0}, g.s());
    gpu::DeviceBuffer<float> d_grad(z.size());
    poison(d_grad, g.s());
    auto launch = [&] {
      if (xent)
        gpu::softmax_xent(d_z.get(), d_lab.get(), d_grad.get(), batch, classes, scale, d_loss.get(), d_correct.get(), g.s());
      else
        gpu::l2_loss(d_z.get(), d_lab.get(), d_grad.get(), batch, classes, scale, d_loss.get(), d_correct.get(), g.s());
    };
    launch();
    std::vector<float> grad(z.size());
    double loss = 0;
    unsigned long long correct = 0;
    if (xent) cpu::softmax_xent(z.data(), lab.data(), grad.data(), batch, classes, scale, &loss, &correct);
    else cpu::l2_loss(z.data(), lab.data(), grad.data(), batch, classes, scale, &loss, &correct);
    const double g_loss = download(d_loss, g.s())[0];
    const unsigned long long g_correct = download(d_correct, g.s())[0];
    std::string p = mismatch(std::string(name) + " loss sum", &g_loss, &loss, 1, kTolReduction);
    if (p.empty() && g_correct != correct)
      p = std::string(name) + ": " + std::to_string(g_correct) + " correct rows, the CPU twin counts " +
          std::to_string(correct);
    if (p.empty())
      p = mismatch(std::string(name) + " gradient", download(d_grad, g.s()), grad, xent ? kTolElementwise : kTolExact,
                   static_cast<std::size_t>(classes));
    if (!validated(state, p)) return;
    time_launches(state, g, launch);
    state.SetBytesProcessed(state.iterations() * loss_bytes(batch, classes));
  });
}

void BM_confusion_update(benchmark::State& state) {
  on_gpu(state, [&](Gpu& g) {
    const int batch = static_cast<int>(state.range(0)), classes = static_cast<int>(state.range(1));
    Rng rng = input_rng(8);
    const std::vector<float> logits = uniform(rng, count(batch, classes), -1, 1);
    const std::vector<std::uint8_t> lab = labels(rng, static_cast<std::size_t>(batch), classes);
    std::vector<unsigned long long> want(count(classes, classes), 0);
    auto d_logits = upload(logits, g.s());
    auto d_lab = upload(lab, g.s());
    auto d_conf = upload(want, g.s());
    auto launch = [&] { gpu::confusion_update(d_logits.get(), d_lab.get(), batch, classes, d_conf.get(), g.s()); };
    launch();
    cpu::confusion_update(logits.data(), lab.data(), batch, classes, want.data());
    if (!validated(state, mismatch("confusion_update", download(d_conf, g.s()), want, kTolExact,
                                   static_cast<std::size_t>(classes))))
      return;
    time_launches(state, g, launch);
    state.SetBytesProcessed(state.iterations() * confusion_bytes(batch, classes));
  });
}

// The whole arena of the default model, in place: the timed launches keep stepping it.
void BM_optimizer_update(benchmark::State& state, OptimizerKind kind) {
  on_gpu(state, [&](Gpu& g) {
    OptimInputs in = optim_inputs(kind, 9);
    auto d_w = upload(in.w, g.s());
    auto d_g = upload(in.g, g.s());
    auto d_s1 = upload(in.s1, g.s());
    auto d_s2 = upload(in.s2, g.s());
    gpu::StepTable steps;  // one row (step 10, as in.step), never advanced: every launch reads it
    steps.load({gpu::step_row(10, 0, in.step)}, 0, g.s());
    auto launch = [&] {
      gpu::optimizer_update(in.step, steps.ref(), d_w.get(), d_g.get(), d_s1.get(), d_s2.get(), in.n, in.n_decay,
                            g.s());
    };
    launch();
    float* s1 = in.s1.empty() ? nullptr : in.s1.data();
    float* s2 = in.s2.empty() ? nullptr : in.s2.data();
    cpu::optimizer_update(in.step, in.w.data(), in.g.data(), s1, s2, in.n, in.n_decay);
    std::string p = mismatch("optimizer_update w", download(d_w, g.s()), in.w, kTolOptimizer);
    if (p.empty()) p = mismatch("optimizer_update state 1", download(d_s1, g.s()), in.s1, kTolOptimizer, 0, s1 != nullptr);
    if (p.empty()) p = mismatch("optimizer_update state 2", download(d_s2, g.s()), in.s2, kTolOptimizer, 0, s2 != nullptr);
    if (!validated(state, p)) return;
    time_launches(state, g, launch);
    state.SetBytesProcessed(state.iterations() * optimizer_bytes(kind, in.n));
  });
}

// A batch of seeded noise images deformed with a preset's parameters, checked against the CPU
// twin (kTolAugment) before it is timed.
void BM_augment(benchmark::State& state, AugmentKind kind) {
  on_gpu(state, [&](Gpu& g) {
    const int batch = static_cast<int>(state.range(0));
    const AugmentInputs inputs = augment_inputs(batch, 12);
    const std::vector<float>& in = inputs.images;
    const std::vector<std::uint32_t>& idx = inputs.indices;
    const std::vector<std::uint8_t>& lab = inputs.labels;
    const AugmentPlan plan = make_augment_plan(augment_preset(kind), 1);
    auto d_in = upload(in, g.s());
    auto d_idx = upload(idx, g.s());
    auto d_lab = upload(lab, g.s());
    gpu::DeviceBuffer<float> d_out(in.size());
    poison(d_out, g.s());
    gpu::StepTable steps;  // one row (epoch 2, offset 0), never advanced
    steps.load({gpu::step_row(1, 0, OptimStep{}, 2)}, 0, g.s());
    auto launch = [&] {
      gpu::augment(d_in.get(), d_out.get(), batch, plan, d_idx.get(), d_lab.get(), steps.ref(), g.s());
    };
    launch();
    std::vector<float> want(in.size());
    cpu::augment(in.data(), want.data(), batch, plan, idx.data(), lab.data(), 2);
    if (!validated(state, mismatch("augment", download(d_out, g.s()), want, kTolAugment))) return;
    time_launches(state, g, launch);
    state.counters["images/s"] =
        benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  });
}

benchmark::internal::Benchmark* gpu_bench(benchmark::internal::Benchmark* b) {
  return b->UseManualTime()->Unit(benchmark::kMicrosecond);
}

std::string describe_device(const DeviceProbe& p) {
  if (!p.usable) return "none: " + p.reason;
  return p.name + " (compute capability " + std::to_string(p.compute_major) + "." + std::to_string(p.compute_minor) +
         ", " + std::to_string(p.total_bytes >> 20) + " MiB)";
}

}  // namespace

void register_benchmarks() {
  benchmark::AddCustomContext("mnist_gpu_version", MNIST_GPU_VERSION);
  benchmark::AddCustomContext("gpu", describe_device(device_probe()));
  benchmark::AddCustomContext("cublas_math", "FP32 (TF32 off)");
  benchmark::AddCustomContext("launches_per_iteration", std::to_string(kLaunchesPerIteration));
  // No host gather on the GPU: the streamed path gathers on the host (micro_cpu's BM_gather_rows).
  register_suite({gpu_bench, BM_dense, kGpuCeilingN, BM_copy_ceiling, 256 << 20, nullptr, BM_u8_to_unit,
                  BM_bias_act_forward, BM_act_backward, BM_bias_grad,
                  [](benchmark::State& st) { BM_loss(st, LossOp::softmax_xent); },
                  [](benchmark::State& st) { BM_loss(st, LossOp::l2_loss); }, BM_confusion_update,
                  BM_optimizer_update, BM_augment});
}

}  // namespace mnist_gpu::micro
