// The Device (kernels/gpu_device.hpp): backends of one process share one Device per GPU and one
// copy of each dataset on it; a GPU index past the visible ones is refused by name. Skipped where
// no usable GPU exists.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "gpu_device.hpp"
#include "gpu_test_util.hpp"
#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/train.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
using namespace mnist_gpu::test;

namespace {

Dataset small_set(int n) {
  Dataset d;
  d.count = n;
  d.images.resize(static_cast<std::size_t>(n) * 784);
  for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = static_cast<std::uint8_t>(i * 7);
  d.labels.resize(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) d.labels[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i % 10);
  return d;
}

}  // namespace

TEST(GpuDevice, BackendsShareOneDevicePerGpuWhileOneLives) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  std::shared_ptr<gpu::Device> a = gpu::Device::shared(0);
  std::shared_ptr<gpu::Device> b = gpu::Device::shared(0);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a->id(), 0);
  EXPECT_FALSE(a->name().empty());
}

// One copy of a dataset on the GPU while any holder lives; the bytes it takes are counted once.
TEST(GpuDevice, OneCopyOfADatasetWhileHeld) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  std::shared_ptr<gpu::Device> dev = gpu::Device::shared(0);
  const Dataset d = small_set(300), other = small_set(301);
  const std::size_t before = gpu::device_bytes(0).live.load();
  auto first = dev->data(d, 784, "test");
  const std::size_t held = gpu::device_bytes(0).live.load() - before;
  EXPECT_EQ(held, d.images.size() + d.labels.size());
  auto second = dev->data(d, 784, "test");
  EXPECT_EQ(first.get(), second.get());
  EXPECT_EQ(gpu::device_bytes(0).live.load() - before, held) << "the second holder made no copy";
  auto third = dev->data(other, 784, "test");
  EXPECT_NE(third.get(), first.get());
  EXPECT_THROW(dev->data(d, 100, "test"), Error);
  third.reset();
  first.reset();
  second.reset();
  EXPECT_EQ(gpu::device_bytes(0).live.load(), before) << "released with its last holder";
}

// Two models training from the resident data path on one GPU share its copy of the training set.
TEST(GpuDevice, TwoResidentModelsShareTheTrainingSetCopy) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  const Dataset d = small_set(1000);
  std::vector<std::uint32_t> order(1000);
  std::iota(order.begin(), order.end(), 0u);
  ModelSpec spec;
  spec.hidden = {32};
  OptimizerConfig opt;
  CudaConfig cuda;
  cuda.data = DataPath::resident;
  auto a = make_cuda_backend(spec, opt, 100, 1, cuda);
  run_epoch(*a, d, order, opt.lr);
  auto b = make_cuda_backend(spec, opt, 100, 1, cuda);
  const std::size_t before = gpu::device_bytes(0).live.load();
  run_epoch(*b, d, order, opt.lr);
  // b's epoch allocates its order buffer and step table, never a second copy of the images.
  EXPECT_LT(gpu::device_bytes(0).live.load() - before, d.images.size());
  // The same seed, the same model: the two agree exactly.
  EXPECT_EQ(a->get_params(), b->get_params());
}

TEST(GpuDevice, AGpuPastTheVisibleOnesIsRefusedByIndex) {
  MNIST_GPU_SKIP_WITHOUT_GPU();
  CudaConfig cuda;
  cuda.device = 99;
  try {
    make_cuda_backend(ModelSpec{}, OptimizerConfig{}, 128, 1, cuda);
    FAIL() << "device 99 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device 99"), std::string::npos) << e.what();
  }
}
