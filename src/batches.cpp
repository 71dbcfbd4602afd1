// gather_rows: one batch's rows, in the epoch's order, into a contiguous buffer.
#include "mnist_gpu/batches.hpp"

#include <cstring>

namespace mnist_gpu {

void gather_rows(const std::uint8_t* images, const std::uint8_t* labels, int pixels, const std::uint32_t* idx,
                 int rows, std::uint8_t* images_out, std::uint8_t* labels_out) {
  const std::size_t px = static_cast<std::size_t>(pixels);
  for (int r = 0; r < rows; ++r) {
    std::memcpy(images_out + r * px, images + idx[r] * px, px);
    labels_out[r] = labels[idx[r]];
  }
}

}  // namespace mnist_gpu
