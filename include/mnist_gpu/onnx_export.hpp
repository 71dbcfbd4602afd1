// A saved model as a standard ONNX model (opset 17), built with ONNX's own protobuf schema
// (Debian's libonnx-dev): the MLP as Gemm (transB=1, so W stays (out, in)) + activation nodes, the
// logits and their softmax as outputs, and the model's facts in metadata_props.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

/// The ONNX opset the exported graph imports (Gemm, Softmax over an axis, Cast, Flatten).
constexpr std::int64_t kOnnxOpset = 17;

/// What the exported graph takes as input.
enum class OnnxInput {
  pixels,  ///< "pixels": float32 (N, inputs) in [0, 1], as mnist_gpu trains on
  images,  ///< "images": uint8 (N, 1, 28, 28); Cast, times float32(1/255) (as mnist_gpu does), Flatten
};

const char* to_string(OnnxInput input);

/// The serialized ModelProto of the MLP `spec` with `params` (ParamLayout order): inputs as
/// `input` says, outputs "logits" (N, outputs) and "probs" = Softmax(logits, axis 1), and
/// `metadata` as metadata_props. Throws Error when params does not fit the spec, or when `images`
/// is asked of a model that does not take 784 inputs.
std::vector<std::uint8_t> encode_onnx(const ModelSpec& spec, const std::vector<float>& params, OnnxInput input,
                                      const std::map<std::string, std::string>& metadata);

}  // namespace mnist_gpu
