// libFuzzer harness for the digit-image loader (read_image, which takes a path: each input goes
// through one temporary file per process) and, on what it accepts, the MNIST-style preprocessing
// (prepare_digit). An mnist_gpu::Error is an expected refusal; anything else is a crash.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/image_io.hpp"
#include "mnist_gpu/image_prep.hpp"
#include "scratch_file.hpp"

namespace {

namespace fs = std::filesystem;

const mnist_gpu_fuzz::ScratchFile scratch("mnist_gpu_fuzz_image");

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path& path = scratch.write(data, size);
  try {
    const mnist_gpu::GreyImage img = mnist_gpu::read_image(path);
    const std::size_t n = static_cast<std::size_t>(img.width) * static_cast<std::size_t>(img.height);
    if (img.width < 1 || img.height < 1 || img.grey.size() != n || (!img.alpha.empty() && img.alpha.size() != n))
      std::abort();
    (void)mnist_gpu::prepare_digit(img);
  } catch (const mnist_gpu::Error&) {
  }
  return 0;
}
