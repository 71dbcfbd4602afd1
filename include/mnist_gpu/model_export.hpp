// A saved model as PyTorch sees it: the state dict of nn.Sequential(Linear, act, Linear, ..., Linear)
// in a safetensors file ("0.weight", "0.bias", "2.weight", ...; W (out, in) as in mnist_gpu), the
// architecture in its __metadata__, and the way back (a PyTorch-trained MLP becomes a model).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/model_io.hpp"
#include "mnist_gpu/safetensors.hpp"

namespace mnist_gpu {

/// What an exported file says about its model (ONNX metadata_props, safetensors __metadata__):
/// producer, version, architecture ("784-64-10"), activation, loss, recipe and, when known, the
/// test accuracy and the data set it was measured on.
struct ExportInfo {
  std::optional<double> test_acc;  ///< fraction in [0, 1]
  std::string test_set;            ///< e.g. "MNIST test set, 10000 images"
};
std::map<std::string, std::string> export_metadata(const ModelSpec& spec, const ExportInfo& info);

/// "784-64-10": the widths, inputs first.
std::string architecture_text(const ModelSpec& spec);

/// The state-dict name of dense layer `layer` (0-based) and `part` ("weight" or "bias"): the
/// Linear modules sit at the even indices of the Sequential, the activations between them.
std::string state_dict_name(std::size_t layer, const char* part);

/// The model as float32 tensors named as PyTorch's Sequential state dict, with the metadata.
SafeTensors model_to_safetensors(const ModelSpec& spec, const std::vector<float>& params, const ExportInfo& info);

/// What `import` is told about the architecture; a field left empty comes from the file's
/// __metadata__ (architecture, activation, loss) as export_metadata writes it.
struct ImportSpec {
  std::optional<std::vector<int>> hidden;
  std::optional<Activation> activation;
  std::optional<Loss> loss;  ///< neither given nor in the metadata: xent
};

/// The model held by `file` (read by read_safetensors; `name` is the file for messages) for the
/// architecture of `want` (inputs 784 and outputs 10 unless the metadata says otherwise). Refuses
/// missing and extra tensors, wrong shapes and non-finite values, naming the tensor and what was
/// expected; throws UsageError when the architecture is neither given nor in the metadata.
SavedModel model_from_safetensors(const SafeTensors& file, const ImportSpec& want, const std::string& name);

}  // namespace mnist_gpu
