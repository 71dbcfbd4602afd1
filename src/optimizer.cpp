// The optimizers' state names (optimizer.hpp).
#include "mnist_gpu/optimizer.hpp"

namespace mnist_gpu {

std::vector<std::string> optimizer_state_names(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::sgd: return {};
    case OptimizerKind::momentum: return {"velocity"};
    case OptimizerKind::adam: return {"m", "v"};
    case OptimizerKind::rmsprop: return {"sq"};
  }
  return {};
}

}  // namespace mnist_gpu
