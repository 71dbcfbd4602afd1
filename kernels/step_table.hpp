// The owner of an epoch's step table and its cursor (step_scalars.hpp).
// Host-only header: compiles with g++ and nvcc.
#pragma once
#include <cstddef>
#include <vector>

#include "cuda_resources.hpp"
#include "step_scalars.hpp"

namespace mnist_gpu::gpu {

class StepTable {
 public:
  /// Room for `rows` rows (grown by load when an epoch has more).
  explicit StepTable(std::size_t rows = 1);
  /// The rows of an epoch into the table and the cursor at row `first`, enqueued on `s`. The caller
  /// guarantees that no kernel still queued reads the table (the backend loads once per epoch,
  /// after the previous epoch's closing sync); the staging copy waits for its previous upload
  /// itself. Returns true when the table moved (it grew): graphs captured with its old address
  /// must be captured again.
  bool load(const std::vector<StepScalars>& rows, long long first, cudaStream_t s);
  /// The row after the current one for the next step's kernels (the step's last launch).
  void advance(cudaStream_t s) const;
  StepRef ref() const { return StepRef{table_.get(), cursor_.get()}; }

 private:
  DeviceBuffer<StepScalars> table_;
  PinnedBuffer<StepScalars> staging_;
  DeviceBuffer<long long> cursor_;
  Event uploaded_;  // the last upload from staging_ has finished reading it
};

}  // namespace mnist_gpu::gpu
