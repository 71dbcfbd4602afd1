// DigitClassifier: a saved model's CPU forward pass and the softmax of its outputs.
#include "mnist_gpu/predict.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu {
namespace {

const ModelSpec& checked(const SavedModel& m) {
  if (m.spec.inputs != kDigitSide * kDigitSide || m.spec.outputs != 10)
    throw Error("the model takes " + std::to_string(m.spec.inputs) + " inputs and gives " +
                std::to_string(m.spec.outputs) + " outputs; classifying 28x28 digits needs 784 and 10");
  return m.spec;
}

}  // namespace

DigitClassifier::DigitClassifier(const SavedModel& model) : net_(checked(model), 1) {
  net_.params() = model.params;
}

Prediction DigitClassifier::classify(const DigitImage& digit) {
  std::array<float, kDigitSide * kDigitSide> x;
  cpu::u8_to_unit(digit.data(), x.data(), x.size());
  const float* y = net_.forward(x.data(), 1);  // (1, 10)
  // Softmax, shifted by the maximum for range.
  const float top = *std::max_element(y, y + 10);
  Prediction p;
  double sum = 0;
  for (int k = 0; k < 10; ++k) sum += std::exp(static_cast<double>(y[k] - top));
  for (int k = 0; k < 10; ++k) p.probs[k] = static_cast<float>(std::exp(static_cast<double>(y[k] - top)) / sum);
  p.digit = static_cast<int>(std::max_element(p.probs.begin(), p.probs.end()) - p.probs.begin());
  p.prob = p.probs[p.digit];
  return p;
}

}  // namespace mnist_gpu
