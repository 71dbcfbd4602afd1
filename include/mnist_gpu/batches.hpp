// The batch plan of an epoch and the gather of a batch's rows, shared by the CPU backend and the
// GPU scheduler (which gathers into pinned staging memory), so both see the same batches.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mnist_gpu {

/// Batches of `batch` rows over an epoch order; the last one is partial when the size does not divide.
class BatchPlan {
 public:
  BatchPlan(const std::vector<std::uint32_t>& order, int batch) : order_(order), batch_(batch) {}
  long long count() const { return (static_cast<long long>(order_.size()) + batch_ - 1) / batch_; }
  int rows(long long k) const {
    const long long left = static_cast<long long>(order_.size()) - k * batch_;
    return static_cast<int>(left < batch_ ? left : batch_);
  }
  const std::uint32_t* indices(long long k) const { return order_.data() + offset(k); }
  /// Position of batch k's first index in the order.
  std::size_t offset(long long k) const { return static_cast<std::size_t>(k) * static_cast<std::size_t>(batch_); }

 private:
  const std::vector<std::uint32_t>& order_;
  int batch_;
};

/// Copies rows idx[0..rows) of images (n, pixels) and labels (n) into images_out (rows, pixels)
/// and labels_out (rows).
void gather_rows(const std::uint8_t* images, const std::uint8_t* labels, int pixels, const std::uint32_t* idx,
                 int rows, std::uint8_t* images_out, std::uint8_t* labels_out);

}  // namespace mnist_gpu
