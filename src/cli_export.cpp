// The `export` and `import` commands: a saved model to ONNX and safetensors files for ONNX Runtime
// and PyTorch, and a PyTorch-trained MLP (safetensors) into a saved model. Logs to stderr.
#include "mnist_gpu/cli_export.hpp"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/model_export.hpp"
#include "mnist_gpu/model_io.hpp"
#include "mnist_gpu/onnx_export.hpp"
#include "mnist_gpu/predict.hpp"

namespace mnist_gpu {

void add_export_options(CLI::App& app, ExportArgs& a) {
  app.add_option("--model", a.model, "a model saved by `train --save` or `import`")->required();
  app.add_option("--onnx", a.onnx, "write an ONNX model (opset 17) to this file");
  app.add_option("--input", a.input,
                 "the ONNX model's input: pixels (float32 (N, 784) in [0, 1]) | images (uint8 (N, 1, 28, 28))")
      ->capture_default_str();
  app.add_option("--safetensors", a.safetensors,
                 "write the weights as PyTorch's nn.Sequential state dict (0.weight, 0.bias, 2.weight, ...)");
  app.add_option("--data", a.data,
                 "MNIST-format directory whose test set measures the accuracy written into the metadata "
                 "(default: $MNIST_GPU_DATA, else the bundled data/mnist)");
}

void add_import_options(CLI::App& app, ImportArgs& a) {
  app.add_option("--safetensors", a.safetensors, "an nn.Sequential(Linear, act, ..., Linear) state dict")->required();
  app.add_option("--out", a.out, "write the mnist_gpu model to this file (atomically)")->required();
  app.add_option("--hidden", a.hidden, "hidden widths, e.g. 128 (default: the file's __metadata__ architecture)");
  app.add_option("--activation", a.activation, activation_names(" | ") + " (default: the file's __metadata__)");
  app.add_option("--loss", a.loss, "xent | l2, recorded in the model (default: the file's __metadata__, else xent)");
}

int run_export(const ExportArgs& a) {
  refuse_flag_values({{"--model", &a.model}, {"--onnx", &a.onnx}, {"--input", &a.input},
                      {"--safetensors", &a.safetensors}, {"--data", &a.data}});
  if (a.onnx.empty() && a.safetensors.empty()) throw UsageError("export: give --onnx FILE, --safetensors FILE or both");
  OnnxInput input = OnnxInput::pixels;
  if (a.input == "images")
    input = OnnxInput::images;
  else if (a.input != "pixels")
    throw UsageError("--input: expected one of pixels | images, got '" + a.input + "'");
  // Unwritable outputs fail before the model is read or evaluated; none overwrites another or the model.
  check_distinct_paths({{"--model", a.model}, {"--onnx", a.onnx}, {"--safetensors", a.safetensors}});
  if (!a.onnx.empty()) check_file_writable(a.onnx, "write the ONNX model");
  if (!a.safetensors.empty()) check_file_writable(a.safetensors, "write the safetensors file");

  const SavedModel model = load_model(a.model);
  spdlog::info("model: {} ({}, {}, {} loss, {} parameters)", a.model, architecture_text(model.spec),
               to_string(model.spec.activation), to_string(model.spec.loss), model.params.size());
  // The model file stores no accuracy: measure it on the test set (the CPU forward pass, as `eval
  // --device cpu` counts), so that the metadata states a figure anyone can check.
  const std::filesystem::path dir = resolve_data_dir(a.data);
  const MnistFiles files = load_mnist_dir(dir, model.spec.inputs);
  log_data_notes(files);
  const std::vector<Prediction> preds = predict_dataset(model.spec, model.params, files.test, 1000);
  long long right = 0;
  for (std::size_t i = 0; i < preds.size(); ++i) right += preds[i].digit == files.test.labels[i];
  ExportInfo info;
  info.test_acc = static_cast<double>(right) / static_cast<double>(std::max(1, files.test.count));
  info.test_set = files.dataset_name + " test set, " + std::to_string(files.test.count) + " images";
  spdlog::info("test accuracy {:.2f}% on the {} in {}", 100 * *info.test_acc, info.test_set, dir.string());

  if (!a.onnx.empty()) {
    write_file_atomically(a.onnx, encode_onnx(model.spec, model.params, input, export_metadata(model.spec, info)));
    spdlog::info("ONNX model (opset {}, input {}) written to {}", kOnnxOpset, to_string(input), a.onnx);
  }
  if (!a.safetensors.empty()) {
    write_file_atomically(a.safetensors, encode_safetensors(model_to_safetensors(model.spec, model.params, info)));
    spdlog::info("safetensors state dict written to {}", a.safetensors);
  }
  return 0;
}

int run_import(const ImportArgs& a) {
  refuse_flag_values({{"--safetensors", &a.safetensors}, {"--out", &a.out}});
  // The architecture flags mean what they mean for train, refusals included.
  TrainArgs t;
  if (a.hidden) t.set("--hidden", *a.hidden);
  if (a.activation) t.set("--activation", *a.activation);
  if (a.loss) t.set("--loss", *a.loss);
  const TrainConfig parsed = to_train_config(t);
  ImportSpec want;
  if (a.hidden) want.hidden = parsed.model.hidden;
  if (a.activation) want.activation = parsed.model.activation;
  if (a.loss) want.loss = parsed.model.loss;
  check_distinct_paths({{"--safetensors", a.safetensors}, {"--out", a.out}});
  check_model_writable(a.out);

  const SafeTensors file = read_safetensors(a.safetensors);
  const SavedModel model = model_from_safetensors(file, want, a.safetensors);
  std::string dtypes;
  for (const auto& tensor : file.tensors)
    if (dtypes.find(tensor.dtype) == std::string::npos) dtypes += (dtypes.empty() ? "" : ", ") + tensor.dtype;
  save_model(a.out, model.spec, model.params);
  spdlog::info("imported {} ({} tensors, {}): {}, {}, {} loss, {} parameters; written to {}", a.safetensors,
               file.tensors.size(), dtypes, architecture_text(model.spec), to_string(model.spec.activation),
               to_string(model.spec.loss), model.params.size(), a.out);
  return 0;
}

}  // namespace mnist_gpu
