// Per-step scalars in device memory. Every value that changes from one training step to the next
// (the step number, the rate, Adam's bias corrections, the batch's offset in the epoch order, the
// epoch for the deformations) is
// in a table with one row per batch of the epoch, uploaded once per epoch, and a device cursor
// names the row of the step in flight. The step's kernels read their row through a StepRef; its
// last kernel advances the cursor. So a captured step graph is never edited: each replay reads
// the next row. (An improvement on one block copied from pinned memory before each launch: no
// per-step copy and no host-side ring of pinned slots to guard.)
// Host-only header: compiles with g++ and nvcc.
#pragma once
#include <cstdint>

#include "mnist_gpu/cpu_ops.hpp"

namespace mnist_gpu::gpu {

/// One step's row.
struct StepScalars {
  long long step = 0;               ///< optimizer step, 1-based (dropout's masks)
  unsigned long long offset = 0;    ///< the batch's first index in the epoch order (resident gather)
  float lr = 0.0f;                  ///< the optimizer's rate
  float bias_correction1 = 1.0f;    ///< 1 - beta1^step (adam)
  float bias_correction2 = 1.0f;    ///< 1 - beta2^step (adam)
  long long epoch = 0;              ///< the epoch, 1-based (the deformations of --augment)
};

/// Where a kernel finds its step's row: table[*cursor] (both device pointers).
struct StepRef {
  const StepScalars* table = nullptr;
  const long long* cursor = nullptr;
};

/// The row of optimizer step `step` (1-based) on the batch at `offset`, with `st`'s rate and bias
/// corrections (make_optim_step(cfg, lr, step)), in epoch `epoch`.
inline StepScalars step_row(long long step, unsigned long long offset, const OptimStep& st, long long epoch = 0) {
  return StepScalars{step, offset, st.lr, st.bias_correction1, st.bias_correction2, epoch};
}

#if defined(__CUDACC__)
__device__ __forceinline__ const StepScalars& current(const StepRef& r) { return r.table[*r.cursor]; }
#endif

}  // namespace mnist_gpu::gpu
