// The hidden activations, each listed once: its name (command line, checkpoints, metrics, safetensors
// metadata), saved-model code, ONNX and PyTorch names, initialisation and what its backward reads.
// Everything that names or enumerates activations reads this table; the maths lives in the two
// twins (src/cpu_ops.cpp, kernels/elementwise.cu).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

/// How init_params draws a layer's weights (biases start at 0).
enum class InitScheme {
  he_normal,       ///< N(0, 2 / in): keeps the second moment through relu-like units
  xavier_uniform,  ///< U(-a, a), a = sqrt(6 / (in + out)): for units symmetric about 0
};

struct ActivationInfo {
  Activation value;
  const char* name;          ///< "relu": the command line, checkpoints, metrics, safetensors metadata
  std::uint32_t model_code;  ///< the saved-model header field (model_io.hpp); never reuse a code
  const char* onnx_op;       ///< the ONNX node; nullptr: onnx_export.cpp composes it from other nodes
  const char* torch_module;  ///< the torch.nn module (the safetensors metadata's torch_module)
  InitScheme init;
  /// act_backward reads the pre-activation z (kept per hidden layer by CpuNet and GpuNet) rather
  /// than the activation's output y, from which this activation's derivative cannot be recovered.
  bool backward_reads_z;
};

/// The user-facing activations in the order help texts list them. `identity` (the output layer)
/// is not one of them.
inline constexpr ActivationInfo kActivationTable[] = {
    {Activation::relu, "relu", 0, "Relu", "ReLU", InitScheme::he_normal, false},
    {Activation::sigmoid, "sigmoid", 1, "Sigmoid", "Sigmoid", InitScheme::xavier_uniform, false},
    {Activation::tanh, "tanh", 2, "Tanh", "Tanh", InitScheme::xavier_uniform, false},
    // ONNX has Gelu from opset 20 only; the exporter's opset 17 composes it from Erf.
    {Activation::gelu, "gelu", 3, nullptr, "GELU", InitScheme::he_normal, true},
};

/// The table's entry for `a`; throws Error for identity, which has none.
const ActivationInfo& activation_info(Activation a);
/// The entry named `name`, or nullptr.
const ActivationInfo* find_activation(const std::string& name);
/// The entry named `name`; throws Error("unknown activation 'name'") otherwise.
Activation activation_from_name(const std::string& name);
/// The entry with saved-model code `code`, or nullptr.
const ActivationInfo* find_activation_code(std::uint32_t code);
/// Every user-facing activation, in table order.
std::vector<Activation> user_activations();
/// The names joined by `sep`: activation_names(" | ") is "relu | sigmoid | tanh".
std::string activation_names(const char* sep);
/// The names as prose: "relu, sigmoid or tanh".
std::string activation_names_or();
/// Whether backward needs the hidden pre-activations kept (identity: no).
bool keeps_preactivation(Activation a);

}  // namespace mnist_gpu
