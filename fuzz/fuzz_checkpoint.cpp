// libFuzzer harness for the checkpoint reader (parse_checkpoint): each input is parsed as it is and
// with its trailing CRC-32 fixed up, so that mutations get past the checksum to the JSON header
// and the array counts. An mnist_gpu::Error is an expected refusal; anything else is a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "crc_fixup.hpp"
#include "mnist_gpu/checkpoint.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"

namespace {

void parse_one(const std::vector<std::uint8_t>& bytes) {
  try {
    const mnist_gpu::Checkpoint ck = mnist_gpu::parse_checkpoint(bytes, "fuzz.ckpt");
    // An accepted checkpoint's arena must fit its model.
    if (ck.state.params.size() != mnist_gpu::ParamLayout(ck.config.model).size) std::abort();
  } catch (const mnist_gpu::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  parse_one(std::vector<std::uint8_t>(data, data + size));
  parse_one(mnist_gpu_fuzz::with_valid_crc(data, size));
  return 0;
}
