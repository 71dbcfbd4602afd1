// The commands that move models out of and into mnist_gpu: `export` (ONNX, safetensors) and
// `import` (a safetensors state dict of nn.Sequential(Linear, act, ..., Linear)).
#pragma once
#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace mnist_gpu {

/// The `export` flags as typed by the user, before validation.
struct ExportArgs {
  std::string model, onnx, safetensors, input = "pixels", data;
};

/// The `import` flags as typed by the user; an architecture flag left out comes from the file.
struct ImportArgs {
  std::string safetensors, out;
  std::optional<std::string> hidden, activation, loss;
};

void add_export_options(CLI::App& app, ExportArgs& args);
void add_import_options(CLI::App& app, ImportArgs& args);

/// `export`: measures the model's test accuracy on the CPU (for the metadata), then writes the
/// files asked for, each atomically; an unwritable output fails before any work. Returns the exit code.
int run_export(const ExportArgs& args);

/// `import`: reads and validates the safetensors file, writes the mnist_gpu model to --out.
int run_import(const ImportArgs& args);

}  // namespace mnist_gpu
