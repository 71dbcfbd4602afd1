// verify_gpu(): CpuNet<float> and GpuNet run the same step; every tensor is compared.
#include <memory>
#include <vector>

#include "cuda_resources.hpp"
#include "device_copy.hpp"
#include "gpu_device.hpp"
#include "gpu_net.hpp"
#include "step_table.hpp"
#include "gpu_ops.hpp"
#include "lt_gemm.hpp"
#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/batches.hpp"
#include "mnist_gpu/cpu_net.hpp"
#include "mnist_gpu/cpu_ops.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/train.hpp"
#include "mnist_gpu/verify.hpp"

namespace mnist_gpu {
namespace {

void add(VerifyReport& r, const std::string& name, const Tolerance& tol, const Comparison& c) {
  r.checks.push_back({name, tol, c});
}

void verify_one(VerifyReport& report, const ModelSpec& spec, const OptimizerConfig& opt, const Dataset& data,
                int batch, int rows, std::uint64_t seed, const std::string& tag, cublasLtHandle_t lt) {
  gpu::Stream stream;
  gpu::CublasHandle cublas(stream.get());
  cudaStream_t s = stream.get();
  // The cuBLASLt path gets a workspace of its own: this stream is not the Device's compute stream.
  gpu::DeviceBuffer<unsigned char> lt_workspace(lt ? gpu::kLtWorkspaceBytes : 0);
  const gpu::LtContext lt_ctx = lt ? gpu::LtContext{lt, lt_workspace.get(), lt_workspace.bytes()} : gpu::LtContext{};
  // The CPU twin at the same precision: CpuNet rounds the products' operands (precision.hpp).
  CpuNet<float> cnet(spec, batch, opt.dropout, seed);
  gpu::GpuNet gnet(spec, batch, s, cublas.get(), opt.dropout, seed, 0.0f, lt_ctx);  // verify: no input dropout
  const Tolerance& tol_step = step_tolerance(spec.precision);
  const ParamLayout& layout = cnet.layout();
  init_params(spec, layout, seed, cnet.params().data());
  gpu::upload_to(gnet.params(), cnet.params(), s);

  // Rows of epoch 1's order, as the trainer draws them, skipping the few whose decisions lie
  // too close to a threshold for the two summation orders to agree (see kDecisionMargin).
  const std::vector<std::uint32_t> order = epoch_order(seed, 1, data.count);
  const std::size_t px = static_cast<std::size_t>(data.pixels());
  std::vector<std::uint32_t> chosen;
  std::vector<float> row(px);
  for (std::size_t i = 0; i < order.size() && static_cast<int>(chosen.size()) < rows; ++i) {
    cpu::u8_to_unit(data.image(static_cast<int>(order[i])), row.data(), px);
    const MarginDropout drop{opt.dropout, seed, 1, static_cast<int>(chosen.size())};  // step 1, as below
    if (decision_margin(spec, cnet.params(), row.data(), 1, drop) >= decision_margin_for(spec.precision))
      chosen.push_back(order[i]);
  }
  if (static_cast<int>(chosen.size()) < rows) throw Error("verify: too few rows clear the decision margin");
  std::vector<std::uint8_t> images(static_cast<std::size_t>(rows) * px), labels(rows);
  gather_rows(data.images.data(), data.labels.data(), data.pixels(), chosen.data(), rows, images.data(), labels.data());
  std::vector<float> x(images.size());
  cpu::u8_to_unit(images.data(), x.data(), x.size());

  auto d_images = gpu::upload(images, s);
  auto d_labels = gpu::upload(labels, s);
  gpu::DeviceBuffer<float> d_x(x.size());
  gpu::u8_to_unit(d_images.get(), d_x.get(), x.size(), s);
  add(report, tag + ": input", kTolExact,
      compare(gpu::download(d_x.get(), x.size(), s).data(), x.data(), x.size(), kTolExact));

  gpu::DeviceBuffer<double> d_loss(1);
  gpu::DeviceBuffer<unsigned long long> d_correct(1);
  CUDA_CHECK(cudaMemsetAsync(d_loss.get(), 0, sizeof(double), s));
  CUDA_CHECK(cudaMemsetAsync(d_correct.get(), 0, sizeof(unsigned long long), s));
  // Steps 1 and 2 in a step table: the training pass reads row 0 (step 1: dropout's masks, when
  // on), the two updates below rows 0 and 1.
  gpu::StepTable steps(2);
  steps.load({gpu::step_row(1, 0, make_optim_step(opt, opt.lr, 1)), gpu::step_row(2, 0, make_optim_step(opt, opt.lr, 2))},
             0, s);
  gnet.forward(d_x.get(), rows, steps.ref());
  const std::size_t n_out = static_cast<std::size_t>(rows) * spec.outputs;
  const std::vector<float> g_out = gpu::download(gnet.output(), n_out, s);
  gnet.backward(d_x.get(), d_labels.get(), rows, d_loss.get(), d_correct.get());

  double c_loss = 0;
  unsigned long long c_correct = 0;
  cnet.forward(x.data(), rows, 1);
  add(report, tag + ": outputs", tol_step, compare(g_out.data(), cnet.output(), n_out, tol_step));
  cnet.backward(x.data(), labels.data(), rows, &c_loss, &c_correct);
  const double g_loss = gpu::download(d_loss.get(), 1, s)[0];
  add(report, tag + ": loss", tol_step, compare(&g_loss, &c_loss, 1, tol_step));

  const std::vector<float> g_grads = gpu::download(gnet.grads(), layout.size, s);
  for (std::size_t li = 0; li < layout.layers.size(); ++li) {
    const LayerView& l = layout.layers[li];
    const std::string n = std::to_string(li + 1);
    add(report, tag + ": grad W" + n, tol_step,
        compare(g_grads.data() + l.w, cnet.grads().data() + l.w, static_cast<std::size_t>(l.in) * l.out, tol_step));
    add(report, tag + ": grad b" + n, tol_step,
        compare(g_grads.data() + l.b, cnet.grads().data() + l.b, static_cast<std::size_t>(l.out), tol_step));
  }

  // One optimizer update from identical gradients (the CPU's), twice, so that state is exercised.
  auto d_grads = gpu::upload(cnet.grads(), s);
  std::vector<float> s1(layout.size, 0.0f), s2(layout.size, 0.0f);
  auto d_s1 = gpu::upload(s1, s);
  auto d_s2 = gpu::upload(s2, s);
  std::vector<float> w = cnet.params();
  for (long long t = 1; t <= 2; ++t) {
    const OptimStep st = make_optim_step(opt, opt.lr, t);
    cpu::optimizer_update(st, w.data(), cnet.grads().data(), s1.data(), s2.data(), layout.size, layout.n_weights);
    gpu::optimizer_update(st, steps.ref(), gnet.params(), d_grads.get(), d_s1.get(), d_s2.get(), layout.size,
                          layout.n_weights, s);
    steps.advance(s);
  }
  add(report, tag + ": params after 2 " + to_string(opt.kind) + " updates", kTolOptimizer,
      compare(gpu::download(gnet.params(), layout.size, s).data(), w.data(), layout.size, kTolOptimizer));
}

}  // namespace

VerifyReport verify_gpu(const ModelSpec& spec, const OptimizerConfig& opt, const Dataset& data, int batch,
                        std::uint64_t seed, int device, GemmPath gemm) {
  const std::shared_ptr<gpu::Device> dev = gpu::Device::shared(device);  // current for this thread
  VerifyReport report;
  report.device = dev->name();
  CudaConfig cuda;
  cuda.gemm = gemm;
  const bool lt = effective_gemm(cuda, spec.precision) == GemmPath::cublaslt;
  report.precision = to_string(spec.precision);
  report.gemm = lt ? "cublaslt" : "cublas";
  const cublasLtHandle_t lt_handle = lt ? dev->lt().handle : nullptr;
  std::vector<int> sizes{std::min(batch, data.count)};
  if (data.count % batch != 0 && data.count > batch) sizes.push_back(data.count % batch);
  for (Activation act : user_activations()) {
    for (Loss loss : {Loss::xent, Loss::l2}) {
      ModelSpec m = spec;
      m.activation = act;
      m.loss = loss;
      for (int rows : sizes)
        verify_one(report, m, opt, data, batch, rows, seed,
                   std::string(to_string(act)) + "/" + to_string(loss) + " " + to_string(spec.precision) + " batch " +
                       std::to_string(rows),
                   lt_handle);
    }
  }
  return report;
}

}  // namespace mnist_gpu
