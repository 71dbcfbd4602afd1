// `mnist_gpu bench`: the throughput table across batch sizes on the CPU and the GPU.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "mnist_gpu/bench.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu {
namespace {

// "32,64,128" -> {32, 64, 128}; each a whole number in 1..65536.
std::vector<int> parse_batches(const std::string& text) {
  const std::string expected = "a comma-separated list of batch sizes in 1..65536 such as 64,256,1024";
  std::vector<int> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    const long v = item.empty() || item.find_first_not_of("0123456789") != std::string::npos
                       ? -1
                       : std::strtol(item.c_str(), &end, 10);
    if (v < 1 || v > 65536) throw UsageError("--batches: expected " + expected + ", got '" + text + "'");
    out.push_back(static_cast<int>(v));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

}  // namespace

void add_bench_options(CLI::App& app, BenchArgs& a) {
  add_model_options(app, a.model);
  app.add_option("--device", a.device, "auto (the CPU, and the GPU when usable) | cpu | cuda")->capture_default_str();
  app.add_option("--batches", a.batches, "batch sizes to measure")->capture_default_str();
  app.add_option("--samples", a.samples, "timed training samples per batch size (at least 10 steps)")
      ->capture_default_str();
  app.add_option("--data-path", a.data_path,
                 "GPU rows: streamed (from pinned host memory) | resident (on the device) | both")
      ->capture_default_str();
  app.add_option("--cuda-graph", a.cuda_graph, "GPU rows: on (steps replayed from a CUDA graph) | off | both")
      ->capture_default_str();
  app.add_option("--json", a.json, "also write the results as JSON to this file (atomically)");
}

int run_bench_command(const BenchArgs& a) {
  if (a.model.given.count("--batch"))  // the model flags' --batch: bench has its own list
    throw UsageError("--batch: bench measures every size in --batches; --batch does nothing here");
  const TrainConfig base = to_train_config(a.model);
  BenchConfig cfg;
  cfg.model = base.model;
  cfg.optimizer = base.optimizer;
  cfg.seed = base.seed;
  cfg.batches = parse_batches(a.batches);
  char* end = nullptr;
  const long long samples = std::strtoll(a.samples.c_str(), &end, 10);
  if (a.samples.empty() || *end != '\0' || samples < 1 || samples > (1LL << 32))
    throw UsageError("--samples: expected a whole number of samples in 1..4294967296, got '" + a.samples + "'");
  cfg.samples_per_point = samples;
  std::vector<DataPath> paths;
  if (a.data_path == "streamed" || a.data_path == "both") paths.push_back(DataPath::streamed);
  if (a.data_path == "resident" || a.data_path == "both") paths.push_back(DataPath::resident);
  if (paths.empty())
    throw UsageError("--data-path: expected one of streamed | resident | both, got '" + a.data_path + "'");
  std::vector<bool> graphs;
  if (a.cuda_graph == "on" || a.cuda_graph == "both") graphs.push_back(true);
  if (a.cuda_graph == "off" || a.cuda_graph == "both") graphs.push_back(false);
  if (graphs.empty()) throw UsageError("--cuda-graph: expected one of on | off | both, got '" + a.cuda_graph + "'");
  cfg.cuda_variants.clear();
  for (DataPath p : paths)
    for (bool g : graphs) {
      CudaConfig c{p, g};
      c.gemm = base.cuda.gemm;
      cfg.cuda_variants.push_back(c);
    }
  const DeviceProbe probe = probe_device();
  if (a.device == "cpu") {
    cfg.devices = {DeviceChoice::cpu};
  } else if (a.device == "cuda") {
    if (!probe.usable) throw Error("--device cuda: no usable GPU: " + probe.reason);
    cfg.devices = {DeviceChoice::cuda};
  } else if (a.device == "auto") {
    cfg.devices = {DeviceChoice::cpu};
    if (probe.usable) cfg.devices.push_back(DeviceChoice::cuda);
    else spdlog::info("notice: no usable GPU ({}); measuring the CPU only", probe.reason);
  } else {
    throw UsageError("--device: expected one of auto | cpu | cuda, got '" + a.device + "'");
  }

  if (!a.json.empty()) check_file_writable(a.json, "write the --json results");
  const MnistFiles files = load_mnist_dir(resolve_data_dir(base.data_dir), cfg.model.inputs);
  log_data_notes(files);
  std::string widths;
  for (int w : cfg.model.hidden) widths += std::to_string(w) + "-";
  spdlog::info("bench: 784-{}10 {}, {} optimizer; {} timed samples per point", widths,
               to_string(cfg.model.activation), to_string(cfg.optimizer.kind), cfg.samples_per_point);
  const BenchResult r = run_bench(cfg, files.train, files.test, [](const BenchRow& row) {
    spdlog::info("{} batch {}: {:.0f} training samples/s", row.device, row.batch, row.train_samples_per_s);
  });

  std::fputs(bench_table(r).c_str(), stdout);
  nlohmann::json rows = nlohmann::json::array();
  for (const BenchRow& row : r.rows)
    rows.push_back({{"device", row.device},
                    {"data", row.data},
                    {"graph", row.graph},
                    {"kernels_per_step", row.kernels_per_step},
                    {"precision", row.precision},
                    {"gemm", row.gemm},
                    {"batch", row.batch},
                    {"steps", row.steps},
                    {"samples_per_s", row.train_samples_per_s},
                    {"epoch_s", row.epoch_s},
                    {"infer_samples_per_s", row.infer_samples_per_s},
                    {"train_gflops", row.train_gflops},
                    {"share_of_ceiling", row.share_of_ceiling}});
  if (!a.json.empty()) {
    const std::string text = nlohmann::json{{"hidden", cfg.model.hidden},
                                            {"activation", to_string(cfg.model.activation)},
                                            {"optimizer", to_string(cfg.optimizer.kind)},
                                            {"train_flops_per_sample", r.train_flops_per_sample},
                                            {"infer_flops_per_sample", r.infer_flops_per_sample},
                                            {"cpu_sgemm_gflops", r.cpu_sgemm_gflops},
                                            {"gpu_sgemm_gflops", r.gpu_sgemm_gflops},
                                            {"gpu_ceiling_gflops", r.gpu_ceiling_gflops},
                                            {"gpu_ceiling_precision", r.gpu_ceiling_precision},
                                            {"rows", rows}}
                                 .dump(1) +
                             "\n";
    write_file_atomically(a.json, std::vector<std::uint8_t>(text.begin(), text.end()));
  }
  return 0;
}

}  // namespace mnist_gpu
