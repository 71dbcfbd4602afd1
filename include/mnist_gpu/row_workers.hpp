// A fixed set of worker threads that split a range of rows between them, for the CPU backend's
// per-image work (the deformations of --augment). The threads start once, with the backend, and
// wait between calls, so a training step neither starts threads nor allocates.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace mnist_gpu {

/// The threads the CPU backend's per-image work uses: OpenBLAS's (OPENBLAS_NUM_THREADS), else 1.
int cpu_worker_threads();

class RowWorkers {
 public:
  /// The work of one part: rows [begin, end) of the range given to run(), with run()'s context.
  /// It must not throw (a worker thread has no one to report to).
  using Part = void (*)(void* context, int begin, int end) noexcept;

  /// `threads` parts at most (1 or less: run() does everything on the calling thread); the
  /// calling thread takes the first part, so `threads - 1` threads are started.
  explicit RowWorkers(int threads);
  ~RowWorkers();
  RowWorkers(const RowWorkers&) = delete;
  RowWorkers& operator=(const RowWorkers&) = delete;

  /// How many parts run() splits a range into at most.
  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  /// Calls part(context, begin, end) for contiguous, non-empty parts covering [0, rows), each part
  /// at least `min_rows` rows (so few rows take fewer threads), and returns when all are done.
  /// The parts are fixed by rows, min_rows and threads(): the same call splits the same way. The
  /// workers run each part with the calling thread's SSE control state (flush-to-zero and
  /// denormals-are-zero, rounding), so a part computes what the calling thread would have.
  /// One caller at a time: run() is not to be called from two threads at once, nor from a part.
  void run(int rows, int min_rows, Part part, void* context);

 private:
  void work(int id);

  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable start_, done_;
  unsigned long long generation_ = 0;  // bumped by run() for each call that uses the workers
  bool stop_ = false;
  int pending_ = 0;   // workers still working on the current call
  int parts_ = 0;     // the current call's parts (part 0 is the caller's)
  int rows_ = 0;
  Part part_ = nullptr;
  void* context_ = nullptr;
  unsigned csr_ = 0;  // the calling thread's MXCSR (x86 with SSE; else unused)
};

}  // namespace mnist_gpu
