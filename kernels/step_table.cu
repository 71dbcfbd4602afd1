// StepTable: an epoch's per-step scalars on the device and the cursor the step's kernels read.
#include <algorithm>
#include <cstring>
#include <utility>

#include "cuda_check.hpp"
#include "step_table.hpp"

namespace mnist_gpu::gpu {
namespace {

__global__ void set_cursor_kernel(long long* cursor, long long value) { *cursor = value; }
__global__ void advance_cursor_kernel(long long* cursor) { *cursor += 1; }

}  // namespace

StepTable::StepTable(std::size_t rows)
    : table_(std::max<std::size_t>(rows, 1)), staging_(std::max<std::size_t>(rows, 1)), cursor_(1) {}

bool StepTable::load(const std::vector<StepScalars>& rows, long long first, cudaStream_t s) {
  uploaded_.sync();  // the previous upload has left the staging copy (never recorded: no wait)
  bool moved = false;
  if (rows.size() > table_.size()) {
    // Both made before either is replaced: a failed allocation leaves the old pair (and the
    // graphs captured with it) as they were, never a table and a staging copy of different sizes.
    DeviceBuffer<StepScalars> table(rows.size());
    PinnedBuffer<StepScalars> staging(rows.size());
    table_ = std::move(table);
    staging_ = std::move(staging);
    moved = true;
  }
  if (!rows.empty()) {
    std::memcpy(staging_.get(), rows.data(), rows.size() * sizeof(StepScalars));
    CUDA_CHECK(cudaMemcpyAsync(table_.get(), staging_.get(), rows.size() * sizeof(StepScalars),
                               cudaMemcpyHostToDevice, s));
    uploaded_.record(s);
  }
  set_cursor_kernel<<<1, 1, 0, s>>>(cursor_.get(), first);
  CUDA_CHECK_LAUNCH();
  return moved;
}

void StepTable::advance(cudaStream_t s) const {
  advance_cursor_kernel<<<1, 1, 0, s>>>(cursor_.get());
  CUDA_CHECK_LAUNCH();
}

}  // namespace mnist_gpu::gpu
