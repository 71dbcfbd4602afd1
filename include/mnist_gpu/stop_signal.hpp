// SIGINT and SIGTERM as a request to stop cleanly: while a StopOnSignals lives, the first signal
// sets a flag that long work polls between steps; a second one ends the process at once (by that
// signal's default action), removing first the temporary file of an atomic write under way
// (TempFileGuard), so that nothing half-written is left. Process-wide by nature: one instance at
// a time.
#pragma once
#include <atomic>
#include <string>

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

/// Names the temporary file an atomic write is filling, for as long as it lives: a second signal
/// (above) removes it before the process ends. One at a time; the write removes the file itself
/// on any other failure.
class TempFileGuard {
 public:
  explicit TempFileGuard(const std::string& path);
  ~TempFileGuard();
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;

 private:
  bool armed_ = false;
};

}  // namespace mnist_gpu
