// The training step as data: a list of stages built once from the model, which every backend runs
// through the same run_step. The CPU runs the stages eagerly (the reference); CUDA runs them
// eagerly for a partial batch and captures the same run once into a graph for full batches.
// A stage per layer is the seam for per-layer plans (a fused tensor-core layer replacing the
// plain one); the gradient hook between backward and update is the seam for clipping or an
// all-reduce.
#pragma once
#include <vector>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

enum class StageKind {
  input,      ///< the batch's rows gathered and converted to float
  augment,    ///< the batch's images deformed (--augment; augment.hpp): only when deforming
  forward,    ///< one layer: product, bias + activation, dropout
  loss,       ///< the loss, its gradient, the loss sum and correct count
  backward,   ///< one layer: weight and bias gradients, then the gradient of its input
  grad_hook,  ///< on the whole gradient before the update (none is built yet)
  update,     ///< the optimizer
};

struct Stage {
  StageKind kind = StageKind::input;
  int layer = -1;  ///< forward, backward: the dense layer (0-based)
  bool operator==(const Stage& o) const { return kind == o.kind && layer == o.layer; }
};

const char* to_string(StageKind k);

/// input; augment when `augment`; forward 0 .. L-1; loss; backward L-1 .. 0; update (L dense
/// layers of `spec`).
std::vector<Stage> make_step_program(const ModelSpec& spec, bool augment = false);

/// Runs the stages in order on `exec`, which offers input(), augment(), forward(layer), loss(),
/// backward(layer), grad_hook() and update().
template <class Exec>
void run_step(const std::vector<Stage>& program, Exec& exec) {
  for (const Stage& s : program) {
    switch (s.kind) {
      case StageKind::input: exec.input(); break;
      case StageKind::augment: exec.augment(); break;
      case StageKind::forward: exec.forward(s.layer); break;
      case StageKind::loss: exec.loss(); break;
      case StageKind::backward: exec.backward(s.layer); break;
      case StageKind::grad_hook: exec.grad_hook(); break;
      case StageKind::update: exec.update(); break;
    }
  }
}

}  // namespace mnist_gpu
