// Classifying prepared 28x28 digits with a saved model on the CPU (one image is tiny work).
#pragma once
#include <array>

#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/image_prep.hpp"
#include "mnist_gpu/model_io.hpp"

namespace mnist_gpu {

struct Prediction {
  int digit = 0;                ///< the most probable class
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

}  // namespace mnist_gpu
