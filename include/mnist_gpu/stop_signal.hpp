// SIGINT and SIGTERM as a request to stop cleanly: while a StopOnSignals lives, either signal
// sets a flag that long work polls between steps (and restores the default action, so a second
// signal ends the process at once). Process-wide by nature: one instance at a time.
#pragma once
#include <atomic>

namespace mnist_gpu {

class StopOnSignals {
 public:
  StopOnSignals();   ///< installs the handlers (and clears an earlier request)
  ~StopOnSignals();  ///< restores the default actions
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

  /// Becomes true when a signal arrives; pass it as TrainOptions::stop.
  const std::atomic<bool>* flag() const;
  bool requested() const { return flag()->load(); }
  /// The signal that arrived (SIGINT or SIGTERM), 0 if none.
  int signal() const;
};

}  // namespace mnist_gpu
