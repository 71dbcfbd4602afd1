// The list of micro-benchmarks and their arguments, shared by micro_cpu.cpp and micro_gpu.cpp:
// each binary hands over its benchmark functions and how they are timed, and both register the
// same ops at the same shapes, so that their tables line up row for row.
#pragma once
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "micro_work.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu::micro {

/// One binary's benchmark functions. Each takes the benchmark's state, plus the op, activation
/// or optimizer it measures where one function serves several.
struct MicroSuite {
  using Plain = void (*)(benchmark::State&);
  benchmark::internal::Benchmark* (*timing)(benchmark::internal::Benchmark*);  // real or manual time
  void (*dense)(benchmark::State&, DenseOp);
  int sgemm_ceiling_n;  // the square product the binary's ceiling measures
  Plain copy_ceiling;
  std::int64_t copy_ceiling_bytes;
  Plain gather_rows;  // nullptr: not measured by this binary
  Plain u8_to_unit;
  void (*bias_act_forward)(benchmark::State&, Activation);
  void (*act_backward)(benchmark::State&, Activation);
  Plain bias_grad;
  Plain softmax_xent;
  Plain l2_loss;
  Plain confusion_update;
  void (*optimizer_update)(benchmark::State&, OptimizerKind);
  void (*augment)(benchmark::State&, AugmentKind);  // --augment's deformations; reports images/s
};

/// Registers suite's benchmarks at the default model's shapes and each of kBatches.
inline void register_suite(const MicroSuite& suite) {
  const int inputs = ModelSpec{}.inputs, classes = ModelSpec{}.outputs;
  const Activation hidden_act = ModelSpec{}.activation;
  auto add = [&](const std::string& name, auto&& fn, auto... args) {
    return suite.timing(benchmark::RegisterBenchmark(name.c_str(), fn, args...));
  };

  for (DenseOp op : {DenseOp::forward, DenseOp::backward_weights, DenseOp::backward_data}) {
    auto* b = add(std::string("BM_") + to_string(op), suite.dense, op);
    b->ArgNames({"batch", "in", "out"});
    for (const DenseShape& s : model_dense_shapes())
      if (used_in_training(op, s)) b->Args({s.batch, s.in, s.out});
  }
  // The ceilings: the square product that the binary's SGEMM ceiling times, and a copy far
  // beyond the caches.
  const int n = suite.sgemm_ceiling_n;
  add("BM_sgemm_ceiling", suite.dense, DenseOp::forward)->ArgNames({"batch", "in", "out"})->Args({n, n, n});
  add("BM_copy_ceiling", suite.copy_ceiling)->ArgName("bytes")->Arg(suite.copy_ceiling_bytes);

  const std::vector<int> widths = ModelSpec{}.widths();
  const std::vector<int> hidden(widths.begin() + 1, widths.end() - 1);
  auto* gather = suite.gather_rows != nullptr ? add("BM_gather_rows", suite.gather_rows) : nullptr;
  auto* u8 = add("BM_u8_to_unit", suite.u8_to_unit);
  auto* fwd_hidden = add(std::string("BM_bias_act_forward/") + to_string(hidden_act), suite.bias_act_forward, hidden_act);
  auto* fwd_out = add("BM_bias_act_forward/identity", suite.bias_act_forward, Activation::identity);
  auto* bwd = add(std::string("BM_act_backward/") + to_string(hidden_act), suite.act_backward, hidden_act);
  auto* bgrad = add("BM_bias_grad", suite.bias_grad);
  auto* xent = add("BM_softmax_xent", suite.softmax_xent);
  auto* l2 = add("BM_l2_loss", suite.l2_loss);
  auto* conf = add("BM_confusion_update", suite.confusion_update);
  for (auto* b : {gather, u8, fwd_hidden, fwd_out, bwd, bgrad})
    if (b != nullptr) b->ArgNames({"batch", "width"});
  for (auto* b : {xent, l2, conf}) b->ArgNames({"batch", "classes"});
  for (int batch : kBatches) {
    if (gather != nullptr) gather->Args({batch, inputs});
    u8->Args({batch, inputs});
    for (int w : hidden) {
      fwd_hidden->Args({batch, w});
      bwd->Args({batch, w});
      bgrad->Args({batch, w});
    }
    fwd_out->Args({batch, classes});
    bgrad->Args({batch, classes});
    xent->Args({batch, classes});
    l2->Args({batch, classes});
    conf->Args({batch, classes});
  }
  for (const OptimCase& oc : kOptimCases)
    add(std::string("BM_optimizer_update/") + oc.name, suite.optimizer_update, oc.kind);
  for (AugmentKind kind : {AugmentKind::affine, AugmentKind::elastic, AugmentKind::ciresan})
    add(std::string("BM_augment/") + to_string(kind), suite.augment, kind)->ArgName("batch")->Arg(256);
}

}  // namespace mnist_gpu::micro
