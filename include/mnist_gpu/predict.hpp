// Classifying prepared 28x28 digits with a saved model on the CPU (one image is tiny work), and
// per-sample predictions over a whole dataset (the report's gallery of mistakes).
#pragma once
#include <array>
#include <vector>

#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/image_prep.hpp"
#include "mnist_gpu/model_io.hpp"

namespace mnist_gpu {

struct Prediction {
  int digit = 0;                ///< the most probable class (the first maximum of the outputs)
  float prob = 0;               ///< its probability
  std::array<float, 10> probs{};  ///< softmax of the model's 10 outputs (for an l2 model too)
};

/// A saved model's forward pass on single 28x28 digits (CpuNet<float>, batch 1).
class DigitClassifier {
 public:
  /// Throws Error when the model does not take 784 inputs and give 10 outputs.
  explicit DigitClassifier(const SavedModel& model);
  /// Pixels / 255, as in training; the softmax of the outputs.
  Prediction classify(const DigitImage& digit);

 private:
  CpuNet<float> net_;
};

/// The model (`spec`, `params`) on every row of `data` (CpuNet<float> in batches of `batch`, as the
/// CPU backend evaluates): one Prediction per row, in order. `digit` is the first maximum of the
/// outputs, as in EvalResult's confusion matrix, so on the CPU the rows whose digit differs from
/// their label are exactly the confusion's off-diagonal. Throws Error when the model does not
/// take data.pixels() inputs and give 10 outputs, or params has the wrong size.
std::vector<Prediction> predict_dataset(const ModelSpec& spec, const std::vector<float>& params, const Dataset& data,
                                        int batch);

}  // namespace mnist_gpu
