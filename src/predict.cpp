// DigitClassifier and predict_dataset: a model's CPU forward pass and the softmax of its outputs.
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

// The prediction of one row of 10 outputs: the first maximum, and the softmax (shifted by the
// maximum for range).
Prediction from_outputs(const float* y) {
  Prediction p;
  p.digit = static_cast<int>(std::max_element(y, y + 10) - y);
  const float top = y[p.digit];
  double sum = 0;
  for (int k = 0; k < 10; ++k) sum += std::exp(static_cast<double>(y[k] - top));
  for (int k = 0; k < 10; ++k) p.probs[k] = static_cast<float>(std::exp(static_cast<double>(y[k] - top)) / sum);
  p.prob = p.probs[p.digit];
  return p;
}

}  // namespace

DigitClassifier::DigitClassifier(const SavedModel& model) : net_(checked(model), 1) {
  net_.params() = model.params;
}

Prediction DigitClassifier::classify(const DigitImage& digit) {
  std::array<float, kDigitSide * kDigitSide> x;
  cpu::u8_to_unit(digit.data(), x.data(), x.size());
  return from_outputs(net_.forward(x.data(), 1));  // (1, 10)
}

std::vector<Prediction> predict_dataset(const ModelSpec& spec, const std::vector<float>& params, const Dataset& data,
                                        int batch) {
  if (spec.inputs != data.pixels() || spec.outputs != 10)
    throw Error("the model takes " + std::to_string(spec.inputs) + " inputs and gives " + std::to_string(spec.outputs) +
                " outputs; the data has " + std::to_string(data.pixels()) + " pixels per image and 10 classes");
  if (batch < 1) throw Error("predict_dataset: batch must be >= 1, got " + std::to_string(batch));
  const int rows_max = std::max(1, std::min(batch, data.count));
  CpuNet<float> net(spec, rows_max);
  if (params.size() != net.params().size())
    throw Error("the model has " + std::to_string(params.size()) + " parameters; its shape needs " +
                std::to_string(net.params().size()));
  net.params() = params;
  const std::size_t px = static_cast<std::size_t>(data.pixels());
  std::vector<float> x(static_cast<std::size_t>(rows_max) * px);  // (rows_max, inputs) in [0, 1]
  std::vector<Prediction> out;
  out.reserve(static_cast<std::size_t>(data.count));
  for (int first = 0; first < data.count; first += rows_max) {
    const int rows = std::min(rows_max, data.count - first);
    cpu::u8_to_unit(data.image(first), x.data(), rows * px);
    const float* y = net.forward(x.data(), rows);  // (rows, 10)
    for (int i = 0; i < rows; ++i) out.push_back(from_outputs(y + static_cast<std::size_t>(i) * 10));
  }
  return out;
}

}  // namespace mnist_gpu
