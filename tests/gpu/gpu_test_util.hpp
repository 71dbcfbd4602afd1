// Shared helpers of the GPU tests: skip without a usable device, copies to and from the device on
// an explicit stream, NaN poisoning of outputs, seeded random inputs, and the comparison of a
// result with its CPU reference that names the worst element and refuses an all-zero reference.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "cuda_resources.hpp"
#include "device_copy.hpp"
#include "mnist_gpu/compare.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/rng.hpp"
#include "seeded_inputs.hpp"

namespace mnist_gpu::test {

using gpu::download;
using gpu::poison;
using gpu::upload;
using gpu::upload_to;

/// The device probe, asked once per process.
inline const DeviceProbe& device_probe() {
  static const DeviceProbe probe = probe_device();
  return probe;
}

/// Skips the current test (from a test body or SetUp) when there is no usable GPU, saying why.
#define MNIST_GPU_SKIP_WITHOUT_GPU()                                                              \
  do {                                                                                            \
    const ::mnist_gpu::DeviceProbe& mnist_gpu_probe_ = ::mnist_gpu::test::device_probe();        \
    if (!mnist_gpu_probe_.usable) GTEST_SKIP() << "no usable GPU: " << mnist_gpu_probe_.reason;   \
  } while (0)

/// A test with a stream and a cuBLAS handle bound to it (FP32, TF32 off), created only when a
/// usable GPU exists; otherwise the test is skipped before its body runs.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MNIST_GPU_SKIP_WITHOUT_GPU();
    CUDA_CHECK(cudaSetDevice(0));
    stream_.emplace();
    cublas_.emplace(stream_->get());
  }
  void TearDown() override {
    if (stream_) stream_->sync();  // a late asynchronous error fails this test, not the next one
  }
  cudaStream_t stream() const { return stream_->get(); }
  cublasHandle_t cublas() const { return cublas_->get(); }

 private:
  std::optional<gpu::Stream> stream_;
  std::optional<gpu::CublasHandle> cublas_;  // declared after the stream: destroyed before it
};

// ---- seeded random inputs: tests/seeded_inputs.hpp ----

/// One of `choices`, uniformly.
template <class T>
T pick(Rng& rng, const std::vector<T>& choices) {
  return choices[static_cast<std::size_t>(rng.below(choices.size()))];
}

// ---- comparison ----

/// got[0..n) against the reference want[0..n) under tol; fails naming the worst element (with
/// its row and column when `cols` > 0), both values, the error in tolerances and the tolerance.
/// With `nonzero_reference`, an all-zero reference fails too: two empty results must not "match".
template <class A, class B>
::testing::AssertionResult matches(const std::string& what, const A* got, const B* want, std::size_t n,
                                   const Tolerance& tol, std::size_t cols = 0, bool nonzero_reference = true) {
  const Comparison c = compare(got, want, n, tol);
  std::ostringstream where;
  where << std::setprecision(9) << what << " (" << n << " elements, tolerance " << tol.name << ": atol "
        << tol.atol << " rtol " << tol.rtol << ")";
  if (!c.ok) {
    std::ostringstream msg;
    msg << std::setprecision(9) << where.str() << ": worst element " << c.worst;
    if (cols > 0) msg << " (row " << c.worst / cols << ", col " << c.worst % cols << ")";
    msg << " got " << c.got << " want " << c.want << ", error " << c.ratio << "x the tolerance; reference norm "
        << c.want_norm;
    return ::testing::AssertionFailure() << msg.str();
  }
  if (nonzero_reference && !(c.want_norm > 0))
    return ::testing::AssertionFailure() << where.str() << ": the reference is all zeros, so the match means nothing";
  return ::testing::AssertionSuccess();
}

template <class A, class B>
::testing::AssertionResult matches(const std::string& what, const std::vector<A>& got, const std::vector<B>& want,
                                   const Tolerance& tol, std::size_t cols = 0, bool nonzero_reference = true) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << what << ": got " << got.size() << " elements, want " << want.size();
  return matches(what, got.data(), want.data(), got.size(), tol, cols, nonzero_reference);
}

/// Whether every element is finite; otherwise names the first that is not.
template <class T>
::testing::AssertionResult all_finite(const std::string& what, const std::vector<T>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(static_cast<double>(v[i])))
      return ::testing::AssertionFailure() << what << ": element " << i << " is " << v[i];
  return ::testing::AssertionSuccess();
}

}  // namespace mnist_gpu::test
