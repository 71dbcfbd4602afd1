// make_step_program (step_program.hpp).
#include "mnist_gpu/step_program.hpp"

#include "mnist_gpu/model.hpp"

namespace mnist_gpu {

const char* to_string(StageKind k) {
  switch (k) {
    case StageKind::input: return "input";
    case StageKind::augment: return "augment";
    case StageKind::forward: return "forward";
    case StageKind::loss: return "loss";
    case StageKind::backward: return "backward";
    case StageKind::grad_hook: return "grad_hook";
    case StageKind::update: return "update";
  }
  return "?";
}

std::vector<Stage> make_step_program(const ModelSpec& spec, bool augment) {
  const int layers = static_cast<int>(spec.hidden.size()) + 1;
  std::vector<Stage> p;
  p.push_back({StageKind::input, -1});
  if (augment) p.push_back({StageKind::augment, -1});
  for (int l = 0; l < layers; ++l) p.push_back({StageKind::forward, l});
  p.push_back({StageKind::loss, -1});
  for (int l = layers; l-- > 0;) p.push_back({StageKind::backward, l});
  p.push_back({StageKind::update, -1});
  return p;
}

}  // namespace mnist_gpu
