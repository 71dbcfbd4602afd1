// libFuzzer harness for the IDX parser (raw and gzip): every input is parsed as an images file
// (3 dims, 28 x 28) and as a labels file (1 dim). An mnist_gpu::Error is an expected refusal;
// anything else (a sanitizer report, another exception, an inconsistent result) is a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/idx.hpp"

namespace {

void parse_one(const std::uint8_t* data, std::size_t size, const mnist_gpu::IdxExpect& expect) {
  try {
    const mnist_gpu::IdxArray a = mnist_gpu::parse_idx(data, size, "fuzz.idx", expect);
    // An accepted array must be what was asked for and hold exactly what its dims declare.
    std::size_t n = 1;
    for (std::uint32_t d : a.dims) n *= d;
    if (a.dims.size() != static_cast<std::size_t>(expect.ndims) || a.data.size() != n || a.md5_data.size() != 32)
      std::abort();
  } catch (const mnist_gpu::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const mnist_gpu::IdxExpect images{3, {28, 28}};
  static const mnist_gpu::IdxExpect labels{1, {}};
  parse_one(data, size, images);
  parse_one(data, size, labels);
  return 0;
}
