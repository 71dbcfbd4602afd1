// Models out of and into mnist_gpu: the PyTorch state-dict mapping (names, shapes, metadata) and
// each refusal of `import`'s mapping, and the ONNX graph (checked by ONNX's own C++ checker). The
// commands are tested in test_export_cli.cpp, the round trips through ONNX Runtime and PyTorch in
// tests/python/roundtrip.py.
#include <gtest/gtest.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/model_export.hpp"
#include "mnist_gpu/model_io.hpp"
#include "mnist_gpu/onnx_export.hpp"
#include "mnist_gpu/safetensors.hpp"

using namespace mnist_gpu;

namespace {

ModelSpec spec_of(std::vector<int> hidden, Activation a = Activation::relu) {
  ModelSpec s;
  s.hidden = std::move(hidden);
  s.activation = a;
  return s;
}

std::vector<float> params_of(const ModelSpec& spec, std::uint64_t seed) {
  const ParamLayout layout(spec);
  std::vector<float> p(layout.size);
  init_params(spec, layout, seed, p.data());
  for (std::size_t i = layout.n_weights; i < p.size(); ++i) p[i] = 0.01f * static_cast<float>(i % 13);  // biases
  return p;
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// The message of model_from_safetensors refusing `file`, or a failure.
std::string import_refusal(const SafeTensors& file, const ImportSpec& want = {}) {
  try {
    model_from_safetensors(file, want, "in.safetensors");
  } catch (const std::exception& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

SafeTensor* find(SafeTensors& f, const std::string& name) {
  for (SafeTensor& t : f.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace

TEST(ExportSafetensors, NamesAreTheSequentialStateDictAndTheRoundTripIsExact) {
  const ModelSpec spec = spec_of({32, 16}, Activation::tanh);
  const std::vector<float> params = params_of(spec, 3);
  ExportInfo info;
  info.test_acc = 0.9123;
  info.test_set = "MNIST test set, 10000 images";
  const SafeTensors st = model_to_safetensors(spec, params, info);
  std::vector<std::string> names;
  for (const auto& t : st.tensors) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}));
  EXPECT_EQ(st.tensors[0].shape, (std::vector<std::int64_t>{32, 784}));
  EXPECT_EQ(st.tensors[5].shape, (std::vector<std::int64_t>{10}));
  EXPECT_EQ(st.metadata.at("architecture"), "784-32-16-10");
  EXPECT_EQ(st.metadata.at("activation"), "tanh");
  EXPECT_EQ(st.metadata.at("test_acc"), "0.912300");
  EXPECT_EQ(st.metadata.at("torch_module"),
            "nn.Sequential(Linear(784, 32), Tanh(), Linear(32, 16), Tanh(), Linear(16, 10))");

  // Through the file format and back, with the architecture read from the metadata.
  const std::vector<std::uint8_t> bytes = encode_safetensors(st);
  const SavedModel back = model_from_safetensors(parse_safetensors(bytes.data(), bytes.size(), "x"), {}, "x");
  EXPECT_EQ(back.spec.hidden, spec.hidden);
  EXPECT_EQ(back.spec.activation, Activation::tanh);
  EXPECT_EQ(back.spec.loss, Loss::xent);
  ASSERT_EQ(back.params.size(), params.size());
  EXPECT_EQ(std::memcmp(back.params.data(), params.data(), 4 * params.size()), 0);
}

TEST(ImportSafetensors, FlagsGiveTheArchitectureWhenTheMetadataDoesNot) {
  const ModelSpec spec = spec_of({20});
  SafeTensors st = model_to_safetensors(spec, params_of(spec, 1), {});
  st.metadata = {{"format", "pt"}};  // as safetensors.torch.save_file writes it
  EXPECT_TRUE(contains(import_refusal(st), "--hidden: in.safetensors has no architecture in its __metadata__"));
  ImportSpec want;
  want.hidden = std::vector<int>{20};
  EXPECT_TRUE(contains(import_refusal(st, want), "--activation: in.safetensors has no activation in its __metadata__"));
  want.activation = Activation::sigmoid;
  want.loss = Loss::l2;
  const SavedModel m = model_from_safetensors(st, want, "x");
  EXPECT_EQ(m.spec.hidden, std::vector<int>{20});
  EXPECT_EQ(m.spec.activation, Activation::sigmoid);
  EXPECT_EQ(m.spec.loss, Loss::l2);
}

TEST(ImportSafetensors, RefusesMissingExtraMisshapenAndNonFiniteTensorsNamingThem) {
  const ModelSpec spec = spec_of({20});
  const SafeTensors good = model_to_safetensors(spec, params_of(spec, 1), {});

  SafeTensors missing = good;
  missing.tensors.erase(missing.tensors.begin() + 3);  // 2.bias
  EXPECT_TRUE(contains(import_refusal(missing),
                       "in.safetensors: missing tensor '2.bias': a 784-20-10 MLP needs it, shape (10,) for Linear(20, 10)"));

  SafeTensors extra = good;
  extra.tensors.push_back({"4.weight", {1}, {0.0f}, "F32"});
  EXPECT_TRUE(contains(import_refusal(extra),
                       "unexpected tensor '4.weight': a 784-20-10 MLP has only 0.weight, 0.bias, 2.weight, 2.bias"));

  SafeTensors transposed = good;
  find(transposed, "0.weight")->shape = {784, 20};
  EXPECT_TRUE(contains(import_refusal(transposed),
                       "tensor '0.weight' has shape (784, 20), expected (20, 784) for Linear(784, 20)"));

  // The flags disagree with the file: --hidden 30 for a 20-wide layer.
  ImportSpec wider;
  wider.hidden = std::vector<int>{30};
  EXPECT_TRUE(contains(import_refusal(good, wider), "tensor '0.weight' has shape (20, 784), expected (30, 784)"));

  SafeTensors nan = good;
  find(nan, "2.weight")->values[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(contains(import_refusal(nan), "tensor '2.weight' holds a non-finite value at element 7"));

  SafeTensors lying = good;
  lying.metadata["architecture"] = "784-x-10";
  EXPECT_TRUE(contains(import_refusal(lying), "__metadata__ architecture '784-x-10' is not a list of widths"));
  lying.metadata["architecture"] = "784-20-10";
  lying.metadata["activation"] = "swish";
  EXPECT_TRUE(contains(import_refusal(lying), "__metadata__ activation 'swish' is not relu, sigmoid, tanh or gelu"));
}

TEST(ExportSafetensors, GeluNamesItselfAndComesBack) {
  const ModelSpec spec = spec_of({8}, Activation::gelu);
  const std::vector<float> params = params_of(spec, 4);
  const SafeTensors st = model_to_safetensors(spec, params, ExportInfo{});
  EXPECT_EQ(st.metadata.at("activation"), "gelu");
  EXPECT_EQ(st.metadata.at("torch_module"), "nn.Sequential(Linear(784, 8), GELU(), Linear(8, 10))");
  const std::vector<std::uint8_t> bytes = encode_safetensors(st);
  const SavedModel back = model_from_safetensors(parse_safetensors(bytes.data(), bytes.size(), "x"), {}, "x");
  EXPECT_EQ(back.spec.activation, Activation::gelu);
  EXPECT_EQ(std::memcmp(back.params.data(), params.data(), 4 * params.size()), 0);
}

// Opset 17 has no Gelu node: each gelu is x * (0.5 * (1 + Erf(x * 1/sqrt 2))) over three scalars.
TEST(ExportOnnx, GeluIsComposedFromErfAndPassesTheOnnxChecker) {
  const ModelSpec spec = spec_of({16, 8}, Activation::gelu);
  const std::vector<std::uint8_t> bytes = encode_onnx(spec, params_of(spec, 6), OnnxInput::pixels, {});
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
  EXPECT_NO_THROW(onnx::checker::check_model(m));
  EXPECT_EQ(m.opset_import(0).version(), 17);
  std::vector<std::string> ops;
  for (const auto& n : m.graph().node()) ops.push_back(n.op_type());
  const std::vector<std::string> gelu = {"Mul", "Erf", "Add", "Mul", "Mul"};
  std::vector<std::string> want = {"Gemm"};
  want.insert(want.end(), gelu.begin(), gelu.end());
  want.push_back("Gemm");
  want.insert(want.end(), gelu.begin(), gelu.end());
  want.insert(want.end(), {"Gemm", "Softmax"});
  EXPECT_EQ(ops, want);
  std::map<std::string, float> scalars;
  for (const auto& t : m.graph().initializer())
    if (t.dims_size() == 0) {
      float v = 0;
      ASSERT_EQ(t.raw_data().size(), 4u) << t.name();
      std::memcpy(&v, t.raw_data().data(), 4);
      scalars[t.name()] = v;
    }
  EXPECT_EQ(scalars, (std::map<std::string, float>{{"gelu.half", 0.5f}, {"gelu.inv_sqrt2", 0.70710678118654752440f},
                                                   {"gelu.one", 1.0f}}));
}

TEST(ExportOnnx, GraphIsGemmsActivationsAndSoftmaxAndPassesTheOnnxChecker) {
  const ModelSpec spec = spec_of({32, 16}, Activation::sigmoid);
  const std::vector<float> params = params_of(spec, 5);
  ExportInfo info;
  info.test_acc = 0.5;
  for (OnnxInput input : {OnnxInput::pixels, OnnxInput::images}) {
    const std::vector<std::uint8_t> bytes = encode_onnx(spec, params, input, export_metadata(spec, info));
    onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
    EXPECT_NO_THROW(onnx::checker::check_model(m)) << to_string(input);
    ASSERT_EQ(m.opset_import_size(), 1);
    EXPECT_EQ(m.opset_import(0).version(), 17);
    EXPECT_EQ(m.producer_name(), "mnist_gpu");
    std::vector<std::string> ops;
    for (const auto& n : m.graph().node()) ops.push_back(n.op_type());
    std::vector<std::string> want = {"Gemm", "Sigmoid", "Gemm", "Sigmoid", "Gemm", "Softmax"};
    if (input == OnnxInput::images) want.insert(want.begin(), {"Cast", "Mul", "Flatten"});
    EXPECT_EQ(ops, want);
    ASSERT_EQ(m.graph().input_size(), 1);
    const auto& in = m.graph().input(0);
    EXPECT_EQ(in.name(), input == OnnxInput::pixels ? "pixels" : "images");
    EXPECT_EQ(in.type().tensor_type().elem_type(),
              input == OnnxInput::pixels ? onnx::TensorProto::FLOAT : onnx::TensorProto::UINT8);
    EXPECT_EQ(in.type().tensor_type().shape().dim_size(), input == OnnxInput::pixels ? 2 : 4);
    ASSERT_EQ(m.graph().output_size(), 2);
    EXPECT_EQ(m.graph().output(0).name(), "probs");
    EXPECT_EQ(m.graph().output(1).name(), "logits");
    std::map<std::string, std::string> meta;
    for (const auto& p : m.metadata_props()) meta[p.key()] = p.value();
    EXPECT_EQ(meta["producer"], "mnist_gpu");
    EXPECT_EQ(meta["architecture"], "784-32-16-10");
    EXPECT_EQ(meta["test_acc"], "0.500000");
    EXPECT_FALSE(meta["recipe"].empty());
    // The first layer's weights, bit for bit, as (out, in).
    const onnx::TensorProto* w0 = nullptr;
    for (const auto& t : m.graph().initializer())
      if (t.name() == "dense0.weight") w0 = &t;
    ASSERT_NE(w0, nullptr);
    ASSERT_EQ(w0->dims_size(), 2);
    EXPECT_EQ(w0->dims(0), 32);
    EXPECT_EQ(w0->dims(1), 784);
    ASSERT_EQ(w0->raw_data().size(), 4u * 32 * 784);
    EXPECT_EQ(std::memcmp(w0->raw_data().data(), params.data() + ParamLayout(spec).layers[0].w, 4u * 32 * 784), 0);
  }
  ModelSpec odd = spec_of({8});
  odd.inputs = 100;
  EXPECT_THROW(encode_onnx(odd, params_of(odd, 1), OnnxInput::images, {}), Error);
}
