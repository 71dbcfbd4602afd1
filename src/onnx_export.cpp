// encode_onnx: a saved model as an ONNX ModelProto (opset 17), built with ONNX's protobuf classes.
#include "mnist_gpu/onnx_export.hpp"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <string>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu {
namespace {

// IR version 8 (ONNX 1.10 to 1.12): the newest Debian's libonnx 1.12 writes and checks, and one that
// every ONNX Runtime since 1.10 loads.
constexpr std::int64_t kIrVersion = 8;

// One dimension of a value's shape: a fixed size, or the symbolic batch "N" when size < 0.
void set_type(onnx::ValueInfoProto* v, const std::string& name, int elem_type, std::initializer_list<std::int64_t> dims) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto* shape = tt->mutable_shape();
  for (std::int64_t d : dims) {
    auto* dim = shape->add_dim();
    if (d < 0)
      dim->set_dim_param("N");
    else
      dim->set_dim_value(d);
  }
}

// A float32 initializer of `dims` from `n` values (raw_data is little-endian by the ONNX spec).
void add_initializer(onnx::GraphProto* g, const std::string& name, std::initializer_list<std::int64_t> dims,
                     const float* values, std::size_t n) {
  onnx::TensorProto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (std::int64_t d : dims) t->add_dims(d);
  std::string raw(4 * n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &values[i], 4);
    for (int k = 0; k < 4; ++k) raw[4 * i + k] = static_cast<char>(bits >> (8 * k));
  }
  t->set_raw_data(std::move(raw));
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const char* op, const std::string& name,
                          std::initializer_list<std::string> inputs, const std::string& output) {
  onnx::NodeProto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& in : inputs) n->add_input(in);
  n->add_output(output);
  return n;
}

void set_int(onnx::NodeProto* n, const char* name, std::int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

// gelu(x) = x * (0.5 * (1 + erf(x / sqrt 2))) from opset-17 nodes (Gelu itself needs opset 20);
// reads the scalars gelu.inv_sqrt2, gelu.one and gelu.half. Writes the tensor `out`.
void add_gelu(onnx::GraphProto* g, const std::string& x, const std::string& out) {
  add_node(g, "Mul", out + ".scaled", {x, "gelu.inv_sqrt2"}, out + ".scaled");
  add_node(g, "Erf", out + ".erf", {out + ".scaled"}, out + ".erf");
  add_node(g, "Add", out + ".one_plus", {out + ".erf", "gelu.one"}, out + ".one_plus");
  add_node(g, "Mul", out + ".cdf", {out + ".one_plus", "gelu.half"}, out + ".cdf");
  add_node(g, "Mul", out, {x, out + ".cdf"}, out);
}

const char* onnx_activation(Activation a) {
  if (a == Activation::identity) throw Error("export: the hidden activation 'identity' has no ONNX node here");
  return activation_info(a).onnx_op;
}

}  // namespace

const char* to_string(OnnxInput input) { return input == OnnxInput::pixels ? "pixels" : "images"; }

std::vector<std::uint8_t> encode_onnx(const ModelSpec& spec, const std::vector<float>& params, OnnxInput input,
                                      const std::map<std::string, std::string>& metadata) {
  const ParamLayout layout(spec);
  if (params.size() != layout.size)
    throw Error("export: " + std::to_string(params.size()) + " parameters given, the model needs " +
                std::to_string(layout.size));
  if (input == OnnxInput::images && spec.inputs != 784)
    throw Error("export: the uint8 (N, 1, 28, 28) input needs a model of 784 inputs; this one takes " +
                std::to_string(spec.inputs));

  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name("mnist_gpu");
  model.set_producer_version(MNIST_GPU_VERSION);
  model.set_model_version(1);
  model.set_doc_string("A multilayer perceptron trained on MNIST by mnist_gpu: outputs logits and their softmax.");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  for (const auto& [k, v] : metadata) {
    auto* p = model.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }

  onnx::GraphProto* g = model.mutable_graph();
  g->set_name("mnist_gpu_mlp");
  std::string x;  // the name of the current (N, features) float tensor
  if (input == OnnxInput::pixels) {
    x = "pixels";
    set_type(g->add_input(), x, onnx::TensorProto::FLOAT, {-1, spec.inputs});
  } else {
    // uint8 -> float, times float32(1/255) exactly as mnist_gpu's u8_to_unit, then (N, 784).
    set_type(g->add_input(), "images", onnx::TensorProto::UINT8, {-1, 1, 28, 28});
    const float scale = 1.0f / 255.0f;
    add_initializer(g, "scale", {}, &scale, 1);
    set_int(add_node(g, "Cast", "to_float", {"images"}, "images_f"), "to", onnx::TensorProto::FLOAT);
    add_node(g, "Mul", "normalise", {"images_f", "scale"}, "images_unit");
    set_int(add_node(g, "Flatten", "flatten", {"images_unit"}, "pixels"), "axis", 1);
    x = "pixels";
  }
  const bool composed = !spec.hidden.empty() && onnx_activation(spec.activation) == nullptr;
  if (composed) {
    const float inv_sqrt2 = 0.70710678118654752440f, one = 1.0f, half = 0.5f;
    add_initializer(g, "gelu.inv_sqrt2", {}, &inv_sqrt2, 1);
    add_initializer(g, "gelu.one", {}, &one, 1);
    add_initializer(g, "gelu.half", {}, &half, 1);
  }
  for (std::size_t l = 0; l < layout.layers.size(); ++l) {
    const LayerView& v = layout.layers[l];
    const std::string id = std::to_string(l);
    const bool last = l + 1 == layout.layers.size();
    add_initializer(g, "dense" + id + ".weight", {v.out, v.in}, params.data() + v.w, static_cast<std::size_t>(v.out) * v.in);
    add_initializer(g, "dense" + id + ".bias", {v.out}, params.data() + v.b, static_cast<std::size_t>(v.out));
    const std::string y = last ? "logits" : "dense" + id;
    // Gemm: y = x * W^T + b with W (out, in), as mnist_gpu and PyTorch store it.
    set_int(add_node(g, "Gemm", "dense" + id, {x, "dense" + id + ".weight", "dense" + id + ".bias"}, y), "transB", 1);
    x = y;
    if (!last) {
      const std::string a = "act" + id;
      if (!composed) add_node(g, onnx_activation(spec.activation), a, {x}, a);
      else if (spec.activation == Activation::gelu) add_gelu(g, x, a);
      else throw Error(std::string("export: no ONNX form for the activation ") + to_string(spec.activation));
      x = a;
    }
  }
  set_int(add_node(g, "Softmax", "softmax", {"logits"}, "probs"), "axis", 1);
  set_type(g->add_output(), "probs", onnx::TensorProto::FLOAT, {-1, spec.outputs});
  set_type(g->add_output(), "logits", onnx::TensorProto::FLOAT, {-1, spec.outputs});

  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw Error("export: the ONNX model could not be serialized");
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

}  // namespace mnist_gpu
