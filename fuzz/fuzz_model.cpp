// libFuzzer harness for the saved-model reader (load_model, which takes a path): each input is
// written to a per-process temporary file and loaded, as it is and with its trailing CRC-32 fixed
// up so that mutations reach the header checks behind the checksum. An mnist_gpu::Error is an
// expected refusal; anything else is a crash.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "crc_fixup.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/model_io.hpp"
#include "scratch_file.hpp"

namespace {

namespace fs = std::filesystem;

const mnist_gpu_fuzz::ScratchFile scratch("mnist_gpu_fuzz_model");

void load_one(const std::vector<std::uint8_t>& bytes) {
  const std::filesystem::path& path = scratch.write(bytes.data(), bytes.size());
  try {
    const mnist_gpu::SavedModel m = mnist_gpu::load_model(path);
    if (m.params.size() != mnist_gpu::ParamLayout(m.spec).size) std::abort();
    // An accepted file must be exactly what encode_model writes for it.
    if (mnist_gpu::encode_model(m.spec, m.params) != bytes) std::abort();
  } catch (const mnist_gpu::Error&) {
  }
}


}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  load_one(std::vector<std::uint8_t>(data, data + size));
  load_one(mnist_gpu_fuzz::with_valid_crc(data, size));
  return 0;
}
