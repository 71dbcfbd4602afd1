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

namespace {

namespace fs = std::filesystem;

const fs::path& scratch() {
  static const fs::path p = fs::temp_directory_path() / ("mnist_gpu_fuzz_model_" + std::to_string(::getpid()) + ".bin");
  return p;
}

void load_one(const std::vector<std::uint8_t>& bytes) {
  std::FILE* f = std::fopen(scratch().c_str(), "wb");
  if (!f) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  if (std::fclose(f) != 0) std::abort();
  try {
    const mnist_gpu::SavedModel m = mnist_gpu::load_model(scratch());
    if (m.params.size() != mnist_gpu::ParamLayout(m.spec).size) std::abort();
    // An accepted file must be exactly what encode_model writes for it.
    if (mnist_gpu::encode_model(m.spec, m.params) != bytes) std::abort();
  } catch (const mnist_gpu::Error&) {
  }
}

struct RemoveScratch {
  ~RemoveScratch() {
    std::error_code ec;
    fs::remove(scratch(), ec);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static RemoveScratch cleanup;
  load_one(std::vector<std::uint8_t>(data, data + size));
  load_one(mnist_gpu_fuzz::with_valid_crc(data, size));
  return 0;
}
