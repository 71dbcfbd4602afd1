// libFuzzer harness for the safetensors reader (parse_safetensors, from memory) and for `import`'s
// mapping of what it accepts onto an MLP (model_from_safetensors, the architecture from the
// file's __metadata__). An mnist_gpu::Error or UsageError is an expected refusal; anything else,
// or an accepted result that breaks an invariant, is a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/model_export.hpp"
#include "mnist_gpu/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mnist_gpu::SafeTensors file;
  try {
    file = mnist_gpu::parse_safetensors(data, size, "fuzz.safetensors");
  } catch (const mnist_gpu::Error&) {
    return 0;
  }
  // Accepted: every tensor holds exactly its shape's elements, and no more bytes than the file.
  std::uint64_t total = 0;
  for (const auto& t : file.tensors) {
    std::uint64_t count = 1;
    for (std::int64_t d : t.shape) count *= static_cast<std::uint64_t>(d);
    if (count != t.values.size()) std::abort();
    total += count * (t.dtype == "F32" ? 4 : 2);
  }
  if (total > size) std::abort();
  try {
    const mnist_gpu::SavedModel m = mnist_gpu::model_from_safetensors(file, {}, "fuzz.safetensors");
    if (m.params.size() != mnist_gpu::ParamLayout(m.spec).size) std::abort();
  } catch (const mnist_gpu::Error&) {
  } catch (const mnist_gpu::UsageError&) {
  }
  return 0;
}
