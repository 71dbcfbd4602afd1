// Names of the configuration enums and the per-optimizer defaults.
#include "mnist_gpu/config.hpp"

#include "mnist_gpu/activation.hpp"

namespace mnist_gpu {

const char* to_string(Activation a) {
  if (a == Activation::identity) return "identity";
  for (const ActivationInfo& e : kActivationTable)
    if (e.value == a) return e.name;
  return "?";
}

const char* to_string(Loss l) { return l == Loss::xent ? "xent" : "l2"; }

const char* to_string(OptimizerKind o) {
  switch (o) {
    case OptimizerKind::sgd: return "sgd";
    case OptimizerKind::momentum: return "momentum";
    case OptimizerKind::adam: return "adam";
    case OptimizerKind::rmsprop: return "rmsprop";
  }
  return "?";
}

const char* to_string(DeviceChoice d) {
  switch (d) {
    case DeviceChoice::automatic: return "auto";
    case DeviceChoice::cpu: return "cpu";
    case DeviceChoice::cuda: return "cuda";
  }
  return "?";
}

const char* to_string(Schedule s) {
  switch (s) {
    case Schedule::constant: return "constant";
    case Schedule::cosine: return "cosine";
    case Schedule::step: return "step";
    case Schedule::exp: return "exp";
  }
  return "?";
}

const char* to_string(DataPath d) {
  switch (d) {
    case DataPath::streamed: return "streamed";
    case DataPath::resident: return "resident";
  }
  return "?";
}

const char* to_string(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::tf32: return "tf32";
    case Precision::bf16: return "bf16";
  }
  return "?";
}

const char* to_string(AugmentKind a) {
  switch (a) {
    case AugmentKind::none: return "none";
    case AugmentKind::affine: return "affine";
    case AugmentKind::elastic: return "elastic";
    case AugmentKind::ciresan: return "ciresan";
  }
  return "?";
}

const char* to_string(GemmPath g) {
  switch (g) {
    case GemmPath::cublas: return "cublas";
    case GemmPath::cublaslt: return "cublaslt";
  }
  return "?";
}

AugmentConfig augment_preset(AugmentKind kind) {
  AugmentConfig a;
  a.kind = kind;
  const bool affine = kind == AugmentKind::affine || kind == AugmentKind::ciresan;
  if (affine) a.rotate = a.scale = a.shear = 15.0f;
  if (kind == AugmentKind::elastic) {  // Simard et al. 2003
    a.sigma = 4.0f;
    a.alpha = 34.0f;
  }
  if (kind == AugmentKind::ciresan) {  // Ciresan et al. 2010: sigma 5-6, alpha 36-38
    a.sigma = 6.0f;
    a.alpha = 36.0f;
  }
  return a;
}

std::vector<int> ModelSpec::widths() const {
  std::vector<int> w;
  w.push_back(inputs);
  w.insert(w.end(), hidden.begin(), hidden.end());
  w.push_back(outputs);
  return w;
}

float default_lr(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::sgd: return 0.1f;
    case OptimizerKind::momentum: return 0.05f;
    case OptimizerKind::adam: return 0.002f;
    case OptimizerKind::rmsprop: return 0.001f;  // Keras's default
  }
  return 0.05f;
}

}  // namespace mnist_gpu
