// A saved model to and from PyTorch's nn.Sequential state dict in safetensors, and the metadata
// every exported file carries.
#include "mnist_gpu/model_export.hpp"

#include <cmath>
#include <cstdio>
#include <set>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu {
namespace {

const char* torch_activation(Activation a) {
  return a == Activation::identity ? "Identity" : activation_info(a).torch_module;
}

// "784-64-10" -> widths; throws Error naming the file when it is not such a list.
std::vector<int> parse_architecture(const std::string& text, const std::string& name) {
  std::vector<int> widths;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t dash = std::min(text.find('-', start), text.size());
    const std::string item = text.substr(start, dash - start);
    long v = 0;
    if (item.empty() || item.size() > 6 || item.find_first_not_of("0123456789") != std::string::npos ||
        (v = std::stol(item)) < 1 || v > static_cast<long>(kModelMaxWidth))
      throw Error(name + ": __metadata__ architecture '" + text + "' is not a list of widths such as 784-64-10");
    widths.push_back(static_cast<int>(v));
    start = dash + 1;
  }
  if (widths.size() < 2 || widths.size() > kModelMaxLayers + 1)
    throw Error(name + ": __metadata__ architecture '" + text + "' needs 2 to " + std::to_string(kModelMaxLayers + 1) +
                " widths");
  return widths;
}

// The architecture `import` uses: the flags, else the file's metadata.
ModelSpec resolve_spec(const std::map<std::string, std::string>& meta, const ImportSpec& want, const std::string& name) {
  ModelSpec spec;
  const auto arch = meta.find("architecture");
  if (arch != meta.end()) {
    const std::vector<int> widths = parse_architecture(arch->second, name);
    spec.inputs = widths.front();
    spec.outputs = widths.back();
    spec.hidden.assign(widths.begin() + 1, widths.end() - 1);
  } else if (!want.hidden) {
    throw UsageError("--hidden: " + name + " has no architecture in its __metadata__; give the hidden widths "
                     "(e.g. --hidden 128 for Sequential(Linear(784, 128), act, Linear(128, 10)))");
  }
  if (want.hidden) spec.hidden = *want.hidden;
  if (want.activation) {
    spec.activation = *want.activation;
  } else {
    const auto act = meta.find("activation");
    if (act == meta.end())
      throw UsageError("--activation: " + name + " has no activation in its __metadata__; give " +
                       activation_names_or());
    const ActivationInfo* known = find_activation(act->second);
    if (!known)
      throw Error(name + ": __metadata__ activation '" + act->second + "' is not " + activation_names_or());
    spec.activation = known->value;
  }
  spec.loss = Loss::xent;
  if (want.loss) {
    spec.loss = *want.loss;
  } else if (const auto loss = meta.find("loss"); loss != meta.end()) {
    if (loss->second == "xent") spec.loss = Loss::xent;
    else if (loss->second == "l2") spec.loss = Loss::l2;
    else throw Error(name + ": __metadata__ loss '" + loss->second + "' is not xent or l2");
  }
  return spec;
}

}  // namespace

std::string architecture_text(const ModelSpec& spec) {
  std::string s;
  for (int w : spec.widths()) s += (s.empty() ? "" : "-") + std::to_string(w);
  return s;
}

std::string state_dict_name(std::size_t layer, const char* part) { return std::to_string(2 * layer) + "." + part; }

std::map<std::string, std::string> export_metadata(const ModelSpec& spec, const ExportInfo& info) {
  std::string layers;
  const std::vector<int> w = spec.widths();
  for (std::size_t i = 0; i + 1 < w.size(); ++i) {
    if (i > 0) layers += std::string(", ") + torch_activation(spec.activation) + "(), ";
    layers += "Linear(" + std::to_string(w[i]) + ", " + std::to_string(w[i + 1]) + ")";
  }
  std::map<std::string, std::string> m{
      {"producer", "mnist_gpu"},
      {"version", MNIST_GPU_VERSION},
      {"architecture", architecture_text(spec)},
      {"activation", to_string(spec.activation)},
      {"loss", to_string(spec.loss)},
      {"torch_module", "nn.Sequential(" + layers + ")"},
      // The model file stores no training settings: the recipe is what the model itself fixes.
      {"recipe", "MLP " + architecture_text(spec) + ", " + to_string(spec.activation) + " hidden activation, trained with " +
                     (spec.loss == Loss::xent ? "softmax cross-entropy" : "squared error to one-hot targets") +
                     " by mnist_gpu; inputs are pixels / 255 in [0, 1]"}};
  if (info.test_acc) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6f", *info.test_acc);
    m["test_acc"] = buf;
    m["test_set"] = info.test_set;
  }
  return m;
}

SafeTensors model_to_safetensors(const ModelSpec& spec, const std::vector<float>& params, const ExportInfo& info) {
  const ParamLayout layout(spec);
  if (params.size() != layout.size)
    throw Error("export: " + std::to_string(params.size()) + " parameters given, the model needs " +
                std::to_string(layout.size));
  SafeTensors out;
  for (std::size_t l = 0; l < layout.layers.size(); ++l) {
    const LayerView& v = layout.layers[l];
    const auto* w = params.data() + v.w;
    const auto* b = params.data() + v.b;
    out.tensors.push_back({state_dict_name(l, "weight"), {v.out, v.in}, {w, w + static_cast<std::size_t>(v.out) * v.in}, "F32"});
    out.tensors.push_back({state_dict_name(l, "bias"), {v.out}, {b, b + v.out}, "F32"});
  }
  out.metadata = export_metadata(spec, info);
  out.metadata["format"] = "pt";  // as safetensors.torch.save_file marks PyTorch tensors
  return out;
}

SavedModel model_from_safetensors(const SafeTensors& file, const ImportSpec& want, const std::string& name) {
  SavedModel m;
  m.spec = resolve_spec(file.metadata, want, name);
  const ParamLayout layout(m.spec);
  if (layout.layers.size() > kModelMaxLayers)
    throw UsageError("--hidden: at most " + std::to_string(kModelMaxLayers - 1) + " hidden layers");
  // Every expected tensor, with where its values go in the arena.
  struct Want {
    std::string name, module;
    std::vector<std::int64_t> shape;
    std::size_t offset;
  };
  std::vector<Want> wants;
  std::string expected_names;
  for (std::size_t l = 0; l < layout.layers.size(); ++l) {
    const LayerView& v = layout.layers[l];
    const std::string module = "Linear(" + std::to_string(v.in) + ", " + std::to_string(v.out) + ")";
    wants.push_back({state_dict_name(l, "weight"), module, {v.out, v.in}, v.w});
    wants.push_back({state_dict_name(l, "bias"), module, {v.out}, v.b});
    expected_names += (l ? ", " : "") + state_dict_name(l, "weight") + ", " + state_dict_name(l, "bias");
  }
  const std::string arch = "a " + architecture_text(m.spec) + " MLP";
  std::set<std::string> wanted;
  for (const Want& w : wants) wanted.insert(w.name);
  for (const SafeTensor& t : file.tensors)
    if (wanted.count(t.name) == 0)
      throw Error(name + ": unexpected tensor '" + t.name + "': " + arch + " has only " + expected_names);
  // Every name and shape is checked before the arena is allocated: its size then is the file's.
  std::vector<const SafeTensor*> found;
  for (const Want& w : wants) {
    const SafeTensor* t = nullptr;
    for (const SafeTensor& c : file.tensors)
      if (c.name == w.name) t = &c;
    if (!t)
      throw Error(name + ": missing tensor '" + w.name + "': " + arch + " needs it, shape " + shape_text(w.shape) +
                  " for " + w.module);
    if (t->shape != w.shape)
      throw Error(name + ": tensor '" + w.name + "' has shape " + shape_text(t->shape) + ", expected " +
                  shape_text(w.shape) + " for " + w.module + " of " + arch);
    found.push_back(t);
  }
  m.params.assign(layout.size, 0.0f);
  for (std::size_t k = 0; k < wants.size(); ++k) {
    const Want& w = wants[k];
    const SafeTensor* t = found[k];
    for (std::size_t i = 0; i < t->values.size(); ++i)
      if (!std::isfinite(t->values[i]))
        throw Error(name + ": tensor '" + w.name + "' holds a non-finite value at element " + std::to_string(i) +
                    " (expected finite weights)");
    std::copy(t->values.begin(), t->values.end(), m.params.begin() + static_cast<std::ptrdiff_t>(w.offset));
  }
  return m;
}

}  // namespace mnist_gpu
