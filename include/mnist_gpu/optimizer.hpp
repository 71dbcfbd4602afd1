// Optimizer state by name: what each optimizer keeps between steps, one tensor the size of the
// parameter arena per name. Checkpoints store the tensors by these names; backends hold them in
// this order.
#pragma once
#include <string>
#include <vector>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

/// One named optimizer state tensor (layout.size floats).
struct NamedTensor {
  std::string name;
  std::vector<float> values;
  bool operator==(const NamedTensor& o) const { return name == o.name && values == o.values; }
};

/// The state tensors `kind` keeps, in the order the update reads them: sgd none; momentum
/// "velocity"; adam "m" (first moment) and "v" (second moment); rmsprop "sq" (the running mean of
/// the squared gradient).
std::vector<std::string> optimizer_state_names(OptimizerKind kind);

}  // namespace mnist_gpu
